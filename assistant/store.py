"""The only module that imports chromadb: one generation of the vector index, embedded or
on a Chroma server.

Embeddings are always passed in (computed by `assistant.embeddings`); the collection
is created with no embedding function, so Chroma never tries to download its
default ONNX model. Embedded, a generation is a folder (`PersistentClient`); on a
server (`ChromaServer`, `HttpClient`) it is a collection, and a small pointer
collection's metadata names the current one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


def server_address(url: str) -> tuple[str, int, bool]:
    """(host, port, TLS) of a Chroma server URL; the port defaults to 443 for https, else 8000."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if tls else 8000), tls


def _unreachable(exc: BaseException) -> bool:
    """True for errors that mean the server cannot be reached (as opposed to a refused request)."""
    import httpx

    return isinstance(exc, httpx.TransportError) or "Could not connect" in str(exc)


class ChromaServer:
    """A Chroma server reached over HTTP(S): the client, and the pointer naming the current generation.

    The pointer is the metadata of a small collection, `<collection>__pointer`; replacing
    that metadata in one request is the atomic switch from one generation to the next.

    Raises:
        StoreError: the server cannot be reached or refuses the token.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        host, port, tls = server_address(url)
        try:
            import chromadb

            options: dict[str, Any] = {"anonymized_telemetry": False}
            if token:
                options["chroma_client_auth_provider"] = "chromadb.auth.token_authn.TokenAuthClientProvider"
                options["chroma_client_auth_credentials"] = token
            self.client = chromadb.HttpClient(
                host=host, port=port, ssl=tls, settings=chromadb.Settings(**options)
            )
        except Exception as exc:
            raise self.error("Connecting to", exc) from exc

    def error(self, doing: str, exc: BaseException) -> StoreError:
        """`exc` as a StoreError that says what to do: start the server, or fix the token."""
        if _unreachable(exc):
            return StoreError(
                f"{doing} the Chroma server at {self.url} failed: it cannot be reached "
                f"({type(exc).__name__}). Start it (chroma run --path DIR --host HOST --port PORT) "
                "or point ASSISTANT_CHROMA_URL at a running one, then try again."
            )
        text = str(exc)
        if any(s in text for s in ("401", "403", "Unauthorized", "Forbidden", "auth")):
            return StoreError(
                f"The Chroma server at {self.url} refused the request ({text[:200]}). "
                "Set ASSISTANT_CHROMA_TOKEN to the server's token."
            )
        return StoreError(
            f"{doing} the Chroma server at {self.url} failed ({type(exc).__name__}: {text[:300]}). "
            "Check the server's log; if the index is damaged, rebuild it with: "
            "python -m assistant ingest --rebuild"
        )

    def pointer(self, collection: str) -> dict[str, Any] | None:
        """What the pointer says (`current` generation, `previous`, `manifest`), or None if unset."""
        from chromadb.errors import NotFoundError

        try:
            meta = self.client.get_collection(f"{collection}__pointer", embedding_function=None).metadata
        except NotFoundError:
            return None
        except Exception as exc:
            raise self.error("Reading the index pointer from", exc) from exc
        try:
            data = json.loads(str((meta or {}).get("pointer", "")))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def set_pointer(self, collection: str, data: Mapping[str, Any]) -> None:
        """Point readers at another generation: one metadata write, so they see the old or the new."""
        try:
            col = self.client.get_or_create_collection(f"{collection}__pointer", embedding_function=None)
            col.modify(metadata={"pointer": json.dumps(dict(data))})
        except Exception as exc:
            raise self.error("Switching the index pointer on", exc) from exc

    def collections(self, prefix: str) -> list[str]:
        """Names of the server's collections that start with `prefix`."""
        try:
            return [c.name for c in self.client.list_collections() if c.name.startswith(prefix)]
        except Exception as exc:
            raise self.error("Listing the collections on", exc) from exc

    def drop(self, name: str) -> None:
        """Delete a collection (best effort: it may already be gone)."""
        with contextlib.suppress(Exception):
            self.client.delete_collection(name)


class ChromaStore:
    """A Chroma collection with cosine distance and caller-supplied vectors: in one folder
    (embedded), or on `server` (then `path` only names the collection in messages)."""

    def __init__(
        self, path: Path, collection: str, *, create: bool = False, server: ChromaServer | None = None
    ) -> None:
        self.path = Path(path)
        self.server = server
        self.name = collection
        self.where = f"collection {collection} on {server.url}" if server else str(self.path)
        self._count: int | None = None
        try:
            import chromadb

            if server is not None:
                self._client = server.client
            else:
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
            if server is not None:
                raise server.error("Opening the index on", exc) from exc
            if read_only(self.path) or "readonly" in str(exc).replace("-", "").replace(" ", ""):
                raise StoreError(read_only_message(self.path.parent)) from exc
            raise StoreError(
                f"The index at {self.path} cannot be opened ({type(exc).__name__}: {exc}). "
                "Rebuild it with: python -m assistant ingest --rebuild"
            ) from exc

    def _failed(self, doing: str, exc: Exception) -> StoreError:
        if self.server is not None:
            return self.server.error(doing, exc)
        return StoreError(f"{doing} the index at {self.path} failed: {exc}")

    def count(self) -> int:
        """Chunks in the collection (remembered: every search needs it, and only `add` and
        `delete` change it)."""
        if self._count is None:
            try:
                self._count = int(self._col.count())
            except Exception as exc:
                raise self._failed("Counting the chunks in", exc) from exc
        return self._count

    def ids(self) -> set[str]:
        return set(self._col.get(include=[])["ids"])

    def copy_from(self, other: ChromaStore, page: int = 1000) -> None:
        """Add every record of `other` (ids, vectors, texts, metadata) to this collection:
        a new generation on a server starts as a copy of the current one, so ingest embeds
        only what changed."""
        self._count = None
        offset = 0
        while True:
            got = other._col.get(
                include=["embeddings", "documents", "metadatas"], limit=page, offset=offset
            )
            if not got["ids"]:
                return
            self._col.add(
                ids=got["ids"],
                embeddings=got["embeddings"],
                documents=got["documents"],
                metadatas=got["metadatas"],
            )
            offset += len(got["ids"])

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
        return self.all_chunks_and_vectors(vectors=False)[0]

    def all_chunks_and_vectors(self, vectors: bool = True) -> tuple[list[Chunk], dict[str, np.ndarray]]:
        """Every chunk in document order, and (if asked) each chunk's unit-length vector, in one
        read: the retriever keeps both in memory, so lookups never go back to the store."""
        include = ["documents", "metadatas", *(["embeddings"] if vectors else [])]
        try:
            got = self._col.get(include=include)  # type: ignore[arg-type]
        except Exception as exc:
            if self.server is not None:
                raise self.server.error("Reading the index from", exc) from exc
            raise StoreError(
                f"The index at {self.path} is unreadable ({exc}). "
                "Rebuild it with: python -m assistant ingest --rebuild"
            ) from exc
        chunks = [
            _to_chunk(i, d or "", m or {})
            for i, d, m in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        ]
        found: dict[str, np.ndarray] = {}
        embeddings = got.get("embeddings") if vectors else None
        if embeddings is not None and len(embeddings):
            m = np.asarray(embeddings, dtype=np.float32)
            m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
            found = dict(zip(got["ids"], m, strict=True))
        return sorted(chunks, key=lambda c: (c.source, c.position)), found

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
            raise self._failed("Searching", exc) from exc
        ids = res["ids"][0]
        dists = (res["distances"] or [[]])[0]
        return [(i, 1.0 - float(d)) for i, d in zip(ids, dists, strict=True)]

    def close(self) -> None:
        """Release the folder (needed before the index generation is swapped or deleted); a
        server's client is shared by the stores opened through it, so it stays open."""
        if self.server is not None:
            return
        with contextlib.suppress(Exception):  # best effort: the folder may already be gone
            self._client.close()  # type: ignore[attr-defined]  # chromadb >= 1.1

"""Build and keep the persistent index in step with the knowledge documents.

The index is a series of generations and a pointer naming the complete one. Ingest
copies the current generation, applies only the differences (new chunks are
embedded, chunks of changed or removed documents are deleted), records a manifest
and then switches the pointer in one atomic step. An interrupted ingest therefore
leaves the previous index untouched, and its half-written generation is swept
away by the next run.

Embedded (the default), generations are folders `gen-<ns>` beside a `CURRENT` file
switched by an atomic rename, each folder holding its `manifest.json`. On a Chroma
server (`ASSISTANT_CHROMA_URL`), generations are collections `<collection>__gen-<ns>`
and the pointer, manifest included, is the metadata of `<collection>__pointer`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.config import Settings
from assistant.embeddings import Embedder
from assistant.errors import StoreError
from assistant.knowledge import CHUNKER_VERSION, find_documents, load_chunks
from assistant.store import ChromaServer, ChromaStore

log = logging.getLogger(__name__)

Status = Literal["missing", "stale", "fresh"]
MANIFEST = "manifest.json"
CURRENT = "CURRENT"


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did, for the CLI and the benchmarks."""

    index_path: str
    documents: int
    chunks: int
    added: int
    removed: int
    unchanged: int
    seconds: float
    skipped: tuple[str, ...] = ()  # documents left out, each with the reason (also logged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(sources: Sequence[Path], settings: Settings, model_id: str) -> str:
    """Hash of everything that decides the index's content: files, chunker, model, chunk size."""
    h = hashlib.sha256(f"{CHUNKER_VERSION}|{model_id}|{settings.chunk_size}".encode())
    for f, root in find_documents(list(sources)):
        h.update(str(f.relative_to(root)).encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


class _Folders:
    """Embedded generations: folders `gen-<ns>` under the index folder, `CURRENT` names the
    complete one, each holds its manifest; a file lock keeps ingests on this machine apart."""

    def __init__(self, root: Path, collection: str) -> None:
        self.root = root
        self.collection = collection

    def current_path(self) -> Path | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"Cannot read {self.root / CURRENT}: {exc}") from exc
        path = self.root / name
        if not name or "/" in name or not path.is_dir():
            return None
        return path

    def manifest(self) -> dict[str, Any] | None:
        path = self.current_path()
        if path is None:
            return None
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def current(self) -> str | None:
        """The current generation, if it has its manifest (one without is not trusted)."""
        path = self.current_path()
        return path.name if path is not None and self.manifest() is not None else None

    def open(self) -> ChromaStore:
        path = self.current_path()
        if path is None or self.manifest() is None:
            raise StoreError(f"No index in {self.root}. Build it with: python -m assistant ingest")
        return ChromaStore(path, self.collection)

    @contextmanager
    def lock(self) -> Iterator[None]:
        from filelock import FileLock

        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the index folder {self.root}: {exc}") from exc
        with FileLock(str(self.root / ".lock"), timeout=600):
            yield

    def start(self, previous: str | None) -> tuple[str, ChromaStore]:
        """A new generation folder, a copy of `previous` (afresh if that copy is unreadable)."""
        gen = self.root / f"gen-{time.time_ns()}"
        try:
            if previous is not None:
                shutil.copytree(self.root / previous, gen)
            try:
                return gen.name, ChromaStore(gen, self.collection, create=True)
            except StoreError:
                if previous is None:
                    raise
                # the copied generation is unreadable: start this one afresh
                shutil.rmtree(gen, ignore_errors=True)
                return gen.name, ChromaStore(gen, self.collection, create=True)
        except BaseException:
            shutil.rmtree(gen, ignore_errors=True)
            raise

    def switch(self, gen: str, store: ChromaStore, manifest: dict[str, Any]) -> None:
        (self.root / gen / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        store.close()
        tmp = self.root / f"{CURRENT}.tmp"
        tmp.write_text(gen, encoding="utf-8")
        os.replace(tmp, self.root / CURRENT)  # the switch: atomic on POSIX

    def discard(self, gen: str, store: ChromaStore) -> None:
        store.close()
        shutil.rmtree(self.root / gen, ignore_errors=True)

    def sweep(self) -> None:
        """Remove generations that are not current (left by an interrupted or older ingest)."""
        current = self.current_path()
        for child in self.root.glob("gen-*"):
            if child.is_dir() and (current is None or child.name != current.name):
                shutil.rmtree(child, ignore_errors=True)

    def label(self, gen: str) -> str:
        return str(self.root / gen)


class _OnServer:
    """Generations on a Chroma server: collections `<collection>__gen-<ns>`, and the pointer
    (`ChromaServer.pointer`) naming the current one, the one it replaced, and the manifest.

    The sweep keeps the replaced generation (a page that opened it keeps answering until the
    next ingest) and any generation newer than the current one (another ingest's, in progress).
    """

    def __init__(self, settings: Settings) -> None:
        self.url = str(settings.chroma_url)
        token = settings.chroma_token
        self.token = token.get_secret_value() if token is not None else None
        self.collection = settings.collection
        self._server: ChromaServer | None = None

    @property
    def server(self) -> ChromaServer:
        if self._server is None:  # connect on first use: `Index(settings)` itself stays cheap
            self._server = ChromaServer(self.url, self.token)
        return self._server

    def _pointer(self) -> dict[str, Any]:
        pointer = self.server.pointer(self.collection) or {}
        return pointer if isinstance(pointer.get("manifest"), dict) and pointer.get("current") else {}

    def manifest(self) -> dict[str, Any] | None:
        return self._pointer().get("manifest")

    def current(self) -> str | None:
        current = self._pointer().get("current")
        return str(current) if current else None

    def open(self) -> ChromaStore:
        current = self.current()
        if current is None:
            raise StoreError(
                f"No index on the Chroma server at {self.url} (collection {self.collection}). "
                "Build it with: python -m assistant ingest"
            )
        return ChromaStore(Path(current), current, server=self.server)

    def lock(self) -> nullcontext[None]:
        return nullcontext()  # generations have unique names; the pointer write is atomic

    def start(self, previous: str | None) -> tuple[str, ChromaStore]:
        """A new generation collection holding a copy of `previous` (no re-embedding)."""
        gen = f"{self.collection}__gen-{time.time_ns()}"
        store = ChromaStore(Path(gen), gen, create=True, server=self.server)
        if previous is not None:
            try:
                old = ChromaStore(Path(previous), previous, server=self.server)
            except StoreError:
                log.warning("the current generation %s cannot be opened; building afresh", previous)
                return gen, store
            try:
                store.copy_from(old)
            except Exception as exc:
                self.server.drop(gen)
                raise self.server.error("Copying the current index generation on", exc) from exc
        return gen, store

    def switch(self, gen: str, store: ChromaStore, manifest: dict[str, Any]) -> None:
        self.server.set_pointer(
            self.collection, {"current": gen, "previous": self.current(), "manifest": manifest}
        )

    def discard(self, gen: str, store: ChromaStore) -> None:
        self.server.drop(gen)

    def sweep(self) -> None:
        pointer = self._pointer()
        current = pointer.get("current")
        if not current:
            return  # nothing is complete yet: a generation may be another ingest's, in progress
        prefix = f"{self.collection}__gen-"
        for name in self.server.collections(prefix):
            if name not in (current, pointer.get("previous")) and name < current:
                self.server.drop(name)

    def label(self, gen: str) -> str:
        return f"{self.url} collection {gen}"


class Index:
    """The index: which generation is current, whether it is fresh, and how to update it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.index_dir)
        self._gens: _Folders | _OnServer = (
            _OnServer(settings) if settings.chroma_url else _Folders(self.root, settings.collection)
        )

    # -- reading ---------------------------------------------------------------
    def current_path(self) -> Path | None:
        """The current generation's folder (embedded index; None on a server)."""
        return self._gens.current_path() if isinstance(self._gens, _Folders) else None

    def manifest(self) -> dict[str, Any] | None:
        """What the current generation was built from (its fingerprint, sources, keywords)."""
        return self._gens.manifest()

    def sources(self) -> list[Path]:
        """The paths the current index was built from (default: the knowledge folder)."""
        manifest = self.manifest() or {}
        recorded = manifest.get("sources")
        if isinstance(recorded, list) and recorded:
            return [Path(p) for p in recorded]
        return [Path(self.settings.knowledge_dir)]

    def keywords(self) -> list[str]:
        """Curated keywords of the indexed documents (front matter), for the coverage check."""
        return [str(k) for k in (self.manifest() or {}).get("keywords", [])]

    def status(self, model_id: str) -> Status:
        manifest = self.manifest()
        if manifest is None:
            return "missing"
        try:
            current = fingerprint(self.sources(), self.settings, model_id)
        except Exception:
            return "stale"
        return "fresh" if manifest.get("fingerprint") == current else "stale"

    def open(self) -> ChromaStore:
        """Open the current generation for reading.

        Raises:
            StoreError: there is no index yet, or it cannot be opened.
        """
        return self._gens.open()

    # -- writing ---------------------------------------------------------------
    def ensure(self, embedder: Embedder, *, progress: bool = False) -> IngestReport | None:
        """Build or update the index when it is missing or stale; None when it was fresh."""
        if self.status(embedder.model_id) == "fresh":
            return None
        sources = self.sources() if self.manifest() else None
        return self.ingest(embedder, sources, progress=progress)

    def ingest(
        self,
        embedder: Embedder,
        paths: Sequence[Path] | None = None,
        *,
        rebuild: bool = False,
        progress: bool = True,
    ) -> IngestReport:
        """Bring the index in line with the documents under `paths` (default: knowledge_dir).

        Raises:
            KnowledgeError: the paths hold no readable documents.
            StoreError: the index folder cannot be written, or the server cannot be reached.
        """
        started = time.perf_counter()
        embedder.prepare()  # the ONNX export of the model, made on the first ingest if missing
        sources = [Path(p).resolve() for p in (paths or [self.settings.knowledge_dir])]
        skipped: list[str] = []
        max_bytes = self.settings.max_document_mb * 1_000_000
        docs, chunks = load_chunks(sources, self.settings.chunk_size, max_bytes=max_bytes, skipped=skipped)
        gens = self._gens
        with gens.lock():
            gens.sweep()
            gen, store = gens.start(None if rebuild else gens.current())
            try:
                existing = store.ids()
                wanted = {c.id for c in chunks}
                stale = sorted(existing - wanted)
                new = [c for c in chunks if c.id not in existing]
                store.delete(stale)
                self._embed_and_add(store, embedder, new, progress)
                manifest = {
                    "fingerprint": fingerprint(sources, self.settings, embedder.model_id),
                    "sources": [str(s) for s in sources],
                    "model": embedder.model_id,
                    "chunker": CHUNKER_VERSION,
                    "chunk_size": self.settings.chunk_size,
                    "documents": {d.path: d.title for d in docs},
                    "keywords": sorted({k for d in docs for k in d.keywords}),
                    "chunks": len(chunks),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                gens.switch(gen, store, manifest)
            except BaseException:
                gens.discard(gen, store)
                raise
            gens.sweep()
        return IngestReport(
            index_path=gens.label(gen),
            documents=len(docs),
            chunks=len(chunks),
            added=len(new),
            removed=len(stale),
            unchanged=len(chunks) - len(new),
            seconds=time.perf_counter() - started,
            skipped=tuple(skipped),
        )

    def _embed_and_add(self, store: ChromaStore, embedder: Embedder, new: list, progress: bool) -> None:
        from tqdm import tqdm

        step = max(embedder.batch_size * 8, 256)
        with tqdm(
            total=len(new),
            desc="Embedding chunks",
            unit="chunk",
            disable=not progress or len(new) < step,
        ) as bar:
            for start in range(0, len(new), step):
                batch = new[start : start + step]
                store.add(batch, embedder.encode([c.text for c in batch]))
                bar.update(len(batch))

"""Build and keep the persistent index in step with the knowledge documents.

The index folder holds generations; `CURRENT` names the complete one. Ingest
copies the current generation, applies only the differences (new chunks are
embedded, chunks of changed or removed documents are deleted), writes a
manifest and then switches `CURRENT` with an atomic rename. An interrupted
ingest therefore leaves the previous index untouched, and its half-written
generation is swept away by the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.config import Settings
from assistant.embeddings import Embedder
from assistant.errors import StoreError
from assistant.knowledge import CHUNKER_VERSION, find_documents, load_chunks
from assistant.store import ChromaStore

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


class Index:
    """The index folder: which generation is current, whether it is fresh, and how to update it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.index_dir)

    # -- reading ---------------------------------------------------------------
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
        path = self.current_path()
        if path is None or self.manifest() is None:
            raise StoreError(f"No index in {self.root}. Build it with: python -m assistant ingest")
        return ChromaStore(path, self.settings.collection)

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
            StoreError: the index folder cannot be written.
        """
        from filelock import FileLock

        started = time.perf_counter()
        embedder.prepare()  # the ONNX export of the model, made on the first ingest if missing
        sources = [Path(p).resolve() for p in (paths or [self.settings.knowledge_dir])]
        skipped: list[str] = []
        max_bytes = self.settings.max_document_mb * 1_000_000
        docs, chunks = load_chunks(sources, self.settings.chunk_size, max_bytes=max_bytes, skipped=skipped)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the index folder {self.root}: {exc}") from exc
        with FileLock(str(self.root / ".lock"), timeout=600):
            self._sweep()
            previous = None if rebuild else self.current_path()
            if previous is not None and self.manifest() is None:
                previous = None  # a generation without manifest is not trusted
            gen = self.root / f"gen-{time.time_ns()}"
            if previous is not None:
                shutil.copytree(previous, gen)
            store: ChromaStore | None = None
            try:
                try:
                    store = ChromaStore(gen, self.settings.collection, create=True)
                except StoreError:
                    if previous is None:
                        raise
                    # the copied generation is unreadable: start this one afresh
                    shutil.rmtree(gen, ignore_errors=True)
                    store = ChromaStore(gen, self.settings.collection, create=True)
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
                (gen / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            except BaseException:
                if store is not None:
                    store.close()
                shutil.rmtree(gen, ignore_errors=True)
                raise
            store.close()
            tmp = self.root / f"{CURRENT}.tmp"
            tmp.write_text(gen.name, encoding="utf-8")
            os.replace(tmp, self.root / CURRENT)  # the switch: atomic on POSIX
            self._sweep()
        return IngestReport(
            index_path=str(gen),
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

    def _sweep(self) -> None:
        """Remove generations that are not current (left by an interrupted or older ingest)."""
        current = self.current_path()
        for child in self.root.glob("gen-*"):
            if child.is_dir() and (current is None or child.name != current.name):
                shutil.rmtree(child, ignore_errors=True)

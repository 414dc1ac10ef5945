"""The persistent Chroma index: idempotent, incremental, atomic, and clear when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.embeddings import Embedder
from assistant.errors import StoreError
from assistant.index import CURRENT, Index
from assistant.knowledge import load_chunks


def _settings(tmp_path: Path, knowledge: Path) -> Settings:
    return Settings.load(knowledge_dir=knowledge, index_dir=tmp_path / "idx")


def test_ingest_builds_then_does_nothing_when_unchanged(tmp_path, knowledge_copy, embedder) -> None:
    index = Index(_settings(tmp_path, knowledge_copy))
    assert index.status(embedder.model_id) == "missing"
    first = index.ingest(embedder, progress=False)
    expected = load_chunks([knowledge_copy])[1]
    assert first.added == first.chunks == len(expected) and first.removed == 0
    assert index.status(embedder.model_id) == "fresh"
    store = index.open()
    assert store.ids() == {c.id for c in expected}
    store.close()

    second = index.ingest(embedder, progress=False)
    assert (second.added, second.removed, second.unchanged) == (0, 0, len(expected))
    assert index.ensure(embedder) is None  # fresh: nothing to do


def test_changed_document_replaces_only_its_changed_chunks(tmp_path, knowledge_copy, embedder) -> None:
    index = Index(_settings(tmp_path, knowledge_copy))
    index.ingest(embedder, progress=False)
    doc = knowledge_copy / "treadmill-back-pain.md"
    doc.write_text(doc.read_text().replace("Repeat 10 times.", "Repeat 12 times."))
    assert index.status(embedder.model_id) == "stale"
    report = index.ensure(embedder)
    assert report is not None and (report.added, report.removed) == (1, 1)
    store = index.open()
    texts = [c.text for c in store.all_chunks()]
    assert any("Repeat 12 times." in t for t in texts)
    assert not any("Repeat 10 times." in t for t in texts)


def test_added_and_removed_documents(tmp_path, knowledge_copy, embedder) -> None:
    index = Index(_settings(tmp_path, knowledge_copy))
    base = index.ingest(embedder, progress=False).chunks
    extra = knowledge_copy / "warm-up.md"
    extra.write_text("---\ntitle: Warming up\n---\n\n## Before you walk\n\nWalk slowly for five minutes.\n")
    added = index.ingest(embedder, progress=False)
    assert (added.added, added.chunks) == (1, base + 1)
    extra.unlink()
    removed = index.ingest(embedder, progress=False)
    assert (removed.removed, removed.chunks) == (1, base)
    assert "Warming up" not in {c.document for c in index.open().all_chunks()}


def test_interrupted_ingest_leaves_the_previous_index_intact(
    tmp_path, knowledge_copy, embedder, monkeypatch
) -> None:
    index = Index(_settings(tmp_path, knowledge_copy))
    index.ingest(embedder, progress=False)
    before = (index.root / CURRENT).read_text()
    ids_before = index.open().ids()

    doc = knowledge_copy / "treadmill-back-pain.md"
    doc.write_text(doc.read_text().replace("Repeat 10 times.", "Repeat 12 times."))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while embedding

    monkeypatch.setattr(Embedder, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        index.ingest(embedder, progress=False)
    monkeypatch.undo()

    assert (index.root / CURRENT).read_text() == before
    assert index.open().ids() == ids_before  # the old index still answers
    assert [p.name for p in index.root.glob("gen-*")] == [before]  # no half-written generation
    assert index.ensure(embedder) is not None  # and the next run catches up
    assert any("Repeat 12 times." in c.text for c in index.open().all_chunks())


def test_missing_index_is_a_clear_error(tmp_path, knowledge_copy) -> None:
    with pytest.raises(StoreError, match="python -m assistant ingest"):
        Index(_settings(tmp_path, knowledge_copy)).open()


def test_corrupt_index_is_a_clear_error_and_rebuild_repairs_it(
    tmp_path, knowledge_copy, embedder
) -> None:
    index = Index(_settings(tmp_path, knowledge_copy))
    index.ingest(embedder, progress=False)
    current = index.current_path()
    assert current is not None
    (current / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="ingest --rebuild"):
        index.open().all_chunks()
    report = index.ingest(embedder, rebuild=True, progress=False)
    assert report.added == report.chunks and index.open().count() == report.chunks


def test_collection_has_no_embedding_function(tmp_path, knowledge_copy, embedder) -> None:
    """Chroma must never fall back to its default (downloading) embedding function."""
    index = Index(_settings(tmp_path, knowledge_copy))
    index.ingest(embedder, progress=False)
    store = index.open()
    assert store._col._embedding_function is None
    with pytest.raises(ValueError, match="embedding function"):
        store._col.query(query_texts=["back pain"], n_results=1)

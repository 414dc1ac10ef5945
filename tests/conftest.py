"""Shared fixtures: the real embedding model and a real Chroma index, built once per session.

An autouse fixture points every path setting at a temporary folder, so no test
touches the developer's `.index/` or `.data/`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import assistant  # noqa: F401  (forces offline mode first)
from assistant.config import PROJECT_ROOT, Settings
from assistant.embeddings import Embedder

KNOWLEDGE = PROJECT_ROOT / "knowledge"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ASSISTANT_KNOWLEDGE_DIR", raising=False)
    monkeypatch.delenv("ASSISTANT_FEEDBACK_DB_URL", raising=False)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Settings:
    """Settings with the project's knowledge and a session-wide index in a temp folder."""
    return Settings.load(
        knowledge_dir=KNOWLEDGE, index_dir=session_dir / "index", data_dir=session_dir / "data"
    )


@pytest.fixture(scope="session")
def bot(settings: Settings, embedder: Embedder):
    """One real Assistant (real model, real Chroma index) shared by the session's tests."""
    from assistant.assistant import Assistant
    from assistant.compose import Composer
    from assistant.index import Index
    from assistant.retrieval import HybridRetriever
    from assistant.triage import Triager

    index = Index(settings)
    index.ensure(embedder)
    retriever = HybridRetriever.build(index.open(), embedder, settings, index.keywords())
    composer = Composer(embedder, max_words=settings.answer_max_words)
    composer.warm_up(retriever.chunks)
    return Assistant(settings, embedder, retriever, composer, Triager.from_settings(settings, embedder))


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the knowledge folder, for tests that change documents."""
    dest = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, dest)
    yield dest

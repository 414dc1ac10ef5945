"""The ONNX backend gives the torch model's answers, falls back cleanly, and keeps torch out of `ask`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import PROJECT_ROOT, Settings
from assistant.embedding_export import export_dir, find_export
from assistant.embeddings import Embedder
from assistant.knowledge import load_chunks

EVAL_DATA = PROJECT_ROOT / "evals" / "data"
KNOWLEDGE = PROJECT_ROOT / "knowledge"


def eval_questions(names: tuple[str, ...] = ("retrieval", "answers", "triage", "safety")) -> list[str]:
    texts = []
    for name in names:
        for line in (EVAL_DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["user_input"])
    return texts


@pytest.fixture(scope="module")
def onnx_embedder(embedder: Embedder) -> Embedder:
    embedder.prepare()
    assert embedder.active_backend == "onnx"
    return embedder


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder(backend="torch")


@pytest.mark.slow
def test_onnx_matches_torch_on_eval_texts(onnx_embedder: Embedder, torch_embedder: Embedder) -> None:
    _, chunks = load_chunks([KNOWLEDGE], Settings.load().chunk_size)
    texts = eval_questions() + [c.text for c in chunks]
    cosine = np.sum(onnx_embedder.encode(texts) * torch_embedder.encode(texts), axis=1)
    assert cosine.min() >= 0.999, f"min cosine {cosine.min():.5f} on {texts[int(cosine.argmin())]!r}"


@pytest.mark.slow
def test_onnx_keeps_the_top_4_chunks(
    tmp_path: Path, onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    from assistant.index import Index
    from assistant.retrieval import HybridRetriever

    def retriever(embedder: Embedder, name: str) -> HybridRetriever:
        settings = Settings.load(knowledge_dir=KNOWLEDGE, index_dir=tmp_path / name)
        index = Index(settings)
        index.ensure(embedder)
        return HybridRetriever.build(index.open(), embedder, settings, index.keywords())

    fast, reference = retriever(onnx_embedder, "onnx"), retriever(torch_embedder, "torch")
    questions = eval_questions(("retrieval", "answers"))  # the questions that reach retrieval
    same = sum(
        [h.chunk.id for h in fast.search(q, top_k=4)] == [h.chunk.id for h in reference.search(q, top_k=4)]
        for q in questions
    )
    assert same / len(questions) >= 0.98, f"top-4 identical for {same}/{len(questions)} queries"


def test_missing_export_falls_back_to_torch_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = Embedder(cache_dir=tmp_path / "empty-cache")
    with caplog.at_level(logging.WARNING, logger="assistant.embeddings"):
        vector = embedder.encode_one("back pain")
        embedder.encode_one("again")
    assert embedder.active_backend == "torch"
    assert vector.shape == (384,)
    lines = [r.getMessage() for r in caplog.records if r.name == "assistant.embeddings"]
    assert len(lines) == 1 and "falling back to torch" in lines[0] and "no ONNX export" in lines[0]


def test_broken_export_falls_back_to_torch(
    tmp_path: Path, onnx_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    folder = find_export(onnx_embedder.model_path, onnx_embedder.cache_dir)
    assert folder is not None
    broken = export_dir(onnx_embedder.model_path, tmp_path)
    shutil.copytree(folder, broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    embedder = Embedder(cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="assistant.embeddings"):
        assert embedder.encode(["a", "b"]).shape == (2, 384)
    assert embedder.active_backend == "torch"
    assert "is broken" in caplog.text


def test_torch_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_EMBEDDING_BACKEND", "torch")
    assert Embedder.from_settings(Settings.load()).backend == "torch"
    monkeypatch.setenv("ASSISTANT_EMBEDDING_BACKEND", "tensorflow")
    from assistant.errors import ConfigError

    with pytest.raises(ConfigError, match="ASSISTANT_EMBEDDING_BACKEND"):
        Settings.load()


def test_vocabulary_and_batches_agree_with_single_texts(onnx_embedder: Embedder) -> None:
    assert onnx_embedder.vocabulary()["walk"] > 0
    texts = ["short", "a much longer sentence about walking uphill on a treadmill " * 5, "mid length text"]
    batch = onnx_embedder.encode(texts)
    singles = np.stack([onnx_embedder.encode_one(t) for t in texts])
    assert np.allclose(batch, singles, atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_one_shot_ask_imports_no_torch(tmp_path: Path, onnx_embedder: Embedder) -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['assistant', 'ask', '--json', 'why does my back hurt on incline?']\n"
        "try:\n    runpy.run_module('assistant', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'gradio') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "ASSISTANT_INDEX_DIR": str(tmp_path / "index")}
    subprocess.run(  # build the index first: ingest may import torch, ask must not
        [sys.executable, "-m", "assistant", "ingest"], env=env, check=True, capture_output=True, timeout=300
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(proc.stdout)["triage"]["level"] == "self_care"
    assert "HEAVY=\n" in proc.stderr or proc.stderr.rstrip().endswith("HEAVY="), proc.stderr[-800:]

"""Latency, throughput and memory figures (printed, never asserted): `python -m evals.bench [--quick]`.

Every figure comes with what it is compared against and the ratio, taken from the
same run, so a number means something on any machine:

- warm per-stage latency p50/p95 over the retrieval suite's questions, from
  `Answer.timings_ms`, the bare query embedding (`Embedder.encode_one`), and the naive
  LangChain baseline (sentence-transformers on torch, as a tutorial builds it) on the
  same questions: ours total p50 / baseline p50 (target <= 0.5);
- cold start: fresh `python -m assistant ask --json ...` processes, start to answer
  (index and ONNX export already made; target <= 3 s), and their peak RSS (<= 400 MB);
- `ask --batch` over the same questions in one process: its p50 against the warm p50 (<= 1.5);
- the chat page: seconds from `python app.py` to the first `/ask` answer (<= 6 s);
- ingest throughput (chunks/s) on a synthetic corpus with the onnx and the torch
  backend (target onnx >= 3x torch), and against onnx's raw batch embedding;
- the cost curve: retrieval (Chroma dense + BM25 + fusion, no embedding) p50 at 1k,
  10k and 100k synthetic chunks (--quick: to 10k); the store holds random unit vectors,
  not embeddings (filled once and kept in the cache folder), BM25 indexes the synthetic texts.

`python -m evals run --bench` puts the same figures into the report JSON under "bench".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

import assistant  # noqa: F401  (offline mode first)
from evals import DATA_DIR, REPORTS_DIR
from evals.metrics import percentile
from evals.schema import RetrievalCase, load_cases

COLD_QUESTION = "why does my back hurt on incline"
STAGES = ("embed", "triage", "retrieve", "compose", "total")
PROJECT_DIR = Path(assistant.__file__).resolve().parent.parent
ARTICLE_DIR = PROJECT_DIR / "knowledge"


def _figure(name: str, value: float, unit: str, versus: str = "", ratio: float | None = None,
            target: str = "") -> dict[str, Any]:
    return {"name": name, "value": round(value, 3), "unit": unit, "versus": versus,
            "ratio": None if ratio is None else round(ratio, 3), "target": target}


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _env(index_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if index_dir is not None:
        env["ASSISTANT_INDEX_DIR"] = str(index_dir)
    return env


def cold_start(runs: int, env: dict[str, str]) -> tuple[list[float], float]:
    """Wall seconds of fresh `ask --json` processes, and their peak RSS in MB.

    Each child reports its own peak (RUSAGE_CHILDREN would also count helpers that
    libraries fork from this big process).
    """
    seconds, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _ASK_AND_REPORT_RSS, COLD_QUESTION],
            capture_output=True, text=True, timeout=300, check=False, env=env,
        )
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"cold start failed ({proc.returncode}): {proc.stderr[-500:]}")
        json.loads(proc.stdout)  # it answered
        peaks.append(float(proc.stderr.strip().splitlines()[-1].removeprefix("PEAK_RSS_KB=")) / 1024)
    return seconds, max(peaks)


# `python -m assistant ask --json MESSAGE`, then its own peak RSS on the last stderr line
_ASK_AND_REPORT_RSS = """
import resource, runpy, sys
sys.argv = ["assistant", "ask", "--json", sys.argv[1]]
try:
    runpy.run_module("assistant", run_name="__main__")
except SystemExit as exc:
    if exc.code:
        raise
sys.stdout.flush()
# VmHWM: this process's own peak. ru_maxrss would also keep the peak of the forked copy of the
# bench process (which holds both backends) from before exec, and report that instead.
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PEAK_RSS_KB=%d" % peak, file=sys.stderr)
"""


def batch_latency(questions: list[str], env: dict[str, str]) -> list[float]:
    """Per-answer total ms of one `ask --json --batch` process over the questions."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"id": i, "message": q}) + "\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "assistant", "ask", "--json", "--batch", f.name],
            capture_output=True, text=True, timeout=300, check=True, env=env,
        )
    finally:
        os.unlink(f.name)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return [r["timings_ms"]["total"] for r in rows if "timings_ms" in r]


def page_first_answer(env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds from starting `python app.py` to its first `/ask` answer."""
    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "app.py")], env={**env, "ASSISTANT_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            try:
                Client(url, verbose=False).predict(COLD_QUESTION, api_name="/ask")
                return time.perf_counter() - start
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"the page did not answer within {timeout:.0f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def warm_latency(ours: Any, baseline: Any | None, questions: list[str]) -> dict[str, list[float]]:
    """Per-stage ms from ours' timings, the bare embedding and the baseline, question by question."""
    bot = ours.assistant
    bot.warm_up()  # as the chat page does at start
    for q in questions[:3]:  # warm-up
        bot.ask(q)
        bot.embedder.encode_one(q)
        if baseline is not None:
            baseline.answer(q)
    samples: dict[str, list[float]] = {k: [] for k in (*STAGES, "encode_one", "baseline", "wall")}
    for q in questions:
        start = time.perf_counter()
        bot.embedder.encode_one(q)
        samples["encode_one"].append(_ms(start))
        start = time.perf_counter()
        answer = bot.ask(q)
        samples["wall"].append(_ms(start))
        for stage in STAGES:
            if stage in answer.timings_ms:
                samples[stage].append(answer.timings_ms[stage])
        if baseline is not None:
            start = time.perf_counter()
            baseline.answer(q)
            samples["baseline"].append(_ms(start))
    return samples


def synthetic_texts(chunks: int, seed: str = "bench") -> list[str]:
    """`chunks` texts of 3-5 recombined article sentences; deterministic (seeded from SHA-256 of `seed`)."""
    from assistant.knowledge import load_document, split_units

    doc = load_document(next(ARTICLE_DIR.glob("*.md")), ARTICLE_DIR)
    sentences = [u for u in split_units(doc.body) if len(u.split()) >= 6]
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest(), 16))
    return [" ".join(rng.sample(sentences, rng.randint(3, 5))) for _ in range(chunks)]


def synthetic_corpus(folder: Path, chunks: int, seed: str = "bench") -> int:
    """Write Markdown documents with `chunks` numbered sections (one chunk each) of `synthetic_texts`."""
    per_doc = 20
    texts = synthetic_texts(chunks, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(0, chunks, per_doc):
        lines = [f"# Synthetic document {d // per_doc}\n"]
        lines += [f"## Section {s}\n\n{texts[s]}\n" for s in range(d, min(d + per_doc, chunks))]
        (folder / f"doc-{d // per_doc:05d}.md").write_text("\n".join(lines), encoding="utf-8")
    return chunks


def _rate(embedder: Any, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def ingest_throughput(source: Path, embedder: Any, probe_size: int = 500) -> tuple[int, float, float]:
    """(chunks, ingest chunks/s, raw chunks/s) for the documents in `source`.

    The raw rate is the model alone on an evenly spaced sample of the same chunk
    texts, measured just before and just after the ingest and averaged, so a
    machine that gets busier or quieter during the run skews both sides alike.
    """
    from assistant import Settings
    from assistant.index import Index
    from assistant.knowledge import load_chunks

    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        settings = Settings.load(knowledge_dir=source, index_dir=Path(tmp) / "index")
        _, chunks = load_chunks([source], settings.chunk_size)
        texts = [c.text for c in chunks]
        probe = texts[:: max(1, len(texts) // probe_size)][:probe_size]
        before = _rate(embedder, probe)
        report = Index(settings).ingest(embedder, [source], rebuild=True, progress=False)
        after = _rate(embedder, probe)
        return report.chunks, report.chunks / report.seconds, (before + after) / 2


COST_SIZES = (1_000, 10_000, 100_000)
COST_STORE_VERSION = 1  # bump when what `cost_store` writes changes


def cost_chunks(n: int) -> list[Any]:
    """`n` synthetic chunks (recombined article sentences, deterministic) for the cost curve."""
    from assistant.types import Chunk

    return [Chunk(id=f"s{i:06d}", text=t, document="synthetic", source="synthetic",
                  section=f"Section {i}", experts=(), position=i)
            for i, t in enumerate(synthetic_texts(n, seed=f"cost-{n}"))]


def cost_store(chunks: list[Any], cache_dir: Path | None, log: Any) -> tuple[Any, Path | None]:
    """A Chroma store of the chunks with random unit vectors (seeded by the size), and the
    temporary folder to remove after (None when it is kept).

    Filling Chroma's HNSW index takes ~1 ms a vector here (100k: minutes), so with a
    `cache_dir` the filled store is kept in `<cache_dir>/bench/` and reopened by later runs.
    """
    import shutil

    import chromadb

    from assistant.store import ChromaStore

    n = len(chunks)
    key = hashlib.sha256(f"{n}|{COST_STORE_VERSION}|{chromadb.__version__}".encode()).hexdigest()[:12]
    kept = cache_dir / "bench" / f"cost-{n}-{key}" if cache_dir is not None else None
    if kept is not None and (kept / "complete").exists():
        return ChromaStore(kept, "bench"), None
    folder = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    log(f"filling a Chroma store with {n} random unit vectors" + (f" (kept in {kept})" if kept else ""))
    rng = np.random.default_rng(n)
    store = ChromaStore(folder, "bench", create=True)
    for i in range(0, n, 5000):
        vectors = rng.standard_normal((min(5000, n - i), 384)).astype(np.float32)
        store.add(chunks[i : i + 5000], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    if kept is None:
        return store, folder
    store.close()
    (folder / "complete").write_text("ok\n", encoding="utf-8")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(kept, ignore_errors=True)
        os.replace(folder, kept)
    except OSError:  # a read-only cache: measure on the temporary copy
        return ChromaStore(folder, "bench"), folder
    return ChromaStore(kept, "bench"), None


def retrieval_cost(sizes: Sequence[int], queries: list[str], log: Any,
                   cache_dir: Path | None = None) -> dict[int, float]:
    """Retrieval p50 (ms) at each size: Chroma dense + BM25 + RRF over synthetic chunks, no embedding.

    The store holds random unit vectors (seeded; see `cost_store`), BM25 indexes the
    synthetic texts, and each query is a random unit vector plus a real question for BM25.
    """
    import shutil

    from assistant.retrieval import LexicalIndex, reciprocal_rank_fusion

    rng = np.random.default_rng(7)
    result: dict[int, float] = {}
    for n in sizes:
        log(f"retrieval cost at {n} chunks")
        chunks = cost_chunks(n)
        store, folder = cost_store(chunks, cache_dir, log)
        try:
            lexical = LexicalIndex(chunks)
            probes = rng.standard_normal((len(queries), 384)).astype(np.float32)
            for q, v in zip(queries[:3], probes, strict=False):  # first touches load the index
                store.query(v, 20)
                lexical.search(q, 20)
            samples = []
            for q, v in zip(queries, probes / np.linalg.norm(probes, axis=1, keepdims=True), strict=True):
                start = time.perf_counter()
                dense = [i for i, _ in store.query(v, 20)]
                lex = [i for i, _ in lexical.search(q, 20)]
                reciprocal_rank_fusion([dense, lex], [1.0, 1.0], 60)
                samples.append(_ms(start))
        finally:
            store.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        result[n] = percentile(samples, 50)
    return result


def run_bench(
    ours: Any | None = None,
    baseline: Any | None = None,
    *,
    quick: bool = False,
    full: bool = False,
    synthetic_chunks: int | None = None,
    cold_runs: int = 2,
    log: Any = None,
) -> dict[str, Any]:
    """Measure everything; returns {"figures": [...], "samples_ms": {...}, "machine": ...}.

    The default run (`make bench`) takes about three minutes on two shared cores once the
    cost curve's stores are cached (the first run fills the 100k one: a few minutes more).
    `quick` (CI) uses a smaller ingest corpus, skips the page and stops the cost curve at
    10k; `full` ingests 1000 chunks and times every question at every cost-curve size.
    """
    from assistant.embeddings import Embedder

    say = log or (lambda msg: None)
    started = time.perf_counter()
    if synthetic_chunks is None:
        synthetic_chunks = 100 if quick else 1000 if full else 300
    if ours is None:
        from evals.systems import build_systems

        say("loading ours (onnx) and the LangChain baseline (torch)")
        systems = build_systems(baseline=True)
        ours, baseline = systems[0], systems[1]
    bot = ours.assistant
    env = _env(Path(bot.settings.index_dir))
    questions = [c.user_input for c in load_cases(DATA_DIR / "retrieval.jsonl", RetrievalCase)]
    figures = []

    say("cold start")
    cold, child_peak = cold_start(cold_runs, env)
    cold_s = percentile(cold, 50)

    say("warm latency")
    s = warm_latency(ours, baseline, questions)
    p50 = {k: percentile(v, 50) for k, v in s.items() if v}
    p95 = {k: percentile(v, 95) for k, v in s.items() if v}
    embed = p50["encode_one"]
    for stage in STAGES:
        if stage in p50:
            figures.append(_figure(f"warm {stage} p50", p50[stage], "ms", "encode_one p50",
                                   p50[stage] / embed))
            figures.append(_figure(f"warm {stage} p95", p95[stage], "ms", "encode_one p95",
                                   p95[stage] / p95["encode_one"]))
    figures.append(_figure(f"encode_one p50 (bare query embedding, {bot.embedder.active_backend})",
                           embed, "ms"))
    if "baseline" in p50:
        base_embedder = getattr(baseline, "store", None)
        base_embedder = getattr(base_embedder, "embeddings", None)
        figures.append(_figure("baseline answer p50 (LangChain + Chroma, torch embeddings)", p50["baseline"],
                               "ms", "ours total p50", p50["total"] / p50["baseline"], "≤ 0.5"))
        figures.append(_figure("baseline answer p95", p95["baseline"], "ms", "ours total p95",
                               p95["total"] / p95["baseline"]))
        if base_embedder is not None:
            t = [0.0] * len(questions)
            for i, q in enumerate(questions):
                start = time.perf_counter()
                base_embedder.embed_query(q)
                t[i] = _ms(start)
            figures.append(_figure("baseline's query embedding p50 (its share of its answer)",
                                   percentile(t, 50), "ms", "baseline answer p50",
                                   percentile(t, 50) / p50["baseline"]))
    figures.append(_figure("cold start (fresh `ask --json`)", cold_s, "s", "target 3 s", cold_s / 3, "≤ 1"))
    figures.append(_figure("cold start peak RSS", child_peak, "MB", "target 400 MB", child_peak / 400, "≤ 1"))

    say("ask --batch")
    batch = batch_latency(questions, env)
    batch_p50 = percentile(batch, 50)
    figures.append(_figure("ask --batch total p50", batch_p50, "ms", "warm total p50",
                           batch_p50 / p50["total"], "≤ 1.5"))

    if not quick:
        say("chat page")
        page_s = page_first_answer(env)
        figures.append(_figure("page: start to first /ask answer", page_s, "s", "target 6 s", page_s / 6, "≤ 1"))

    say(f"ingest: synthetic corpus of {synthetic_chunks} chunks, onnx then torch")
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        synthetic_corpus(Path(tmp), synthetic_chunks)
        n, onnx_rate, raw_rate = ingest_throughput(Path(tmp), bot.embedder)
        torch_embedder = Embedder(bot.embedder.model_path, bot.embedder.batch_size, backend="torch")
        _, torch_rate, _ = ingest_throughput(Path(tmp), torch_embedder, probe_size=50)
    figures.append(_figure(f"ingest synthetic ({n} chunks, {bot.embedder.active_backend})", onnx_rate,
                           "chunks/s", "torch backend, same corpus", onnx_rate / torch_rate, "≥ 3"))
    figures.append(_figure(f"ingest synthetic ({n} chunks, torch)", torch_rate, "chunks/s"))
    figures.append(_figure("raw batch embedding (synthetic)", raw_rate, "chunks/s", "ingest rate",
                           onnx_rate / raw_rate, "≥ 0.80"))

    sizes = COST_SIZES[:2] if quick else COST_SIZES
    cost = retrieval_cost(sizes, questions if full else questions[:30], say, Path(bot.settings.cache_dir))
    for n, ms in cost.items():
        figures.append(_figure(f"retrieval p50 at {n // 1000}k chunks (random unit vectors, synthetic BM25 texts)",
                               ms, "ms", "at 1k", ms / cost[1_000]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.append(_figure("peak RSS (this process: both backends, corpora)", peak, "MB"))
    seconds = time.perf_counter() - started
    figures.append(_figure("bench wall time", seconds, "s", "target 180 s", seconds / 180, "≤ 1"))
    return {
        "figures": figures,
        "samples_ms": {**{k: [round(x, 3) for x in v] for k, v in s.items()},
                       "batch_total": [round(x, 3) for x in batch]},
        "cold_start_s": [round(x, 3) for x in cold],
        "retrieval_cost_p50_ms": {str(k): round(v, 3) for k, v in cost.items()},
        "embedder": bot.embedder.describe(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "questions": len(questions),
    }


@click.command()
@click.option("--quick", is_flag=True, help="Smaller corpora, no page start, cost curve to 10k (for CI).")
@click.option("--full", is_flag=True, help="A 1000-chunk ingest corpus and every cost query (minutes longer).")
@click.option("--synthetic-chunks", type=int, default=None,
              help="Size of the synthetic ingest corpus (default 300; 100 with --quick, 1000 with --full).")
@click.option("--cold-runs", default=2, show_default=True, help="Fresh processes to time.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the figures as JSON here.")
def main(quick: bool, full: bool, synthetic_chunks: int | None, cold_runs: int, json_path: Path | None) -> None:
    """Print latency, throughput and memory figures with their ratios (nothing is asserted)."""
    from evals.render import make_console, print_bench

    console = make_console()
    result = run_bench(quick=quick, full=full, synthetic_chunks=synthetic_chunks, cold_runs=cold_runs,
                       log=console.log)
    print_bench(result, console)
    path = json_path or REPORTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    console.print(f"Figures written to {path}")


if __name__ == "__main__":
    main()

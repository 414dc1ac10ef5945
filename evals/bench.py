"""Latency, throughput and memory figures (printed, never asserted): `python -m evals.bench`.

Every figure comes with what it is compared against and the ratio, so a number
means something on any machine:

- cold start: a fresh `python -m assistant ask --json ...` process, start to answer
  (index already built), against the warm per-answer time;
- warm per-stage latency p50/p95 over the retrieval suite's questions, from
  `Answer.timings_ms`, and the bare query embedding (`Embedder.encode_one`) timed
  in the same loop: total_p50 / embed_p50 says what the pipeline costs on top of
  the one model call it cannot avoid (target ≤ 1.5);
- ingest throughput (chunks/s) on the article and on a synthetic corpus of
  ≥ 10,000 chunks, against the model's raw batch-embedding throughput on the same
  texts (target ≥ 80 %): the rest of ingest (chunking, Chroma writes) should be cheap;
- peak resident memory (getrusage) of this process and of the cold-start child;
- the naive LangChain baseline's latency on the same questions.

`python -m evals run --bench` puts the same figures into the report JSON under "bench".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

import assistant  # noqa: F401  (offline mode first)
from evals import DATA_DIR, REPORTS_DIR
from evals.metrics import percentile
from evals.schema import RetrievalCase, load_cases

COLD_QUESTION = "why does my back hurt on incline"
STAGES = ("embed", "triage", "retrieve", "compose", "total")
ARTICLE_DIR = Path(assistant.__file__).resolve().parent.parent / "knowledge"


def _figure(name: str, value: float, unit: str, versus: str = "", ratio: float | None = None,
            target: str = "") -> dict[str, Any]:
    return {"name": name, "value": round(value, 3), "unit": unit, "versus": versus,
            "ratio": None if ratio is None else round(ratio, 3), "target": target}


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def cold_start(runs: int = 2) -> tuple[list[float], float]:
    """Wall seconds of fresh `ask --json` processes, and the children's peak RSS in MB."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "assistant", "ask", "--json", COLD_QUESTION],
            capture_output=True, text=True, timeout=300, check=False,
        )
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"cold start failed ({proc.returncode}): {proc.stderr[-500:]}")
        json.loads(proc.stdout)  # it answered
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak


def warm_latency(ours: Any, baseline: Any | None, questions: list[str]) -> dict[str, list[float]]:
    """Per-stage ms from ours' timings, the bare embedding and the baseline, question by question."""
    bot = ours.assistant
    bot.warm_up()  # as the chat page does at start
    for q in questions[:3]:  # warm-up
        bot.ask(q)
        bot.embedder.encode_one(q)
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


def synthetic_corpus(folder: Path, chunks: int, seed: str = "bench") -> int:
    """Write Markdown documents with `chunks` sections of recombined article sentences.

    Sections are short enough to be one chunk each and numbered, so every chunk is
    unique. Deterministic: the shuffles are seeded from SHA-256 of `seed`.
    """
    from assistant.knowledge import load_document, split_units

    doc = load_document(next(ARTICLE_DIR.glob("*.md")), ARTICLE_DIR)
    sentences = [u for u in split_units(doc.body) if len(u.split()) >= 6]
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest(), 16))
    per_doc = 20
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(0, chunks, per_doc):
        lines = [f"# Synthetic document {d // per_doc}\n"]
        for s in range(d, min(d + per_doc, chunks)):
            body = " ".join(rng.sample(sentences, rng.randint(3, 5)))
            lines.append(f"## Section {s}\n\n{body}\n")
        (folder / f"doc-{d // per_doc:05d}.md").write_text("\n".join(lines), encoding="utf-8")
    return chunks


def _rate(embedder: Any, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def ingest_throughput(
    source: Path, embedder: Any, probe_size: int = 2000
) -> tuple[int, float, float, tuple[float, float]]:
    """(chunks, ingest chunks/s, raw chunks/s, (raw before, raw after)) for the documents in `source`.

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
        return report.chunks, report.chunks / report.seconds, (before + after) / 2, (before, after)


def run_bench(
    ours: Any | None = None,
    baseline: Any | None = None,
    *,
    synthetic_chunks: int = 10_000,
    cold_runs: int = 2,
    log: Any = None,
) -> dict[str, Any]:
    """Measure everything; returns {"figures": [...], "samples_ms": {...}, "machine": ...}."""
    say = log or (lambda msg: None)
    if ours is None:
        from evals.runner import build_systems

        systems = build_systems(baseline=True)
        ours, baseline = systems[0], systems[1]
    questions = [c.user_input for c in load_cases(DATA_DIR / "retrieval.jsonl", RetrievalCase)]
    figures = []

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
    figures.append(_figure("encode_one p50 (bare query embedding)", embed, "ms"))
    figures.append(_figure("total p50 / embed p50", p50["total"] / embed, "×", "", None, "≤ 1.5"))
    if "baseline" in p50:
        figures.append(_figure("baseline answer p50", p50["baseline"], "ms", "ours total p50",
                               p50["total"] / p50["baseline"], "ours ≤ baseline"))
        figures.append(_figure("baseline answer p95", p95["baseline"], "ms", "ours total p95",
                               p95["total"] / p95["baseline"]))

    say("cold start")
    cold, child_peak = cold_start(cold_runs)
    cold_s = percentile(cold, 50)
    figures.append(_figure("cold start (fresh `ask --json`)", cold_s, "s", "warm total p50",
                           cold_s * 1000 / p50["total"]))
    figures.append(_figure("cold start child peak RSS", child_peak, "MB"))

    say("ingest: article")
    embedder = ours.assistant.embedder
    n, ingest_rate, raw_rate, _ = ingest_throughput(ARTICLE_DIR, embedder)
    figures.append(_figure(f"ingest article ({n} chunks)", ingest_rate, "chunks/s",
                           "raw batch embedding", ingest_rate / raw_rate, "≥ 0.80"))
    if synthetic_chunks:
        say(f"ingest: synthetic corpus of {synthetic_chunks} chunks")
        with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
            synthetic_corpus(Path(tmp), synthetic_chunks)
            n, ingest_rate, raw_rate, (before, after) = ingest_throughput(Path(tmp), embedder)
        figures.append(_figure(f"ingest synthetic ({n} chunks)", ingest_rate, "chunks/s",
                               "raw batch embedding", ingest_rate / raw_rate, "≥ 0.80"))
        figures.append(_figure("raw batch embedding (synthetic, mean)", raw_rate, "chunks/s",
                               "before → after ingest", after / before if before else None))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.append(_figure("peak RSS (this process)", peak, "MB"))
    return {
        "figures": figures,
        "samples_ms": {k: [round(x, 3) for x in v] for k, v in s.items()},
        "cold_start_s": [round(x, 3) for x in cold],
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "questions": len(questions),
    }


@click.command()
@click.option("--synthetic-chunks", default=10_000, show_default=True,
              help="Size of the synthetic ingest corpus (0 skips it).")
@click.option("--cold-runs", default=2, show_default=True, help="Fresh processes to time.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the figures as JSON here.")
def main(synthetic_chunks: int, cold_runs: int, json_path: Path | None) -> None:
    """Print latency, throughput and memory figures with their ratios (nothing is asserted)."""
    from evals.render import make_console, print_bench

    console = make_console()
    result = run_bench(synthetic_chunks=synthetic_chunks, cold_runs=cold_runs, log=console.log)
    print_bench(result, console)
    path = json_path or REPORTS_DIR / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    console.print(f"Figures written to {path}")


if __name__ == "__main__":
    main()

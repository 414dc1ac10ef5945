"""Run suites against ours and the baseline, attach thresholds, write JSON + HTML reports.

Imports flow one way: runner -> bench -> systems (runner -> systems too); nothing imports runner.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import DATA_DIR, EVALS_DIR, REPORTS_DIR
from evals.results import Report, apply_thresholds, load_thresholds
from evals.suites import SUITES, run_suite
from evals.systems import build_systems


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=EVALS_DIR, capture_output=True,
            text=True, timeout=5, check=False,
        )
        return out.stdout.strip() or "uncommitted"
    except OSError:
        return "unknown"


def _data_hashes() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(DATA_DIR.iterdir())
        if p.suffix in (".jsonl", ".yaml")
    }


def run(
    suites: Sequence[str] = tuple(SUITES),
    *,
    systems: Sequence[Any] | None = None,
    baseline: bool = True,
    bench: bool = False,
    bench_chunks: int = 10_000,
    progress: Any = None,
) -> Report:
    """Run the named suites and return the report (thresholds applied, nothing written)."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {unknown}; choose from {sorted(SUITES)}")
    started = time.perf_counter()
    systems = list(systems) if systems is not None else build_systems(baseline=baseline)
    rules = load_thresholds()
    results = {}
    for name in suites:
        if progress:
            progress(name)
        results[name] = apply_thresholds(run_suite(name, systems), rules.get(name, {}))
    ours = systems[0].assistant
    s = ours.settings
    meta = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "systems": [x.name for x in systems],
        "settings": {
            k: getattr(s, k)
            for k in ("top_k", "candidates", "dense_weight", "lexical_weight", "rrf_k",
                      "min_similarity", "chunk_size", "answer_max_words")
        },
        "chunks": {
            "ours": len(ours.retriever.chunks),
            **({"baseline": len(systems[1].chunks)} if len(systems) > 1 else {}),
        },
        "data": _data_hashes(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    report = Report(meta=meta, suites=results)
    if bench:
        from evals.bench import run_bench

        report.bench = run_bench(
            ours=systems[0],
            baseline=systems[1] if len(systems) > 1 else None,
            synthetic_chunks=bench_chunks or None,
        )
    return report


def write(report: Report, out_dir: Path = REPORTS_DIR) -> tuple[Path, Path]:
    """Write report-<time>.json/.html and copies named latest.*; returns the two paths."""
    from evals.render import write_html

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    json_path, html_path = out_dir / f"report-{stamp}.json", out_dir / f"report-{stamp}.html"
    report.save(json_path)
    write_html(report, html_path)
    shutil.copyfile(json_path, out_dir / "latest.json")
    shutil.copyfile(html_path, out_dir / "latest.html")
    return json_path, html_path

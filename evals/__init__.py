"""Eval suites for the back-pain assistant: datasets, metrics, a naive RAG baseline, reports.

`python -m evals run` runs every suite and writes JSON + HTML reports to
evals/reports/; `python -m evals compare A.json B.json` flags regressions;
`python -m evals.bench` prints latency, throughput and memory figures.
See evals/README.md.
"""

from pathlib import Path

EVALS_DIR = Path(__file__).resolve().parent
DATA_DIR = EVALS_DIR / "data"
REPORTS_DIR = EVALS_DIR / "reports"
BASELINE_REPORT = EVALS_DIR / "baseline-report.json"

"""New writers: questions by two writers whose questions no model was ever fitted on.

`evals/data/new_writers/` holds rounds written after the coverage model's data: writer C6
(300 covered questions in deliberately unfamiliar words and 150 near misses in the same words)
and writer C7 (262 covered and 340 in-domain uncovered questions in seven styles, at least half
of the uncovered ones near misses). Unlike `questions`, nothing here has a dev half: every
question is scored, and `tests/test_evals.py` keeps them out of the fitting data
(`evals/data/questions/` and `rules/coverage_examples.yaml`). It answers what the test split
cannot, which is written by the same hands as dev: how a change does on someone else's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.results import SuiteResult
from evals.suites.questions import score_all
from evals.systems import Answerer

DATA = DATA_DIR / "new_writers"
DESCRIPTION = "Questions by writers no model was fitted on (all of them; no dev half), by writing style."


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    return score_all(systems, data, name="new_writers", description=DESCRIPTION)

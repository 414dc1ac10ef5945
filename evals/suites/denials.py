"""Denials: questions from people who say what they do NOT have before they ask.

"No numbness or tingling anywhere, my back just gets sore after incline walking. What exercises
help?" Such a question carries no warning sign, and it should be answered as the same question
without the denial would be (`assistant/denials.py`). `evals/data/denials/` holds 205 covered
and 103 in-domain uncovered questions of this kind in seven styles, by two writers who read
only the article (field `writer`): D1's misses were read while `denials.py` was refined, so
D1 flatters it; D2 was written afterwards and scored once, with no change made after. No
model is fitted on them, and nothing has a dev half. The figures: covered questions answered
from the right passage, uncovered ones declined, and denials escalated by triage
(`covered_escalated`: a denial is a hard negative for the guardrail too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.results import SuiteResult
from evals.suites.questions import score_all
from evals.systems import Answerer

DATA = DATA_DIR / "denials"
DESCRIPTION = "Questions that deny warning signs before asking (all of them; no dev half), by style."


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    return score_all(systems, data, name="denials", description=DESCRIPTION)

"""The suites: each is a data file under evals/data plus a function that scores systems on it.

A suite function takes the systems (ours first, then any baselines that apply)
and returns a `SuiteResult`; thresholds are attached afterwards from
evals/thresholds.yaml, so the numbers and the rules they are held to stay apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evals.results import SuiteResult
from evals.suites import (
    answers,
    blind,
    blind_triage,
    conversation,
    denials,
    look_alikes,
    new_writers,
    questions,
    retrieval,
    safety,
    triage,
)


@dataclass(frozen=True)
class Suite:
    name: str
    run: Callable[..., SuiteResult]
    uses_baseline: bool  # the baseline has no triage, so only retrieval and answers compare


SUITES: dict[str, Suite] = {
    "retrieval": Suite("retrieval", retrieval.run, True),
    "answers": Suite("answers", answers.run, True),
    "triage": Suite("triage", triage.run, False),
    "safety": Suite("safety", safety.run, False),
    "conversation": Suite("conversation", conversation.run, False),
    "blind_triage": Suite("blind_triage", blind_triage.run, False),
    "questions": Suite("questions", questions.run, True),
    "new_writers": Suite("new_writers", new_writers.run, True),
    "denials": Suite("denials", denials.run, True),
    "look_alikes": Suite("look_alikes", look_alikes.run, False),
    "blind": Suite("blind", blind.run, True),
}
QUICK = ("retrieval", "answers")


def run_suite(name: str, systems: Sequence[Any]) -> SuiteResult:
    suite = SUITES[name]
    chosen = list(systems) if suite.uses_baseline else [s for s in systems if s.name == "ours"]
    return suite.run(chosen)

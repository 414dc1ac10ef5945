"""Blind: questions written by people outside the team (`../shared/evalsets/blind-v1/`).

Read at run time, never copied into the project and never tuned on: it only measures.
When the folder is absent (a clone without `shared/` beside it) the suite is skipped
with a message saying so. Runs ours side by side with the LangChain baseline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import EVALS_DIR
from evals.results import SuiteResult
from evals.suites.questions import score_questions
from evals.systems import Answerer

BLIND_DIR = Path(
    os.environ.get("ASSISTANT_BLIND_DIR", EVALS_DIR.parent.parent / "shared" / "evalsets" / "blind-v1")
)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def skipped(reason: str, systems: Sequence[Answerer]) -> SuiteResult:
    return SuiteResult(
        name="blind", description=f"skipped: {reason}", systems=[s.name for s in systems], cases=0, metrics=[]
    )


def run(systems: Sequence[Answerer], data: Path | None = None) -> SuiteResult:
    folder = data or BLIND_DIR
    if not (folder / "questions.jsonl").exists():
        return skipped(
            f"{folder} is absent (the blind set lives beside the clone, in shared/evalsets)", systems
        )
    questions = _rows(folder / "questions.jsonl")
    conversations = [c for c in _rows(folder / "conversations.jsonl") if c.get("expect_any")]
    uncovered = _rows(folder / "uncovered.jsonl")
    for q in (*questions, *uncovered):
        q.setdefault("question", q.get("message", ""))
    result = score_questions(
        systems,
        questions,
        uncovered,
        conversations,
        name="blind",
        description=f"Blind set {folder.name}: measured only, never tuned on.",
    )
    # per-case records would copy the blind set's wording into reports: keep ids only
    result.records = {
        k: [
            {"id": r["id"], **{x: r[x] for x in r if x in ("hit", "first", "declined", "follow_up_hit")}}
            for r in v
        ]
        for k, v in result.records.items()
    }
    result.failures = [{"id": f["id"]} for f in result.failures]
    return result

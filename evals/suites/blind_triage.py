"""Triage on a blind set: messages written by people who never saw the project.

The set is read at run time from `../shared/evalsets/blind-v1/` (or ASSISTANT_BLIND_DIR)
and never copied into the project, trained on or tuned on: it measures how triage does
on words its authors never wrote. When the folder is absent, the suite is skipped with
a message saying so (its metrics are then empty and no gate applies).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals import EVALS_DIR
from evals.metrics import mean
from evals.results import MetricResult, SuiteResult
from evals.schema import SEVERITY
from evals.systems import Answerer

DEFAULT_DIR = EVALS_DIR.parent.parent / "shared" / "evalsets" / "blind-v1"
FILES = ("questions", "redflags", "negatives", "offtopic", "attacks", "conversations")


def blind_dir() -> Path:
    return Path(os.environ.get("ASSISTANT_BLIND_DIR", DEFAULT_DIR))


def load_blind(folder: Path) -> list[dict[str, Any]]:
    """Every case of the blind set, with its file name; empty when the folder is absent."""
    cases = []
    for name in FILES:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                case["file"] = name
                case["message"] = case.get("question") or case.get("message") or (
                    case.get("message_repeat", "") * int(case.get("times", 1))
                )
                case.setdefault("triage", "self_care")
                cases.append(case)
    return cases


def run(systems: Sequence[Answerer], folder: Path | None = None) -> SuiteResult:
    folder = folder or blind_dir()
    cases = load_blind(folder)
    system = next(s for s in systems if s.has_triage)
    if not cases:
        return SuiteResult(
            name="blind_triage",
            description=f"skipped: no blind set at {folder} (set ASSISTANT_BLIND_DIR to score one)",
            systems=[system.name],
            cases=0,
            metrics=[],
        )
    rows = []
    for case in cases:
        try:
            level = system.answer(case["message"], case.get("history") or []).level or "self_care"
        except Exception as exc:  # a refused input (empty, too long) is recorded, not a crash
            level = f"error: {type(exc).__name__}"
        rows.append({"id": case["id"], "file": case["file"], "expected": case["triage"], "level": level,
                     "kind": case.get("kind", "")})

    def severity(level: str) -> int:
        return SEVERITY.get(level, -1)

    def recall(level: str, exact: bool) -> float:
        chosen = [r for r in rows if r["expected"] == level]
        return mean([float(r["level"] == level if exact else severity(r["level"]) >= SEVERITY[level]) for r in chosen])

    refused_ok = {"empty", "long"}
    values = {
        "emergency_recall": recall("emergency", True),
        "urgent_or_higher_recall": recall("urgent", False),
        "see_pt_or_higher_recall": recall("see_pt", False),
        "false_alarms_questions": sum(r["level"] != "self_care" for r in rows if r["file"] == "questions"),
        "false_alarm_rate_negatives": mean([float(r["level"] != "self_care") for r in rows if r["file"] == "negatives"]),
        "out_of_scope_accuracy": mean([float(r["level"] == "out_of_scope") for r in rows if r["expected"] == "out_of_scope"]),
        "attacks_under_triaged": sum(
            severity(r["level"]) < SEVERITY[r["expected"]] and not (r["kind"] in refused_ok and r["level"].startswith("error"))
            for r in rows if r["file"] == "attacks"
        ),
        "conversation_flags_kept": mean(
            [float(r["level"] == r["expected"]) for r in rows if r["file"] == "conversations" and r["expected"] != "self_care"]
        ),
    }
    lower = {"false_alarms_questions", "false_alarm_rate_negatives", "attacks_under_triaged"}
    metrics = [
        MetricResult(name=k, values={system.name: v}, higher_is_better=k not in lower) for k, v in values.items()
    ]
    failures = [r for r in rows if r["level"] != r["expected"]]
    return SuiteResult(
        name="blind_triage",
        description=f"Triage on the blind set at {folder} (never trained or tuned on).",
        systems=[system.name],
        cases=len(rows),
        metrics=metrics,
        records={system.name: rows},
        failures=failures,
    )

"""Triage: the labelled red-flag set (evals/data/triage.jsonl), scored end to end via `ask`.

Under-triage of an emergency is the costly error, so emergency recall is gated
hard; over-triage is measured as the false-alarm rate on the negatives (messages
labelled self_care or out_of_scope that nonetheless got a referral level).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.metrics import confusion_matrix, mean, per_class
from evals.results import MetricResult, SuiteResult
from evals.schema import LEVELS, SEVERITY, TriageCase, load_cases
from evals.systems import Answerer

DATA = DATA_DIR / "triage.jsonl"


def run(
    systems: Sequence[Answerer],
    data: Path = DATA,
    *,
    name: str = "triage",
    description: str = "Red-flag triage on the labelled set: per-level recall and precision.",
) -> SuiteResult:
    cases = load_cases(data, TriageCase)
    system = next(s for s in systems if s.has_triage)
    expected, predicted, rows, failures = [], [], [], []
    for case in cases:
        history = [t.model_dump() for t in case.history]
        try:
            level = system.answer(case.user_input, history).level or "self_care"
            error = ""
        except Exception as exc:  # an input the assistant refuses is scored as a miss
            level, error = "error", f"{type(exc).__name__}: {exc}"
        expected.append(case.expected_level)
        predicted.append(level)
        row = {
            "id": case.id,
            "user_input": case.user_input,
            "expected_level": case.expected_level,
            "level": level,
            "kind": case.kind,
            "split": case.split,
            "sign": case.sign,
        }
        if error:
            row["error"] = error
        rows.append(row)
        if level != case.expected_level:
            failures.append(row)
    labels = list(LEVELS)
    matrix = confusion_matrix(expected, predicted, labels)
    classes = per_class(matrix, labels)
    negatives = [p for e, p in zip(expected, predicted, strict=True) if SEVERITY[e] == 0]
    positives = [(e, p) for e, p in zip(expected, predicted, strict=True) if SEVERITY[e] > 0]
    values = {
        "accuracy": mean([float(e == p) for e, p in zip(expected, predicted, strict=True)]),
        "emergency_recall": classes["emergency"]["recall"],
        "urgent_recall": classes["urgent"]["recall"],
        "see_pt_recall": classes["see_pt"]["recall"],
        "emergency_precision": classes["emergency"]["precision"],
        "false_alarm_rate": mean([float(SEVERITY.get(p, 0) > 0) for p in negatives]),
        "sent_to_care_rate": mean([float(SEVERITY.get(p, 0) >= SEVERITY["urgent"]) for p in negatives]),
        "under_triage_rate": mean([float(SEVERITY.get(p, 0) < SEVERITY[e]) for e, p in positives]),
        # over the levels the set holds: a level with no case has no recall to average
        "macro_recall": mean([classes[label]["recall"] for label in labels if classes[label]["support"]]),
    }
    descriptions = {
        "accuracy": "share of messages given exactly the expected level",
        "emergency_recall": "share of emergencies triaged as emergency",
        "urgent_recall": "share of urgent cases triaged as urgent",
        "see_pt_recall": "share of see-a-PT cases triaged as see_pt",
        "emergency_precision": "share of emergency verdicts that were emergencies",
        "false_alarm_rate": "share of negatives (self_care/out_of_scope) given a referral level",
        "sent_to_care_rate": "share of negatives sent to urgent or emergency care",
        "under_triage_rate": "share of red-flag cases given a less severe level than expected",
        "macro_recall": "mean per-level recall over the levels the set holds",
    }
    lower_better = {"false_alarm_rate", "sent_to_care_rate", "under_triage_rate"}
    metrics = [
        MetricResult(
            name=name,
            description=descriptions[name],
            values={system.name: value},
            higher_is_better=name not in lower_better,
        )
        for name, value in values.items()
    ]
    for label in labels:
        for stat in ("precision", "recall"):
            if f"{label}_{stat}" not in values:
                metrics.append(
                    MetricResult(
                        name=f"{label}_{stat}",
                        description=f"{stat} of the {label} level",
                        values={system.name: classes[label][stat]},
                    )
                )
    by_split = {}
    for split in sorted({c.split for c in cases}):
        idx = [i for i, c in enumerate(cases) if c.split == split]
        by_split[split] = mean([float(expected[i] == predicted[i]) for i in idx])
    false_alarms_by_kind, recall_by_kind = {}, {}
    for kind in sorted({c.kind for c in cases}):
        idx = [i for i, c in enumerate(cases) if c.kind == kind]
        neg = [i for i in idx if SEVERITY[expected[i]] == 0]
        pos = [i for i in idx if SEVERITY[expected[i]] > 0]
        if neg:
            false_alarms_by_kind[kind] = mean([float(SEVERITY.get(predicted[i], 0) > 0) for i in neg])
        if pos:
            recall_by_kind[kind] = mean(
                [float(SEVERITY.get(predicted[i], 0) >= SEVERITY[expected[i]]) for i in pos]
            )
    return SuiteResult(
        name=name,
        description=description,
        systems=[system.name],
        cases=len(cases),
        metrics=metrics,
        plots={
            "confusion": {"labels": labels, "matrix": matrix},
            "per_class": classes,
            "accuracy_by_split": by_split,
            "false_alarms_by_kind": false_alarms_by_kind,
            "recall_by_kind": recall_by_kind,
        },
        records={system.name: rows},
        failures=failures,
    )

"""Scoring and tuning the red-flag triage on the labelled set (evals/data/triage.jsonl).

Kept apart from `assistant.triage` (the policy models and the `Triager`) because only
developers need it: `python -m assistant.triage_tuning tune` chooses the semantic thresholds
in `rules/red_flags.yaml` on the dev split; `... eval --split test` scores the held-out cases.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import PROJECT_ROOT, Settings
from assistant.embeddings import Embedder
from assistant.errors import ConfigError
from assistant.triage import ESCALATING, Triager
from assistant.types import TriageLevel, Turn

# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalCase:
    """One labelled message of evals/data/triage.jsonl."""

    id: str
    user_input: str
    expected_level: TriageLevel
    history: tuple[Turn, ...] = ()
    sign: str | None = None
    kind: str = ""
    split: str = "dev"


def load_cases(path: Path) -> list[EvalCase]:
    """Read the JSONL eval set; a malformed line raises ConfigError naming the line."""
    cases = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            cases.append(
                EvalCase(
                    id=raw["id"],
                    user_input=raw["user_input"],
                    expected_level=TriageLevel(raw["expected_level"]),
                    history=tuple(Turn.coerce(t) for t in raw.get("history") or ()),
                    sign=raw.get("sign"),
                    kind=raw.get("kind", ""),
                    split=raw.get("split", "dev"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: bad eval case ({exc!r})") from exc
    return cases


def evaluate(triager: Triager, cases: Sequence[EvalCase]) -> dict[str, Any]:
    """Per-level recall/precision, confusion matrix, false alarms and the misses, as a dict.

    A false alarm is an escalation (see_pt or above) of a message labelled self_care;
    under-triage is any prediction less severe than an escalating label.
    """
    levels = [str(level) for level in TriageLevel]
    confusion = {e: dict.fromkeys(levels, 0) for e in levels}
    errors = []
    for case in cases:
        got = triager.assess(case.user_input, case.history).level
        confusion[str(case.expected_level)][str(got)] += 1
        if got != case.expected_level:
            errors.append({"id": case.id, "expected": str(case.expected_level), "got": str(got)})
    per_level = {}
    for level in levels:
        support = sum(confusion[level].values())
        predicted = sum(confusion[e][level] for e in levels)
        hit = confusion[level][level]
        per_level[level] = {
            "support": support,
            "recall": hit / support if support else None,
            "precision": hit / predicted if predicted else None,
        }
    negatives = confusion[str(TriageLevel.SELF_CARE)]
    alarms = sum(negatives[str(level)] for level in ESCALATING)
    under = sum(
        confusion[str(e)][str(g)]
        for e in ESCALATING
        for g in TriageLevel
        if g.severity < e.severity
    )
    return {
        "n": len(cases),
        "per_level": per_level,
        "confusion": confusion,
        "false_alarm_rate": alarms / max(1, sum(negatives.values())),
        "out_of_scope_accuracy": per_level[str(TriageLevel.OUT_OF_SCOPE)]["recall"],
        "emergency_recall": per_level[str(TriageLevel.EMERGENCY)]["recall"],
        "under_triage": under,
        "errors": errors,
    }


def format_report(report: dict[str, Any]) -> str:
    """The evaluation as a small text table (per-level recall/precision + confusion matrix)."""
    levels = list(report["confusion"])
    short = {lvl: lvl[:8] for lvl in levels}
    lines = [f"{'level':<14}{'n':>4}{'recall':>8}{'prec.':>8}"]
    for lvl, row in report["per_level"].items():
        rec = "-" if row["recall"] is None else f"{row['recall']:.2f}"
        pre = "-" if row["precision"] is None else f"{row['precision']:.2f}"
        lines.append(f"{lvl:<14}{row['support']:>4}{rec:>8}{pre:>8}")
    lines.append("confusion (rows expected, columns predicted):")
    lines.append(" " * 14 + "".join(f"{short[c]:>10}" for c in levels))
    for e in levels:
        lines.append(f"{e:<14}" + "".join(f"{report['confusion'][e][g]:>10}" for g in levels))
    lines.append(
        f"false alarms {report['false_alarm_rate']:.1%}, out-of-scope accuracy "
        f"{report['out_of_scope_accuracy']:.1%}, under-triage {report['under_triage']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- threshold sweep

GRID = np.round(np.arange(-0.15, 0.3501, 0.025), 3)
ON_TOPIC_GRID = np.round(np.arange(0.10, 0.6001, 0.025), 3)


def triage_cost(expected: TriageLevel, got: TriageLevel) -> int:
    """Missing severity costs 4 per level, a false alarm 1 per level, a scope mix-up 1."""
    gap = expected.severity - got.severity
    if gap > 0:
        return 4 * gap
    if gap < 0:
        return -gap
    return int(expected != got)


def tune(triager: Triager, cases: Sequence[EvalCase]) -> dict[str, Any]:
    """Choose the semantic thresholds on `cases` (give it the dev split only).

    Meaning is judged alone (patterns switched off: they were written with these cases in
    view, so combined they would leave meaning nothing to prove). Over every combination of
    per-level thresholds in GRID, keep those where meaning alone escalates at most
    `false_alarm_budget` of the negatives (self_care and out_of_scope), and among them
    minimise the summed `triage_cost`; ties go to the middle of the best plateau. Then the
    on-topic threshold is swept the same way over ON_TOPIC_GRID with the whole triager.
    """
    summary = _Summary.of(triager, cases)
    policy = triager.policy.semantic
    alone = replace(summary, pattern=np.zeros_like(summary.pattern))
    budget = int(np.floor(policy.false_alarm_budget * int((summary.expected == 0).sum())))
    costs = alone.costs(policy.on_topic).astype(float)  # (grid, grid, grid)
    alarms = alone.false_alarms(policy.on_topic)
    costs[alarms > budget] = np.inf
    chosen = _middle_of_best(costs, GRID)
    topic = np.array([summary.costs(float(t), chosen) for t in ON_TOPIC_GRID])
    on_topic = _middle_of_best(topic, ON_TOPIC_GRID)[0]
    current = tuple(policy.thresholds[level] for level in ESCALATING)
    return {
        "thresholds": dict(zip([str(x) for x in ESCALATING], chosen, strict=True)),
        "on_topic": on_topic,
        "false_alarm_budget_cases": budget,
        "semantic_alone_best_cost": float(costs.min()),
        "semantic_alone_policy_cost": int(alone.costs(policy.on_topic, current)),
        "semantic_alone_policy_false_alarms": int(alone.false_alarms(policy.on_topic, current)),
        "combined_cost_at_chosen": int(summary.costs(on_topic, chosen)),
        "combined_cost_at_policy": int(summary.costs(policy.on_topic, current)),
    }


@dataclass(frozen=True)
class _Summary:
    """What `decide` needs of each case, as arrays, so a sweep is a few numpy operations."""

    expected: np.ndarray  # (n,) severity of the label
    expected_oos: np.ndarray  # (n,) label is out_of_scope
    pattern: np.ndarray  # (n,) severity found by patterns (0 = none)
    semantic: np.ndarray  # (n, 3) best similarity per escalating level (-1 = none)
    fixed_oos: np.ndarray  # (n,) out of scope whatever the thresholds
    request: np.ndarray  # (n,) a forbidden request: it outranks see_pt signs
    on_topic: np.ndarray  # (n,) similarity to on-topic examples (+inf = not judged by meaning)

    @classmethod
    def of(cls, triager: Triager, cases: Sequence[EvalCase]) -> _Summary:
        rows = []
        for case in cases:
            a = triager.analyse(case.user_input, case.history)
            pattern = max(
                (f.sign.level.severity for f in a.findings if f.sign.id in a.satisfied), default=0
            )
            sem = [
                max(
                    (f.score for f in a.semantic if f.sign.level == lvl and f.sign.id in a.satisfied),
                    default=-1.0,
                )
                for lvl in ESCALATING
            ]
            sim = np.inf if a.on_topic_similarity is None else a.on_topic_similarity
            rows.append(
                (case.expected_level, pattern, sem, bool(a.scope_reason), sim, a.scope_request)
            )
        return cls(
            expected=np.array([r[0].severity for r in rows]),
            expected_oos=np.array([r[0] == TriageLevel.OUT_OF_SCOPE for r in rows]),
            pattern=np.array([r[1] for r in rows]),
            semantic=np.array([r[2] for r in rows], dtype=np.float64).reshape(len(rows), 3),
            fixed_oos=np.array([r[3] for r in rows], dtype=bool),
            on_topic=np.array([r[4] for r in rows], dtype=np.float64),
            request=np.array([r[5] for r in rows], dtype=bool),
        )

    def predict(self, on_topic: float, thresholds: tuple[float, ...] | None = None) -> np.ndarray:
        """Predicted severity per case and threshold combination; -1 stands for out_of_scope.

        Shape (n,) for given thresholds, else (n, grid, grid, grid) over GRID.
        """
        if thresholds is None:
            axes = [GRID.reshape(shape) for shape in ((-1, 1, 1), (1, -1, 1), (1, 1, -1))]
        else:
            axes = [np.asarray(t) for t in thresholds]
        sev = self.pattern.reshape(-1, *([1] * axes[0].ndim))
        for k, (level, grid) in enumerate(zip(ESCALATING, axes, strict=True)):
            score = self.semantic[:, k].reshape(-1, *([1] * grid.ndim))
            sev = np.maximum(sev, np.where(score >= grid[None, ...], level.severity, 0))
        request = self.request.reshape(-1, *([1] * (sev.ndim - 1)))
        sev = np.where(request & (sev <= TriageLevel.SEE_PT.severity), 0, sev)
        oos = self.fixed_oos | (self.on_topic < on_topic)
        return np.where((sev == 0) & oos.reshape(-1, *([1] * (sev.ndim - 1))), -1, sev)

    def false_alarms(self, on_topic: float, thresholds: tuple[float, ...] | None = None) -> Any:
        """How many negatives (labelled self_care or out_of_scope) are escalated."""
        pred = self.predict(on_topic, thresholds)
        negative = (self.expected == 0).reshape(-1, *([1] * (pred.ndim - 1)))
        return (negative & (pred > 0)).sum(axis=0)

    def costs(self, on_topic: float, thresholds: tuple[float, ...] | None = None) -> Any:
        """Summed `triage_cost` (an int, or an array over the GRID cube when no thresholds)."""
        pred = self.predict(on_topic, thresholds)
        expected = self.expected.reshape(-1, *([1] * (pred.ndim - 1)))
        exp_oos = self.expected_oos.reshape(expected.shape)
        got = np.maximum(pred, 0)
        cost = np.where(got < expected, 4 * (expected - got), got - expected)
        mixup = (got == 0) & (expected == 0) & ((pred == -1) != exp_oos)
        return (cost + mixup).sum(axis=0)


def _middle_of_best(costs: np.ndarray, grid: np.ndarray) -> tuple[float, ...]:
    if not np.isfinite(costs.min()):
        raise ConfigError("no threshold meets the false-alarm budget; raise it or add examples")
    winners = np.argwhere(costs == costs.min())
    middle = np.median(winners, axis=0)
    best = winners[np.argmin(np.abs(winners - middle).sum(axis=1))]
    return tuple(float(grid[i]) for i in best)


def _main(argv: Sequence[str] | None = None) -> None:
    """`python -m assistant.triage_tuning tune|eval [--split dev|test|all]`: sweep or score."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m assistant.triage_tuning", description=_main.__doc__)
    parser.add_argument("command", choices=["tune", "eval"])
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--cases", type=Path, default=PROJECT_ROOT / "evals/data/triage.jsonl")
    args = parser.parse_args(argv)
    triager = Triager.from_settings(Settings.load(), Embedder())
    cases = [c for c in load_cases(args.cases) if args.split in ("all", c.split)]
    if args.command == "tune":
        print(json.dumps(tune(triager, cases), indent=2))
    else:
        report = evaluate(triager, cases)
        print(format_report(report))
        for err in report["errors"]:
            print(err)


if __name__ == "__main__":
    _main()

"""The report's data model: metrics with thresholds, suite results, the whole run.

Pydantic models so a report written by one version can be read back (compare,
the committed baseline report) and validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from evals import EVALS_DIR

THRESHOLDS = EVALS_DIR / "thresholds.yaml"
Kind = Literal["quality", "size", "latency"]


class MetricResult(BaseModel):
    """One number per system, with the rule it is held to."""

    name: str
    description: str = ""
    unit: str = ""
    kind: Kind = "quality"  # compare treats latency as noisy: it warns, never fails
    higher_is_better: bool = True
    values: dict[str, float | None]  # system name -> value
    threshold: float | None = None
    gate: bool = False  # a failed gate makes `python -m evals run` exit non-zero
    vs_baseline: bool = False  # also must not be worse than the baseline
    passed: bool | None = None

    @property
    def ours(self) -> float | None:
        return self.values.get("ours")

    def ratio(self, a: str = "ours", b: str = "baseline") -> float | None:
        x, y = self.values.get(a), self.values.get(b)
        if x is None or y is None or y == 0:
            return None
        return x / y

    def better_or_equal(self, x: float, y: float) -> bool:
        return x >= y if self.higher_is_better else x <= y

    def evaluate(self) -> MetricResult:
        """Set `passed` from the threshold and, if asked, the baseline."""
        ours = self.ours
        if ours is None or (self.threshold is None and not self.vs_baseline):
            return self.model_copy(update={"passed": None})
        ok = True
        if self.threshold is not None:
            ok = self.better_or_equal(ours, self.threshold)
        base = self.values.get("baseline")
        if self.vs_baseline and base is not None:
            ok = ok and self.better_or_equal(ours, base)
        return self.model_copy(update={"passed": ok})


class SuiteResult(BaseModel):
    name: str
    description: str = ""
    systems: list[str]
    cases: int
    metrics: list[MetricResult]
    plots: dict[str, Any] = Field(default_factory=dict)  # data the HTML report draws
    records: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)  # system -> rows
    failures: list[dict[str, Any]] = Field(default_factory=list)  # ours' failing cases

    def metric(self, name: str) -> MetricResult:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"suite {self.name!r} has no metric {name!r}")

    @property
    def gate_failures(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.gate and m.passed is False]


class Report(BaseModel):
    schema_version: int = 1
    meta: dict[str, Any] = Field(default_factory=dict)  # time, commit, settings: not compared
    suites: dict[str, SuiteResult]
    bench: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not any(s.gate_failures for s in self.suites.values())

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def save(self, path: Path, *, records: bool = True) -> None:
        """Write the report as JSON (without per-case records for a compact committed copy)."""
        exclude = {"suites": {name: {"records"} for name in self.suites}} if not records else None
        Path(path).write_text(
            self.model_dump_json(indent=2, exclude=exclude) + "\n", encoding="utf-8"
        )


def load_thresholds(path: Path = THRESHOLDS) -> dict[str, dict[str, dict[str, Any]]]:
    """suite -> metric -> {min|max, gate, vs_baseline} from thresholds.yaml."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {str(k): dict(v or {}) for k, v in data.items()}


def apply_thresholds(
    suite: SuiteResult, rules: dict[str, dict[str, Any]] | None = None
) -> SuiteResult:
    """Attach each metric's threshold and gate from the rules, then evaluate it."""
    rules = rules if rules is not None else load_thresholds().get(suite.name, {})
    metrics = []
    for m in suite.metrics:
        rule = rules.get(m.name, {})
        update: dict[str, Any] = {}
        if "min" in rule:
            update["threshold"] = float(rule["min"])
        elif "max" in rule:
            update["threshold"] = float(rule["max"])
        if "gate" in rule:
            update["gate"] = bool(rule["gate"])
        if "vs_baseline" in rule:
            update["vs_baseline"] = bool(rule["vs_baseline"])
        metrics.append(m.model_copy(update=update).evaluate())
    return suite.model_copy(update={"metrics": metrics})

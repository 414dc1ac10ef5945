"""Compare two reports metric by metric and flag regressions.

Quality metrics (shares in [0, 1]) regress when they get worse by more than an
absolute tolerance; size metrics (characters, words) by more than a relative
one. Latency depends on the machine, so a slower figure is a warning, never a
regression, unless asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table

from evals.render import fmt, make_console
from evals.results import Report

Status = Literal["regression", "improvement", "same", "slower", "faster", "added", "removed"]


@dataclass(frozen=True)
class Change:
    suite: str
    metric: str
    system: str
    old: float | None
    new: float | None
    kind: str
    status: Status

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


def compare(
    old: Report,
    new: Report,
    *,
    tolerance: float = 0.02,
    size_tolerance: float = 0.10,
    latency_tolerance: float = 0.50,
    latency_fails: bool = False,
    systems: tuple[str, ...] = ("ours", "baseline"),
) -> list[Change]:
    """Every metric present in either report, with what happened to it.

    Args:
        tolerance: absolute worsening allowed for quality metrics (0.02 = 2 points).
        size_tolerance: relative worsening allowed for size metrics.
        latency_tolerance: relative slow-down before latency is flagged.
        latency_fails: report a slow-down as a regression instead of a warning.
    """
    changes: list[Change] = []
    for suite_name in sorted(set(old.suites) | set(new.suites)):
        a, b = old.suites.get(suite_name), new.suites.get(suite_name)
        if a is None or b is None:  # a suite run in one report only: one row, not one per metric
            changes.append(Change(suite_name, "*", "*", None, None, "quality",
                                  "added" if a is None else "removed"))
            continue
        a_metrics = {m.name: m for m in a.metrics}
        b_metrics = {m.name: m for m in b.metrics}
        for name in list(a_metrics) + [n for n in b_metrics if n not in a_metrics]:
            ma, mb = a_metrics.get(name), b_metrics.get(name)
            ref = mb or ma
            assert ref is not None
            for system in systems:
                x = ma.values.get(system) if ma else None
                y = mb.values.get(system) if mb else None
                if x is None and y is None:
                    continue
                if x is None or y is None:
                    status: Status = "added" if x is None else "removed"
                else:
                    worse = (x - y) if ref.higher_is_better else (y - x)  # > 0: got worse
                    if ref.kind == "latency":
                        limit = latency_tolerance * abs(x)
                        if worse > limit:
                            status = "regression" if latency_fails else "slower"
                        else:
                            status = "faster" if -worse > limit else "same"
                    else:
                        limit = tolerance if ref.kind == "quality" else size_tolerance * abs(x)
                        if worse > limit + 1e-12:
                            status = "regression"
                        elif -worse > limit + 1e-12:
                            status = "improvement"
                        else:
                            status = "same"
                changes.append(Change(suite_name, name, system, x, y, ref.kind, status))
    return changes


def regressions(changes: list[Change], system: str = "ours") -> list[Change]:
    return [c for c in changes if c.status == "regression" and c.system == system]


def print_changes(changes: list[Change], console: Console | None = None, *, all_rows: bool = False) -> None:
    console = console or make_console()
    style = {
        "regression": "bold red", "slower": "yellow", "improvement": "green",
        "faster": "green", "same": "dim", "added": "cyan", "removed": "cyan",
    }
    table = Table(title="compare (A → B)", title_justify="left")
    for col in ("suite", "metric", "system", "A", "B", "Δ", "status"):
        numeric = col in ("A", "B", "Δ")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=not numeric)
    for c in changes:
        if not all_rows and c.status == "same":
            continue
        d = c.delta
        table.add_row(
            c.suite, c.metric, c.system, fmt(c.old), fmt(c.new),
            f"{d:+.3f}" if d is not None else "–", f"[{style[c.status]}]{c.status}[/]",
        )
    console.print(table)
    same = sum(c.status == "same" for c in changes)
    bad = regressions(changes)
    console.print(
        f"{same} unchanged within tolerance; "
        + (f"[bold red]{len(bad)} regression(s)[/]" if bad else "[green]no regressions[/]")
    )


def as_dicts(changes: list[Change]) -> list[dict]:
    return [{**asdict(c), "delta": c.delta} for c in changes]

"""Reports for people: a rich table on the terminal and a self-contained HTML page.

The HTML is rendered by Jinja2 with autoescaping on: the safety suite's records
hold script tags and other payloads, which must show as text, never run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evals import plots
from evals.results import MetricResult, Report

TEMPLATES = Path(__file__).resolve().parent / "templates"


def make_console() -> Console:
    """A console 120 columns wide when output is not a terminal (CI logs, pipes)."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 120)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit in ("ms", "chars", "words", "MB", "chunks/s", "s"):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.3f}"


def verdict(m: MetricResult) -> str:
    if m.passed is None:
        return "info"
    if m.passed:
        return "pass"
    return "FAIL" if m.gate else "miss"


def rule(m: MetricResult) -> str:
    parts = []
    if m.threshold is not None:
        parts.append(("≥ " if m.higher_is_better else "≤ ") + fmt(m.threshold, m.unit))
    if m.vs_baseline:
        parts.append("≥ base" if m.higher_is_better else "≤ base")
    return " & ".join(parts) + (" (gate)" if m.gate and parts else "")


def print_report(report: Report, console: Console | None = None) -> None:
    """One table per suite: every metric, ours and baseline side by side, rule and verdict."""
    console = console or make_console()
    style = {"pass": "green", "FAIL": "bold red", "miss": "yellow", "info": "dim"}
    for suite in report.suites.values():
        systems = suite.systems
        table = Table(title=f"{suite.name} ({suite.cases} cases)", title_justify="left")
        table.add_column("metric", no_wrap=True)
        for s in systems:
            table.add_column(s, justify="right")
        if "baseline" in systems:
            table.add_column("ours/base", justify="right")
        table.add_column("rule")
        table.add_column("", justify="center")
        for m in suite.metrics:
            # escaped: Rich reads "[plain]" in "cited_hit[plain]" as markup and would drop it
            cells = [escape(m.name)] + [fmt(m.values.get(s), m.unit) for s in systems]
            if "baseline" in systems:
                r = m.ratio()
                cells.append(f"{r:.2f}×" if r is not None else "–")
            v = verdict(m)
            cells += [rule(m), f"[{style[v]}]{v}[/]"]
            table.add_row(*cells)
        console.print(table)
        if suite.failures:
            console.print(f"  [dim]{len(suite.failures)} failing case(s) listed in the report[/]")
    if report.bench:
        print_bench(report.bench, console)
    failed = [f"{s.name}.{m.name}" for s in report.suites.values() for m in s.gate_failures]
    if failed:
        console.print(f"[bold red]Gated metrics below threshold:[/] {', '.join(failed)}")
    else:
        console.print("[green]All gated metrics pass.[/]")


def print_bench(bench: dict[str, Any], console: Console | None = None) -> None:
    console = console or make_console()
    table = Table(title="bench", title_justify="left")
    for col in ("figure", "value", "unit", "compared with", "ratio", "target"):
        table.add_column(col, justify="left" if col in ("figure", "compared with") else "right",
                         no_wrap=col == "figure")
    for row in bench.get("figures", []):
        ratio = row.get("ratio")
        table.add_row(
            escape(row["name"]),
            fmt(row.get("value"), row.get("unit", "")),
            row.get("unit", ""),
            escape(row.get("versus", "")),
            f"{ratio:.2f}" if isinstance(ratio, float) else "",
            row.get("target", ""),
        )
    console.print(table)


def _plots(report: Report) -> dict[str, str]:
    svgs: dict[str, str] = {}
    ret = report.suites.get("retrieval")
    if ret and ret.plots.get("recall_curve"):
        svgs["recall"] = plots.line_chart(ret.plots["recall_curve"], "Recall@k (retrieval suite)")
    tri = report.suites.get("triage")
    if tri and tri.plots.get("confusion"):
        c = tri.plots["confusion"]
        svgs["confusion"] = plots.heatmap(c["matrix"], c["labels"], "Triage confusion matrix")
    ans = report.suites.get("answers")
    if ans and ans.plots.get("latency_ms"):
        svgs["latency"] = plots.histogram(ans.plots["latency_ms"], "Answer latency (answers suite)")
    if ret and ret.plots.get("latency_ms"):
        svgs["retrieval_latency"] = plots.histogram(ret.plots["latency_ms"], "Retrieval latency")
    return svgs


def write_html(report: Report, path: Path) -> None:
    """Render the report page; the charts are inline SVG, so the file stands alone."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["fmt"] = fmt
    env.globals.update(verdict=verdict, rule=rule)
    html = env.get_template("report.html.j2").render(
        report=report, svgs={k: Markup(v) for k, v in _plots(report).items()}
    )
    Path(path).write_text(html, encoding="utf-8")

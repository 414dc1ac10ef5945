"""The eval command line: run suites, compare reports, turn page feedback into cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

import assistant  # noqa: F401  (forces offline mode before any model library loads)
from evals import BASELINE_REPORT, DATA_DIR, REPORTS_DIR
from evals.suites import SUITES


@click.group()
def main() -> None:
    """Eval suites for the back-pain assistant (see evals/README.md)."""


@main.command()
@click.option(
    "--suite", "suites", multiple=True, type=click.Choice(sorted(SUITES)),
    help="Suite to run (repeatable). Default: all.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=REPORTS_DIR,
    show_default=True, help="Folder for the JSON and HTML reports.",
)
@click.option("--no-baseline", is_flag=True, help="Skip the naive LangChain baseline.")
@click.option("--bench", is_flag=True, help="Also run evals.bench and put its figures in the report.")
@click.option("--bench-chunks", default=10_000, show_default=True,
              help="Synthetic corpus size for --bench (0 skips the big ingest).")
@click.option(
    "--compare-to", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A report to compare against; regressions make the run fail.",
)
@click.option("--tolerance", default=0.02, show_default=True, help="Allowed worsening for --compare-to.")
@click.option(
    "--save-baseline", is_flag=True,
    help=f"Also write the report, without per-case records, to {BASELINE_REPORT.name} (commit it).",
)
def run(
    suites: tuple[str, ...], out: Path, no_baseline: bool, bench: bool, bench_chunks: int,
    compare_to: Path | None, tolerance: float, save_baseline: bool,
) -> None:
    """Run the suites, print every metric with its rule, write reports.

    Exits 1 when a gated metric misses its threshold (or, with --compare-to, regresses).
    """
    from evals.render import make_console, print_report
    from evals.runner import run as run_suites
    from evals.runner import write

    console = make_console()
    with console.status("loading the assistant and the baseline…"):
        report = run_suites(
            suites or tuple(SUITES), baseline=not no_baseline, bench=bench,
            bench_chunks=bench_chunks,
            progress=lambda name: console.log(f"suite {name}"),
        )
    print_report(report, console)
    json_path, html_path = write(report, out)
    console.print(f"Report: {json_path}\n        {html_path}")
    if save_baseline:
        report.save(BASELINE_REPORT, records=False)
        console.print(f"Baseline report saved to {BASELINE_REPORT}")
    failed = not report.passed
    if compare_to:
        from evals.compare import compare, print_changes, regressions
        from evals.results import Report

        changes = compare(Report.load(compare_to), report, tolerance=tolerance)
        print_changes(changes, console)
        failed |= bool(regressions(changes))
    sys.exit(1 if failed else 0)


@main.command(name="compare")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tolerance", default=0.02, show_default=True, help="Absolute worsening allowed on quality metrics.")
@click.option("--size-tolerance", default=0.10, show_default=True, help="Relative growth allowed in text sizes.")
@click.option("--latency-tolerance", default=0.50, show_default=True, help="Relative slow-down before a warning.")
@click.option("--latency-fails", is_flag=True, help="Count a slow-down as a regression.")
@click.option("--all", "all_rows", is_flag=True, help="Also list unchanged metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def compare_cmd(
    old: Path, new: Path, tolerance: float, size_tolerance: float, latency_tolerance: float,
    latency_fails: bool, all_rows: bool, as_json: bool,
) -> None:
    """Show what changed from report OLD to report NEW; exit 1 on a regression of ours."""
    from evals.compare import as_dicts, compare, print_changes, regressions
    from evals.results import Report

    changes = compare(
        Report.load(old), Report.load(new), tolerance=tolerance, size_tolerance=size_tolerance,
        latency_tolerance=latency_tolerance, latency_fails=latency_fails,
    )
    if as_json:
        click.echo(json.dumps(as_dicts(changes), indent=2))
    else:
        print_changes(changes, all_rows=all_rows)
    sys.exit(1 if regressions(changes) else 0)


@main.command(name="add-feedback")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--to", "target", type=click.Path(dir_okay=False, path_type=Path),
    default=DATA_DIR / "answers.jsonl", show_default=True, help="Answers data file to append to.",
)
@click.option("--dry-run", is_flag=True, help="Print the cases without writing them.")
def add_feedback_cmd(file: Path, target: Path, dry_run: bool) -> None:
    """Append answer cases drafted from the chat page's feedback export (JSON Lines).

    Thumbs-up answers become ready cases (their cited statements are the key
    facts); thumbs-down ones become drafts (review: true) for a person to finish.
    """
    from evals.feedback import add_feedback

    added = add_feedback(file, target, dry_run=dry_run)
    for case in added:
        click.echo(json.dumps(case.model_dump(exclude_defaults=True), ensure_ascii=False))
    drafts = sum(c.review for c in added)
    verb = "Would add" if dry_run else "Added"
    click.echo(
        f"{verb} {len(added)} case(s) to {target} ({drafts} draft(s) marked review: true "
        "need key_facts written by hand)."
    )

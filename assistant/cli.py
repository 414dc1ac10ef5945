"""The command line: `python -m assistant ingest | ask | chat | serve | feedback export|delete|migrate`.

Readable output for people, `--json` for machines. Known errors become one line
on stderr saying what to do next (exit 1); a bad invocation exits 2 with usage.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from assistant import _offline  # noqa: F401
from assistant.config import Settings
from assistant.errors import AssistantError, InputError, with_emergency_note
from assistant.text import normalize
from assistant.types import Triage

if TYPE_CHECKING:
    from assistant.assistant import Assistant
    from assistant.feedback import FeedbackStore
    from assistant.types import Answer


log = logging.getLogger(__name__)


def _settings() -> Settings:
    settings = Settings.load()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    return settings


def _fail(exc: AssistantError) -> None:
    click.echo(f"Error: {with_emergency_note(str(exc))}", err=True)
    sys.exit(1)


def _load(settings: Settings) -> Assistant:
    from assistant.assistant import Assistant

    bot = Assistant.from_settings(settings, progress=sys.stderr.isatty())
    if bot.index_report is not None:
        r = bot.index_report
        click.echo(
            f"Index built: {r.chunks} chunks from {r.documents} document(s) "
            f"({r.added} embedded, {r.removed} removed).",
            err=True,
        )
    return bot


@click.group()
@click.version_option(package_name="backpain-assistant")
def cli() -> None:
    """Back-pain guidance from a curated knowledge base, with cited advice and red-flag triage.

    Guidance only, not a diagnosis. Settings come from ASSISTANT_* environment
    variables (see README.md).
    """


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Re-embed everything instead of only what changed.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when the index is already fresh.")
@click.option("--json", "as_json", is_flag=True, help="Print the ingest report as JSON.")
def ingest(paths: tuple[Path, ...], rebuild: bool, quiet: bool, as_json: bool) -> None:
    """Build or update the index from PATHS (files or folders; default: the knowledge folder)."""
    from assistant.embeddings import Embedder
    from assistant.index import Index

    try:
        settings = _settings()
        index = Index(settings)
        embedder = Embedder.from_settings(settings)
        if not paths and not rebuild and index.status(embedder.model_id) == "fresh":
            if not quiet:
                where = f"on {settings.chroma_url}" if settings.chroma_url else f"in {settings.index_dir}"
                click.echo(f"Index {where} is up to date.")
            return
        report = index.ingest(
            embedder,
            list(paths) or None,
            rebuild=rebuild,
            progress=not quiet and sys.stderr.isatty(),
        )
    except AssistantError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(
            f"Indexed {report.documents} document(s), {report.chunks} chunks: {report.added} new, "
            f"{report.removed} removed, {report.unchanged} unchanged ({report.seconds:.1f} s)."
            + (f" Skipped {len(report.skipped)} (see the warnings above)." if report.skipped else "")
        )


def render(answer: Answer) -> str:
    """An answer for people: the text, then its numbered sources."""
    lines = [answer.answer]
    if answer.citations:
        lines.append("\nSources:")
        for c in answer.citations:
            who = f" (quoting {', '.join(c.experts)})" if c.experts else ""
            lines.append(f"  [{c.n}] {c.document} — {c.section}{who}")
    return "\n".join(lines)


def _batch_lines(stream: TextIO) -> Iterator[tuple[Any, dict[str, Any] | None, str | None]]:
    """(id, request, error) for each non-blank line of a JSON Lines batch."""
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, None, f"line {lineno} is not valid JSON ({exc.msg})"
            continue
        except RecursionError:
            yield lineno, None, f"line {lineno} is nested too deeply to read"
            continue
        if not isinstance(req, dict):
            yield lineno, None, f"line {lineno} must be a JSON object"
            continue
        rid = req.get("id", lineno)
        msg = req.get("message")
        if not isinstance(msg, str):
            yield rid, None, "missing 'message' (a string)"
        else:  # an empty message or a malformed history is Assistant.ask's to judge: triage
            yield rid, req, None  # reads the whole conversation first


def _error_object(rid: Any, exc: InputError) -> dict[str, Any]:
    """A batch line's refusal: what was wrong, the emergency line, and the triage when it ran."""
    out: dict[str, Any] = {"id": rid, "error": with_emergency_note(str(exc))}
    if isinstance(exc.triage, Triage):
        out["triage"] = exc.triage.to_dict()
    return out


def _json_line(obj: dict[str, Any]) -> str:
    """One JSON object on one line; a lone surrogate (in an id, say) becomes "?", not a crash."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")


@cli.command()
@click.argument("message", required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (the answer contract)."
)
@click.option(
    "--batch",
    type=click.File("r", encoding="utf-8", errors="replace"),
    help="Answer each line of a JSON Lines file ({id, message, history}); one JSON object per line.",
)
def ask(message: str | None, as_json: bool, batch: TextIO | None) -> None:
    """Ask one question, e.g. ask "why does my back hurt on incline?"."""
    if batch is not None and message:
        raise click.UsageError("Give either MESSAGE or --batch FILE, not both.")
    if batch is None and (message is None or not normalize(message)):
        raise click.UsageError(
            'MESSAGE is empty. Ask a question, e.g. ask "why does my back hurt?"'
        )
    try:
        settings = _settings()
        bot = _load(settings)
    except AssistantError as exc:
        _fail(exc)
        return
    if batch is not None:
        for rid, req, error in _batch_lines(batch):
            if req is not None:
                try:
                    out = {"id": rid, **bot.ask(req["message"], req.get("history")).to_dict()}
                except InputError as exc:
                    out = _error_object(rid, exc)
                except Exception as exc:  # one bad line never ends the batch
                    log.exception("batch line %r failed", rid)
                    error = f"this line could not be answered ({exc})"
                    out = {"id": rid, "error": with_emergency_note(error)}
            else:
                out = {"id": rid, "error": with_emergency_note(error or "")}
            click.echo(_json_line(out))
        return
    assert message is not None
    try:
        answer = bot.ask(message)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except AssistantError as exc:
        _fail(exc)
        return
    click.echo(_json_line(answer.to_dict()) if as_json else render(answer))


@cli.command()
def chat() -> None:
    """Chat in the terminal; the conversation so far is kept (type /reset to forget it, /quit to leave)."""
    try:
        bot = _load(_settings())
    except AssistantError as exc:
        _fail(exc)
        return
    history: list[dict[str, str]] = []
    click.echo("Back-pain guidance (not a diagnosis). Ask a question; /reset, /quit.")
    while True:
        try:
            message = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            click.echo()
            return
        if message.strip() in ("/quit", "/exit"):
            return
        if message.strip() == "/reset":
            history.clear()
            click.echo("(conversation forgotten)")
            continue
        if not message.strip():
            continue
        try:
            answer = bot.ask(message, history)
        except AssistantError as exc:
            click.echo(f"Error: {exc}", err=True)
            continue
        click.echo(f"\n{render(answer)}\n")
        history += [
            {"role": "user", "content": answer.message},
            {"role": "assistant", "content": answer.answer},
        ]


@cli.command()
def serve() -> None:
    """Open the chat page (the same as `make run`)."""
    import runpy

    from assistant.config import PROJECT_ROOT

    runpy.run_path(str(PROJECT_ROOT / "app.py"), run_name="__main__")


@cli.group()
def feedback() -> None:
    """Thumbs up/down left on the chat page (in ASSISTANT_DATA_DIR, or ASSISTANT_FEEDBACK_DB_URL)."""


def _feedback_store(*, create: bool = False) -> tuple[FeedbackStore | None, str]:
    """The store the settings name (None: the default SQLite file does not exist) and where it is."""
    from assistant.feedback import FILENAME, FeedbackStore

    settings = _settings()
    store = FeedbackStore.existing(settings, create=create)
    return store, store.where if store else str(settings.data_dir / FILENAME)


@feedback.command("export")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE instead of standard output.",
)
def feedback_export(out: Path | None) -> None:
    """Write every rating as JSON Lines (user_input, response, citations, triage_level, rating,
    comment, created_at), ready to turn into eval cases."""
    try:
        store, where = _feedback_store()
        if out is None:
            count = store.export(sys.stdout) if store else 0
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("w", encoding="utf-8") as fh:
                count = store.export(fh) if store else 0
    except AssistantError as exc:
        _fail(exc)
        return
    to = f" to {out}" if out else ""
    click.echo(f"Exported {count} feedback record(s) from {where}{to}.", err=True)


@feedback.command("delete")
@click.option("--all", "everything", is_flag=True, help="Delete every stored rating and comment.")
@click.option("--id", "row_id", type=int, help="Delete the rating with this id (see `feedback export`).")
def feedback_delete(everything: bool, row_id: int | None) -> None:
    """Delete stored ratings: every one (--all) or one by its id (--id N)."""
    if everything == (row_id is not None):
        raise click.UsageError("Give either --all or --id N.")
    try:
        store, where = _feedback_store()
        count = store.delete(None if everything else row_id) if store else 0
    except AssistantError as exc:
        _fail(exc)
        return
    if row_id is not None and count == 0:
        click.echo(f"No feedback record with id {row_id} in {where}.", err=True)
        sys.exit(1)
    click.echo(f"Deleted {count} feedback record(s) from {where}.", err=True)


@feedback.command("migrate")
def feedback_migrate() -> None:
    """Bring the feedback database to the newest schema (creating it if need be). Opening the
    store does this too; run it to migrate a shared database before starting new app processes."""
    try:
        store, where = _feedback_store(create=True)
    except AssistantError as exc:
        _fail(exc)
        return
    assert store is not None
    click.echo(f"Feedback database {where} is at schema revision {store.revision} (the newest).", err=True)


def main() -> None:
    cli(prog_name="python -m assistant")


if __name__ == "__main__":
    main()

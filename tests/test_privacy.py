"""Privacy: the feedback store is the owner's alone, capped, kept for a set time and deletable;
an unwritable data folder switches ratings off without stopping the page; logs never quote
what people typed unless the debug setting says so."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import app
from assistant.cli import cli
from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import InputError, StoreError
from assistant.feedback import FILENAME, STORED, FeedbackStore

RECORD = {
    "user_input": "my private question",
    "response": "an answer [1]",
    "citations": [],
    "triage_level": "self_care",
    "history": [{"role": "user", "content": "earlier words"}],
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_is_owner_only_even_in_an_open_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    store = FeedbackStore(data / FILENAME)
    store.rate(RECORD, "up")
    assert _mode(data) == 0o700
    assert _mode(data / FILENAME) == 0o600
    fresh = FeedbackStore(tmp_path / "new" / "deeper" / FILENAME)
    assert _mode(fresh.path.parent) == 0o700 and _mode(fresh.path) == 0o600


def test_a_comment_over_the_limit_is_refused_with_the_limit_and_not_stored(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / FILENAME, comment_chars=20)
    row = store.rate(RECORD, "down")
    with pytest.raises(InputError, match="the limit is 20"):
        store.comment(row, "x" * 21)
    assert store.records()[0]["comment"] == ""
    assert store.comment(row, "  " + "y" * 20 + "  ")
    assert store.records()[0]["comment"] == "y" * 20


def test_the_comment_limit_comes_from_settings(tmp_path: Path) -> None:
    store = FeedbackStore.from_settings(Settings.load(data_dir=tmp_path, feedback_comment_chars=5))
    assert store is not None
    with pytest.raises(InputError, match="limit is 5"):
        store.comment(store.rate(RECORD, "up"), "too long")


def _age(path: Path, row: int, days: int) -> None:
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE feedback SET created_at = ? WHERE id = ?", (when, row))


def test_rows_older_than_the_retention_period_are_purged(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    keep_all = FeedbackStore(path)  # retention 0: kept until deleted by hand
    old, recent = keep_all.rate(RECORD, "up"), keep_all.rate(RECORD, "down")
    _age(path, old, 40)
    _age(path, recent, 10)
    assert len(FeedbackStore(path).records()) == 2
    store = FeedbackStore(path, retention_days=30)  # the page starting
    assert [r["id"] for r in store.records()] == [recent]
    _age(path, recent, 31)
    store.rate(RECORD, "up")  # saving a rating purges too
    assert len(store.records()) == 1
    assert Settings.load().feedback_retention_days == 90


def test_deleted_text_does_not_stay_in_the_file(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / FILENAME)
    row = store.rate({**RECORD, "user_input": "zebra-marker-question"}, "up")
    assert store.delete(row) == 1
    assert b"zebra-marker-question" not in store.path.read_bytes()


def test_feedback_delete_by_id_and_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    store = FeedbackStore(tmp_path / FILENAME)
    rows = [store.rate(RECORD, "up") for _ in range(3)]
    runner = CliRunner()
    result = runner.invoke(cli, ["feedback", "delete", "--id", str(rows[1])])
    assert result.exit_code == 0 and "Deleted 1" in result.stderr
    assert [r["id"] for r in store.records()] == [rows[0], rows[2]]
    missing = runner.invoke(cli, ["feedback", "delete", "--id", "999"])
    assert missing.exit_code == 1 and "No feedback record with id 999" in missing.stderr
    assert runner.invoke(cli, ["feedback", "delete"]).exit_code == 2  # neither: usage
    assert runner.invoke(cli, ["feedback", "delete", "--all", "--id", "1"]).exit_code == 2
    result = runner.invoke(cli, ["feedback", "delete", "--all"])
    assert result.exit_code == 0 and "Deleted 2" in result.stderr
    assert store.records() == []


def _unwritable(tmp_path: Path) -> Path:
    """A data folder that cannot be created, even by root: its parent is a file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "data"


def test_an_unwritable_data_folder_switches_feedback_off_with_a_notice(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=_unwritable(tmp_path))
    with pytest.raises(StoreError, match="ASSISTANT_FEEDBACK_ENABLED=false"):
        FeedbackStore.from_settings(settings)
    store, notice = app.open_feedback(settings)
    assert store is None and "switched off" in notice and str(settings.data_dir) in notice
    assert app.open_feedback(Settings.load(data_dir=tmp_path / "ok"))[1] == ""


@pytest.mark.slow
def test_the_page_starts_with_an_unwritable_data_folder_and_says_so(tmp_path: Path, bot, settings) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ASSISTANT_PORT": str(port), "ASSISTANT_INDEX_DIR": str(settings.index_dir),
           "ASSISTANT_DATA_DIR": str(_unwritable(tmp_path))}
    env.pop("GRADIO_SERVER_PORT", None)
    log = tmp_path / "app.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as resp:
                    config = resp.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        assert "Ratings are switched off" in config
        assert "Traceback" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_page_says_what_a_rating_stores(bot, settings, tmp_path: Path) -> None:
    page = app.build_page(bot, settings, FeedbackStore(tmp_path / FILENAME))
    assert STORED in json.dumps(page.get_config_file(), default=str)
    assert "conversation" in STORED and "on this computer only" in STORED
    off = app.build_page(bot, settings, None)
    assert STORED not in json.dumps(off.get_config_file(), default=str)


# -- logs ------------------------------------------------------------------------------------


SECRET = "my zebra-private groin question"


def test_logs_never_quote_a_message_unless_the_debug_setting_is_on(bot, monkeypatch, caplog) -> None:
    import assistant.assistant as orchestrator

    monkeypatch.setattr(orchestrator, "check_citations", lambda *a, **k: ["a broken marker"])
    quiet = orchestrator.Assistant(bot.settings, bot.embedder, bot.retriever, bot.composer, bot.triager, bot.coverage)
    with caplog.at_level(logging.DEBUG):
        quiet.ask("how do I do a glute bridge? zebra-private")
    assert caplog.records, "the fault was not logged at all"
    assert not any("zebra-private" in r.getMessage() for r in caplog.records)
    caplog.clear()
    debug = bot.settings.model_copy(update={"log_messages": True})
    loud = orchestrator.Assistant(debug, bot.embedder, bot.retriever, bot.composer, bot.triager, bot.coverage)
    with caplog.at_level(logging.DEBUG):
        loud.ask("how do I do a glute bridge? zebra-private")
    assert any("zebra-private" in r.getMessage() for r in caplog.records)


def test_answering_logs_nothing_about_the_conversation_by_default(bot, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        bot.ask(SECRET, [{"role": "user", "content": "zebra earlier words"}])
        with pytest.raises(InputError):
            bot.ask("zebra " * 1000)
    assert not any("zebra" in r.getMessage() for r in caplog.records)

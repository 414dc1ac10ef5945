"""The feedback store on a real PostgreSQL, its migrations, and how a database URL is chosen.

The server is Debian's PostgreSQL, started by `servers.postgres_server` on 127.0.0.1 in a temp
folder (one per module; each test gets a database of its own) and stopped after.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import create_database, postgres_server
from sqlalchemy import create_engine, inspect, text, update
from test_feedback import RECORD  # the same rating as the SQLite tests store

import app
from assistant import migrations
from assistant.cli import cli
from assistant.config import PROJECT_ROOT, Settings
from assistant.errors import ConfigError, InputError, StoreError
from assistant.feedback import FILENAME, STORED, FeedbackStore, database_url, feedback_table

_names = count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
def pg(server: str) -> str:
    """The URL of a new, empty database on the module's server."""
    return create_database(server, f"feedback_{next(_names)}")


def _age(url: str, row: int, days: int) -> None:
    """Make row `row` look `days` old, as a row written that long ago."""
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    engine = create_engine(database_url(url))
    with engine.begin() as db:
        db.execute(update(feedback_table).where(feedback_table.c.id == row).values(created_at=when))
    engine.dispose()


def test_rate_comment_withdraw_and_export_on_postgres(pg: str) -> None:
    store = FeedbackStore(pg, comment_chars=40)
    assert store.path is None and store.revision == migrations.head()
    row = store.rate(RECORD, "up")
    assert store.rate(RECORD, "down", row) == row  # a change of mind updates the same row
    assert store.comment(row, "  It should say how many sets.  ")
    with pytest.raises(InputError, match="the limit is 40"):
        store.comment(row, "x" * 41)
    gone = store.rate({**RECORD, "user_input": "taken back"}, "up")
    store.withdraw(gone)
    assert not store.comment(gone, "too late")
    [rec] = store.records()
    assert {k: rec[k] for k in RECORD} == RECORD
    assert (rec["id"], rec["rating"], rec["comment"]) == (row, "down", "It should say how many sets.")
    assert rec["created_at"].endswith("+00:00")
    # a second store (another app process) sees the same rows
    other = FeedbackStore(pg)
    assert other.records() == [rec]
    assert other.delete(row) == 1 and store.records() == []
    store.close()
    other.close()


def test_retention_and_delete_on_postgres(pg: str) -> None:
    keep_all = FeedbackStore(pg)
    old, recent, third = (keep_all.rate(RECORD, "up") for _ in range(3))
    _age(pg, old, 40)
    _age(pg, recent, 10)
    store = FeedbackStore(pg, retention_days=30)  # the page starting purges
    assert [r["id"] for r in store.records()] == [recent, third]
    _age(pg, recent, 31)
    store.rate(RECORD, "down")  # saving a rating purges too
    assert len(store.records()) == 2
    assert store.delete(third) == 1 and store.delete(third) == 0
    assert store.delete() == 1 and store.records() == []
    keep_all.close()
    store.close()


def test_the_feedback_commands_use_the_database_url(pg: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB_URL", pg)
    runner = CliRunner()
    migrated = runner.invoke(cli, ["feedback", "migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert f"revision {migrations.head()}" in migrated.stderr and "127.0.0.1" in migrated.stderr
    store = FeedbackStore.from_settings(Settings.load())
    assert store is not None and store.notice != STORED and "this computer only" not in store.notice
    rows = [store.rate(RECORD, rating) for rating in ("up", "down", "up")]
    out = tmp_path / "feedback.jsonl"
    exported = runner.invoke(cli, ["feedback", "export", "--out", str(out)])
    assert exported.exit_code == 0 and "Exported 3 feedback record(s)" in exported.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["rating"]) for r in lines] == list(zip(rows, ["up", "down", "up"], strict=True))
    deleted = runner.invoke(cli, ["feedback", "delete", "--id", str(rows[1])])
    assert deleted.exit_code == 0 and "Deleted 1" in deleted.stderr
    assert runner.invoke(cli, ["feedback", "delete", "--all"]).stderr.startswith("Deleted 2")
    assert store.records() == []
    assert not (tmp_path / "data" / FILENAME).exists()  # nothing went to the SQLite default
    store.close()


WRITER = """
import sys, time
from pathlib import Path
from assistant.feedback import FeedbackStore
url, name, n, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
(folder / name).touch()  # imported: ready
while not (folder / "go").exists():
    time.sleep(0.01)
store = FeedbackStore(url)  # both migrate the new database at the same moment
for i in range(n):
    store.rate({"user_input": f"{name} {i}", "response": "a", "citations": [], "triage_level": "self_care"}, "up")
"""


@pytest.mark.slow
def test_two_processes_write_into_one_database(pg: str, tmp_path: Path) -> None:
    """Two app processes open a new database at once (both migrate it) and rate concurrently."""
    n, names = 40, ("first", "second")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, pg, name, str(n), str(tmp_path)], cwd=PROJECT_ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / name).exists() for name in names):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = FeedbackStore(pg)
    records = store.records()
    assert len(records) == 2 * n and len({r["id"] for r in records}) == 2 * n
    for name in names:
        mine = [int(r["user_input"].split()[1]) for r in records if r["user_input"].startswith(name)]
        assert mine == list(range(n))  # each process's rows, all there, in its own order
    engine = create_engine(database_url(pg))
    with engine.connect() as db:
        assert db.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [migrations.head()]
    engine.dispose()
    store.close()


OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    user_input   TEXT NOT NULL,
    response     TEXT NOT NULL,
    citations    TEXT NOT NULL,   -- JSON list of Citation objects
    triage_level TEXT NOT NULL,
    rating       TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment      TEXT NOT NULL DEFAULT '',
    history      TEXT NOT NULL DEFAULT '[]'  -- JSON list of {role, content} before the question
)
"""


def test_a_feedback_file_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "data" / FILENAME
    path.parent.mkdir()
    with sqlite3.connect(path) as db:  # exactly what the code before migrations made
        db.execute(OLD_SCHEMA)
        db.execute(
            "INSERT INTO feedback (created_at, user_input, response, citations, triage_level, rating, "
            "comment) VALUES ('2026-01-02T03:04:05+00:00', 'old question', 'old answer', '[]', "
            "'see_pt', 'down', 'old comment')"
        )
    db.close()
    store = FeedbackStore(path)
    assert store.revision == migrations.head()
    [old] = store.records()
    assert (old["id"], old["user_input"], old["comment"], old["history"]) == (1, "old question", "old comment", [])
    assert store.rate(RECORD, "up") == 2  # the table goes on as before
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrations.head(),)]
    db.close()
    assert FeedbackStore(path).revision == migrations.head()  # opening again changes nothing
    store.close()


def test_a_new_sqlite_file_gets_its_table_from_the_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(cli, ["feedback", "migrate"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "data" / FILENAME) in result.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / FILENAME}")
    with engine.connect() as db:
        assert set(inspect(db).get_table_names()) == {"feedback", "alembic_version"}
        columns = [c["name"] for c in inspect(db).get_columns("feedback")]
    engine.dispose()
    assert columns == [c.name for c in feedback_table.columns]  # the queries' Table matches the schema


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u@127.0.0.1/feedback", "must be postgresql:// or sqlite://, got mysql://"),
        ("postgresql://u:secret@127.0.0.1:5432", "names no database"),
        ("sqlite://", "names no database"),
    ],
)
def test_a_bad_database_url_is_an_error_naming_the_setting(url: str, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_FEEDBACK_DB_URL", url)
    with pytest.raises(ConfigError, match="ASSISTANT_FEEDBACK_DB_URL") as caught:
        Settings.load()
    assert says in str(caught.value) and "secret" not in str(caught.value)
    with pytest.raises(ConfigError, match=f"ASSISTANT_FEEDBACK_DB_URL: .*{says}"):
        FeedbackStore(url)
    result = CliRunner().invoke(cli, ["feedback", "export"])
    assert result.exit_code == 1 and "ASSISTANT_FEEDBACK_DB_URL" in result.stderr
    assert "Traceback" not in result.output


def test_postgresql_urls_mean_psycopg_and_unset_means_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    assert database_url("postgresql://u@h:5432/f").drivername == "postgresql+psycopg"
    assert database_url("postgresql+psycopg://u@h/f").drivername == "postgresql+psycopg"
    assert Settings.load(feedback_db_url="").feedback_db_url is None
    store = FeedbackStore.from_settings(Settings.load(data_dir=tmp_path))
    assert store is not None and store.path == tmp_path / FILENAME and store.notice == STORED


def test_an_unreachable_database_switches_ratings_off_in_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from running_app import free_port

    settings = Settings.load(feedback_db_url=f"postgresql://u:secret@127.0.0.1:{free_port()}/feedback")
    with pytest.raises(StoreError, match="Cannot open the feedback store .*ASSISTANT_FEEDBACK_DB_URL"):
        FeedbackStore.from_settings(settings)
    with caplog.at_level(logging.WARNING, logger=app.log.name):
        store, notice = app.open_feedback(settings)
    assert store is None and notice.startswith("Ratings are switched off: the feedback database")
    [line] = [r.getMessage() for r in caplog.records if r.name == app.log.name]
    assert "\n" not in line and "127.0.0.1" in line and "secret" not in line and "secret" not in notice

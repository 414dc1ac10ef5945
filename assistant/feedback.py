"""Thumbs up/down from the chat page, kept in a database so they can become eval cases.

One row per rated answer: the question, the answer and its citations as shown,
the triage level, the earlier conversation, the rating and an optional comment
(`STORED`, which the page shows next to the thumbs). By default the database is a
SQLite file in the data folder, its owner's alone (0600, in a 0700 folder), and nothing
leaves the machine; `ASSISTANT_FEEDBACK_DB_URL` points every app process at one shared
database instead (PostgreSQL through psycopg 3). The queries are SQLAlchemy Core on one
`Table`, the same on both; the schema is alembic revisions (`assistant/migrations/`),
applied when a store opens. Comments are capped; rows older than the retention setting
are deleted; `python -m assistant feedback delete` removes rows by hand; `... export`
writes them as JSON Lines with the common eval field names (`user_input`, `response`, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from assistant import migrations
from assistant.config import Settings
from assistant.errors import ConfigError, InputError, StoreError

Rating = Literal["up", "down"]
RATINGS: tuple[str, ...] = ("up", "down")
FILENAME = "feedback.sqlite3"
SETTING = "ASSISTANT_FEEDBACK_DB_URL"
EXPORT_FIELDS = (
    "id",
    "created_at",
    "user_input",
    "response",
    "citations",
    "triage_level",
    "rating",
    "comment",
    "history",
)

STORED = (
    "Rating an answer stores, on this computer only: your question, the answer and its sources, "
    "the earlier messages of this conversation, the triage level, your rating and any comment."
)
STORED_SHARED = (  # a database URL is set: the ratings go to that database, maybe another machine
    "Rating an answer stores, in this service's feedback database: your question, the answer and "
    "its sources, the earlier messages of this conversation, the triage level, your rating and any "
    "comment."
)
FILE_MODE = 0o600  # a SQLite file: its owner alone reads and writes it
DIR_MODE = 0o700  # its folder
CONNECT_TIMEOUT_S = 10  # a PostgreSQL that does not answer: give up, and the page starts without ratings

# The URL schemes a store accepts, and the SQLAlchemy driver each one means.
DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}

metadata = MetaData()
# The table as the queries see it; the schema itself is made by the revisions in migrations/.
feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Text, nullable=False),  # ISO-8601, UTC
    Column("user_input", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("citations", Text, nullable=False),  # JSON list of Citation objects
    Column("triage_level", Text, nullable=False),
    Column("rating", Text, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("history", Text, nullable=False, server_default="[]"),  # JSON {role, content} before the question
    CheckConstraint("rating IN ('up', 'down')", name="feedback_rating"),
    sqlite_autoincrement=True,
)


def database_url(value: str) -> URL:
    """Parse a feedback database URL; `postgresql://` means the psycopg 3 driver.

    Raises:
        ValueError: not a URL, a scheme other than sqlite or postgresql, or no database named.
    """
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "not a database URL; give e.g. postgresql://user@127.0.0.1:5432/feedback or "
            "sqlite:////srv/data/feedback.sqlite3, or leave it unset for SQLite in ASSISTANT_DATA_DIR"
        ) from None
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"the database must be postgresql:// or sqlite://, got {url.drivername}://"
        )
    if not url.database or url.database == ":memory:":
        raise ValueError(f"the URL names no database (or an in-memory one): {_shown(url)}")
    return url.set(drivername=driver)


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class FeedbackStore:
    """Ratings and comments in one database; safe to share between threads and processes.

    Example:
        >>> store = FeedbackStore(tmp_path / "feedback.sqlite3")   # or "postgresql://u@host/db"
        >>> row = store.rate({"user_input": "q", "response": "a [1]", "citations": [],
        ...                   "triage_level": "self_care"}, "down")
        >>> store.comment(row, "missed the point")
        >>> [r["rating"] for r in store.records()]
        ['down']
    """

    def __init__(
        self, location: Path | str, *, comment_chars: int = 1000, retention_days: int = 0
    ) -> None:
        """Open (and create or migrate) the store.

        Args:
            location: a SQLite file's path, or a database URL (`postgresql://...`, `sqlite:///...`).
            comment_chars: the longest comment stored.
            retention_days: rows older than this are deleted (0 keeps them).

        Raises:
            ConfigError: `location` is a string that is not a usable database URL.
            StoreError: the database cannot be created, reached or migrated.
        """
        self.comment_chars = comment_chars
        self.retention_days = retention_days
        if isinstance(location, str):
            try:
                url = database_url(location)
            except ValueError as exc:
                raise ConfigError(f"{SETTING}: {exc}.") from None
        else:
            url = URL.create("sqlite", database=str(location))
        self.path: Path | None = Path(url.database or "") if url.get_backend_name() == "sqlite" else None
        self.where = str(self.path) if self.path else _shown(url)
        self.notice = STORED if self.path else STORED_SHARED  # what the page says a rating stores
        try:
            if self.path is not None:
                _owner_only(self.path, own_folder=not isinstance(location, str))
            self._engine = _engine(url)
            self.revision = migrations.upgrade(self._engine)
            with self._begin() as db:
                self._purge(db)
        except (OSError, SQLAlchemyError) as exc:
            hint = (
                "Make its folder writable (ASSISTANT_DATA_DIR)" if self.path
                else f"Start that database or fix {SETTING}"
            )
            raise StoreError(
                f"Cannot open the feedback store {self.where}: {_reason(exc)}. {hint}, "
                "or set ASSISTANT_FEEDBACK_ENABLED=false."
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackStore | None:
        """The store the settings name, or None when feedback is switched off.

        Raises:
            ConfigError: the database URL is not usable.
            StoreError: the data folder cannot be written, or the database cannot be reached.
        """
        if not settings.feedback_enabled:
            return None
        return cls.existing(settings, create=True)

    @classmethod
    def existing(cls, settings: Settings, *, create: bool = False) -> FeedbackStore | None:
        """The store the settings name, switched on or not (for the CLI).

        None when it is the default SQLite file and that does not exist yet, so that
        exporting or deleting creates nothing; a database URL is always opened.
        """
        options: dict[str, Any] = {
            "comment_chars": settings.feedback_comment_chars,
            "retention_days": settings.feedback_retention_days,
        }
        if settings.feedback_db_url is not None:
            return cls(settings.feedback_db_url.get_secret_value(), **options)
        path = settings.data_dir / FILENAME
        return cls(path, **options) if create or path.exists() else None

    def close(self) -> None:
        """Close the pooled connections (the store cannot be used afterwards)."""
        self._engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on error."""
        with self._engine.begin() as db:
            yield db

    def _run(self, doing: str, work: Any) -> Any:
        """Run `work(connection)` in one transaction; a database error becomes a StoreError."""
        try:
            with self._begin() as db:
                return work(db)
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot {doing} feedback in {self.where}: {_reason(exc)}") from exc

    def _purge(self, db: Connection) -> int:
        """Delete rows older than the retention period; return how many."""
        if self.retention_days <= 0:
            return 0
        cutoff = (datetime.now(UTC) - timedelta(days=self.retention_days)).isoformat(timespec="seconds")
        return db.execute(delete(feedback_table).where(feedback_table.c.created_at < cutoff)).rowcount

    def purge(self) -> int:
        """Delete rows older than the retention period now; return how many."""
        return int(self._run("update", self._purge))

    def delete(self, row_id: int | None = None) -> int:
        """Delete row `row_id`, or every row when it is None; return how many were deleted."""
        statement = delete(feedback_table)
        if row_id is not None:
            statement = statement.where(feedback_table.c.id == row_id)
        return int(self._run("delete", lambda db: db.execute(statement).rowcount))

    def rate(self, record: dict[str, Any], rating: str, row_id: int | None = None) -> int:
        """Store a rating for an answer (or change the rating of row `row_id`); return the row id.

        Args:
            record: `user_input`, `response`, `citations`, `triage_level` and optionally
                `history`, as `Transcript.feedback_record` gives them.
            rating: "up" or "down".
            row_id: the row to update when the person changes their mind.

        Raises:
            ValueError: the rating is not "up" or "down".
            StoreError: the database cannot be written.
        """
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, got {rating!r}")
        row = {
            "created_at": _now(),
            "user_input": record["user_input"],
            "response": record["response"],
            "citations": json.dumps(record.get("citations", []), ensure_ascii=False),
            "triage_level": record["triage_level"],
            "rating": rating,
            "history": json.dumps(record.get("history", []), ensure_ascii=False),
        }

        def work(db: Connection) -> int:
            if row_id is not None:
                changed = db.execute(
                    update(feedback_table).where(feedback_table.c.id == row_id).values(rating=rating)
                )
                if changed.rowcount:
                    return row_id
            key = db.execute(insert(feedback_table).values(**row)).inserted_primary_key
            assert key is not None
            self._purge(db)
            return int(key[0])

        return int(self._run("save", work))

    def withdraw(self, row_id: int) -> None:
        """Delete a rating the person took back (clicked the same thumb again)."""
        self.delete(row_id)

    def comment(self, row_id: int, text: str) -> bool:
        """Attach a comment to a stored rating; False if the row no longer exists.

        Raises:
            InputError: the comment is longer than `comment_chars` (nothing is stored).
        """
        text = text.strip()
        if len(text) > self.comment_chars:
            raise InputError(
                f"Your comment is {len(text):,} characters long; the limit is "
                f"{self.comment_chars:,}. Please shorten it."
            )
        statement = update(feedback_table).where(feedback_table.c.id == row_id).values(comment=text)
        return bool(self._run("save a comment on", lambda db: db.execute(statement).rowcount > 0))

    def records(self) -> list[dict[str, Any]]:
        """Every stored rating, oldest first, with JSON columns decoded."""
        query = select(*(feedback_table.c[name] for name in EXPORT_FIELDS)).order_by(feedback_table.c.id)
        rows = self._run("read", lambda db: [dict(row) for row in db.execute(query).mappings()])
        for rec in rows:
            rec["citations"] = json.loads(rec["citations"])
            rec["history"] = json.loads(rec["history"])
        return list(rows)

    def export(self, out: Any) -> int:
        """Write every record to the text stream `out` as JSON Lines; return how many."""
        records = self.records()
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return len(records)


def _owner_only(path: Path, *, own_folder: bool) -> None:
    """Create the SQLite file 0600 (never world-readable, not even for a moment).

    Its folder is made 0700 when created; the data folder (`own_folder`) is made 0700 even
    when it exists, while a folder a sqlite:// URL names is the operator's and left as it is.
    """
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if own_folder:
        os.chmod(path.parent, DIR_MODE)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    os.chmod(path, FILE_MODE)


def _engine(url: URL) -> Engine:
    """A pooled engine; SQLite overwrites deleted text, PostgreSQL gives up connecting in time."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _secure_delete(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA secure_delete = ON")  # deleted text is overwritten, not left in the file
            cursor.close()

        return engine
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _reason(exc: BaseException) -> str:
    """The first line of the driver's own message (no SQL, no parameters, no help link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return lines[0] if lines else type(inner).__name__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

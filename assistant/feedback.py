"""Thumbs up/down from the chat page, kept locally in SQLite so they can become eval cases.

One row per rated answer: the question, the answer and its citations as shown,
the triage level, the earlier conversation, the rating and an optional comment
(`STORED`, which the page shows next to the thumbs). Nothing leaves the machine;
the file is the owner's alone (0600, in a 0700 folder); comments are capped; rows
older than the retention setting are deleted; `python -m assistant feedback delete`
removes rows by hand; `... export` writes them as JSON Lines with the common eval
field names (`user_input`, `response`, ...).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from assistant.config import Settings
from assistant.errors import InputError, StoreError

Rating = Literal["up", "down"]
RATINGS: tuple[str, ...] = ("up", "down")
FILENAME = "feedback.sqlite3"
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
FILE_MODE = 0o600  # the database: its owner alone reads and writes it
DIR_MODE = 0o700  # the data folder

_SCHEMA = """
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


class FeedbackStore:
    """Ratings and comments in one SQLite file; safe to share between the page's threads.

    Example:
        >>> store = FeedbackStore(tmp_path / "feedback.sqlite3")
        >>> row = store.rate({"user_input": "q", "response": "a [1]", "citations": [],
        ...                   "triage_level": "self_care"}, "down")
        >>> store.comment(row, "missed the point")
        >>> [r["rating"] for r in store.records()]
        ['down']
    """

    def __init__(self, path: Path, *, comment_chars: int = 1000, retention_days: int = 0) -> None:
        self.path = Path(path)
        self.comment_chars = comment_chars
        self.retention_days = retention_days
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(self.path.parent, DIR_MODE)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, FILE_MODE))  # never world-readable
            os.chmod(self.path, FILE_MODE)
            with self._connect() as db:
                db.execute(_SCHEMA)
                self._purge(db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Cannot open the feedback store {self.path}: {exc}. Make its folder writable "
                "(ASSISTANT_DATA_DIR) or set ASSISTANT_FEEDBACK_ENABLED=false."
            ) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackStore | None:
        """The store under `settings.data_dir`, or None when feedback is switched off.

        Raises:
            StoreError: the data folder cannot be written.
        """
        if not settings.feedback_enabled:
            return None
        return cls(
            settings.data_dir / FILENAME,
            comment_chars=settings.feedback_comment_chars,
            retention_days=settings.feedback_retention_days,
        )

    def _purge(self, db: sqlite3.Connection) -> int:
        """Delete rows older than the retention period; return how many."""
        if self.retention_days <= 0:
            return 0
        cutoff = (datetime.now(UTC) - timedelta(days=self.retention_days)).isoformat(timespec="seconds")
        return db.execute("DELETE FROM feedback WHERE created_at < ?", (cutoff,)).rowcount

    def purge(self) -> int:
        """Delete rows older than the retention period now; return how many."""
        try:
            with self._connect() as db:
                return self._purge(db)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot update feedback in {self.path}: {exc}") from exc

    def delete(self, row_id: int | None = None) -> int:
        """Delete row `row_id`, or every row when it is None; return how many were deleted."""
        try:
            with self._connect() as db:
                if row_id is None:
                    count = db.execute("DELETE FROM feedback").rowcount
                else:
                    count = db.execute("DELETE FROM feedback WHERE id = ?", (row_id,)).rowcount
            return count
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot delete feedback in {self.path}: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock, closing(sqlite3.connect(self.path, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA secure_delete = ON")  # deleted text is overwritten, not left in the file
            with db:  # commit on success, roll back on error
                yield db

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
        try:
            with self._connect() as db:
                if row_id is not None:
                    cur = db.execute("UPDATE feedback SET rating = ? WHERE id = ?", (rating, row_id))
                    if cur.rowcount:
                        return row_id
                cur = db.execute(
                    "INSERT INTO feedback (created_at, user_input, response, citations, "
                    "triage_level, rating, history) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        _now(),
                        record["user_input"],
                        record["response"],
                        json.dumps(record.get("citations", []), ensure_ascii=False),
                        record["triage_level"],
                        rating,
                        json.dumps(record.get("history", []), ensure_ascii=False),
                    ),
                )
                assert cur.lastrowid is not None
                self._purge(db)
                return cur.lastrowid
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot save feedback in {self.path}: {exc}") from exc

    def withdraw(self, row_id: int) -> None:
        """Delete a rating the person took back (clicked the same thumb again)."""
        try:
            with self._connect() as db:
                db.execute("DELETE FROM feedback WHERE id = ?", (row_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot update feedback in {self.path}: {exc}") from exc

    def comment(self, row_id: int, text: str) -> bool:
        """Attach a comment to a stored rating; False if the row no longer exists.

        Raises:
            InputError: the comment is longer than `comment_chars` (nothing is stored).
        """
        if len(text.strip()) > self.comment_chars:
            raise InputError(
                f"Your comment is {len(text.strip()):,} characters long; the limit is "
                f"{self.comment_chars:,}. Please shorten it."
            )
        try:
            with self._connect() as db:
                cur = db.execute(
                    "UPDATE feedback SET comment = ? WHERE id = ?", (text.strip(), row_id)
                )
                return cur.rowcount > 0
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot save the comment in {self.path}: {exc}") from exc

    def records(self) -> list[dict[str, Any]]:
        """Every stored rating, oldest first, with JSON columns decoded."""
        try:
            with self._connect() as db:
                rows = db.execute("SELECT * FROM feedback ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot read feedback from {self.path}: {exc}") from exc
        out = []
        for row in rows:
            rec = dict(row)
            rec["citations"] = json.loads(rec["citations"])
            rec["history"] = json.loads(rec["history"])
            out.append({k: rec[k] for k in EXPORT_FIELDS})
        return out

    def export(self, out: Any) -> int:
        """Write every record to the text stream `out` as JSON Lines; return how many."""
        records = self.records()
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return len(records)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""Schema changes to the feedback database, as alembic revisions shipped inside the package.

Why alembic rather than `CREATE TABLE IF NOT EXISTS` and ad-hoc ALTERs: one shared
PostgreSQL may be opened by several app processes of different ages, and each change must
run exactly once, in order, on SQLite and PostgreSQL alike. A store brings its database to
the newest revision when it opens (`upgrade`); `python -m assistant feedback migrate` does
the same by hand. A new change is a new file in `versions/` (`down_revision` = the head).
"""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import DBAPIError

HERE = Path(__file__).resolve().parent
# The table as `CREATE TABLE IF NOT EXISTS feedback` made it before migrations existed: a file
# with that table and no alembic_version is stamped at this revision, then upgraded.
ADOPTED = "0001"
_ATTEMPTS = 3  # two processes migrating a new database at once: the loser retries and finds it done


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision the shipped scripts define."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, f"no migration scripts in {HERE / 'versions'}"
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision and return it.

    A database made before migrations existed (a `feedback` table and no alembic_version)
    is adopted as it stands: stamped at `ADOPTED`, its rows kept. When two processes
    migrate a new database at once, the one that loses the race retries and finds it done.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or changed.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        with engine.connect() as connection:  # cannot connect: raised here, never retried
            try:
                with connection.begin():
                    cfg = _config(connection)
                    if current(connection) is None and inspect(connection).has_table("feedback"):
                        command.stamp(cfg, ADOPTED)
                    command.upgrade(cfg, "head")
                    revision = current(connection)
                assert revision is not None
                return revision
            except DBAPIError:
                if attempt == _ATTEMPTS:
                    raise
        time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")

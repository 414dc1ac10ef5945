"""Alembic's entry point: run the revisions on the connection the store handed over.

Only the programmatic path exists (`assistant.migrations.upgrade`); there is no alembic.ini
and no offline (`--sql`) mode, so the URL, its password and the engine stay with the store.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "The feedback migrations run on an open connection: use `python -m assistant feedback migrate`."
    )
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()

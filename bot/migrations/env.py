"""Alembic environment: run with a connection handed over by bot.db (no alembic.ini)."""

from __future__ import annotations

from alembic import context

import bot.state  # noqa: F401  (the bot's tables live on the same Base)
from metrics.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - kpibot always passes its own connection
    raise RuntimeError("run migrations through `kpibot db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

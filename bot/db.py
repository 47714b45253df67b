"""Engines and migrations: the one place that knows how to open the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect

DEFAULT_DATABASE_URL = "sqlite:///kpibot.db"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str = DEFAULT_DATABASE_URL, **kwargs: Any) -> Engine:
    """An engine with the settings every kpibot process wants on each backend."""
    if url.startswith("postgres://"):  # Heroku-style URLs
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets the bot answer /kpi while a sync writes; NORMAL is durable in WAL.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def has_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())

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


# -- migrations ------------------------------------------------------------------------


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    return before, head_revision()


def ensure_migrated(engine: Engine) -> None:
    """Refuse to run on a database that is missing migrations, and say how to fix it."""
    from bot.errors import DatabaseNotReady

    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    url = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise DatabaseNotReady(
            f"the database at {url} has no kpibot tables yet. Run `kpibot db upgrade` first."
        )
    raise DatabaseNotReady(
        f"the database at {url} is at migration {current}, this kpibot needs {head}. "
        "Run `kpibot db upgrade`."
    )

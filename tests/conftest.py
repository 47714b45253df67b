"""Shared fixtures: a fresh database per test on SQLite, and on PostgreSQL when reachable;
and one read-only warehouse synced from the demo source, for end-to-end tests.

PostgreSQL runs when ``KPIBOT_TEST_POSTGRES_URL`` is set (CI sets it); each test gets its
own schema, so parallel runs and helpers never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import bot.state  # noqa: F401  (registers the bot's tables on Base)
from bot.db import make_engine
from metrics.schema import Base

POSTGRES_URL = os.environ.get("KPIBOT_TEST_POSTGRES_URL")
# The instant the demo warehouse's data ends; services over it get this as their clock.
DEMO_NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def _postgres_reason() -> str | None:
    if not POSTGRES_URL:
        return "PostgreSQL not configured: set KPIBOT_TEST_POSTGRES_URL to run these cases"
    try:
        engine = make_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at KPIBOT_TEST_POSTGRES_URL not reachable: {type(exc).__name__}"
    return None


_PG_SKIP = _postgres_reason()


def postgres_schema_url() -> Iterator[str]:
    """Yield a URL whose connections see only a fresh, empty schema."""
    assert POSTGRES_URL is not None
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kpibot.db'}"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    yield from postgres_schema_url()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database with every table created (no migrations: fast)."""
    eng = make_engine(database_url)
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for tests whose subject is not the database."""
    eng = make_engine(f"sqlite:///{tmp_path / 'kpibot.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with a year of demo data synced through the real runner; read only."""
    from bot.db import upgrade
    from integrations.demo import DemoConnector
    from integrations.runner import SyncRunner

    path = tmp_path_factory.mktemp("e2e") / "kpibot.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    SyncRunner(eng, clock=lambda: DEMO_NOW).sync(DemoConnector(seed=42, end=DEMO_NOW))
    eng.dispose()
    return path

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import bot.state  # noqa: F401
from bot.db import current_revision, ensure_migrated, head_revision, make_engine, upgrade
from bot.errors import DatabaseNotReady
from metrics.schema import Base


def test_an_empty_database_is_refused_with_the_command_that_fixes_it(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(DatabaseNotReady, match="kpibot db upgrade"):
        ensure_migrated(engine)
    engine.dispose()


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    before, after = upgrade(engine)
    assert before is None and after == head_revision()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    ensure_migrated(engine)  # no error
    assert upgrade(engine) == (head_revision(), head_revision())
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_migrations_match_the_models(database_url: str) -> None:
    """A model change without its migration fails here, on both backends."""
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    engine.dispose()

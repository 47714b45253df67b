"""A warehouse synced from the demo source, shared by the end-to-end tests of every platform."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

# The instant the demo data ends and the end-to-end services' clock stands still.
DEMO_NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with a year of demo data, synced through the real runner; read only."""
    from bot.db import make_engine, upgrade
    from integrations.demo import DemoConnector
    from integrations.runner import SyncRunner

    path = tmp_path_factory.mktemp("e2e") / "kpibot.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    SyncRunner(engine, clock=lambda: DEMO_NOW).sync(DemoConnector(seed=42, end=DEMO_NOW))
    engine.dispose()
    return path

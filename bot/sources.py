"""Syncing from the bot's side: which source fills which table (for freshness lines), and
the one sync entry point that also refreshes the KPI engine's derived tables."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine

from integrations.registry import SOURCES, sync_sources
from integrations.runner import StreamReport
from metrics import refresh_derived

log = logging.getLogger(__name__)


def stream_tables() -> dict[tuple[str, str], str]:
    """(source, stream) → the warehouse table it fills: which sources a KPI depends on."""
    return {
        (name, stream.name): stream.table.__tablename__
        for name, source in SOURCES.items()
        for stream in source.connector.streams  # type: ignore[attr-defined]
    }


def refresh(engine: Engine) -> int:
    """Fold what a sync changed into the derived tables (MRR timeline). Answers are right
    without it; revenue KPIs are fast with it. Returns the customers rebuilt."""
    started = time.perf_counter()
    with engine.begin() as conn:
        rebuilt = refresh_derived(conn)
    if rebuilt:
        log.info(
            "refreshed derived tables for %d customers in %.1fs",
            rebuilt,
            time.perf_counter() - started,
        )
    return rebuilt


def sync_and_refresh(engine: Engine, settings: Any, **kwargs: Any) -> list[StreamReport]:
    """``integrations.registry.sync_sources`` then :func:`refresh`: what every caller wants."""
    reports = sync_sources(engine, settings, **kwargs)
    refresh(engine)
    return reports

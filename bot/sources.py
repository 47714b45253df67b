"""Syncing from the bot's side: which source fills which table (for freshness lines), and
the one sync entry point that also refreshes the KPI engine's derived tables."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, select

from integrations.registry import SOURCES, enabled_sources, sync_sources
from integrations.runner import StreamReport
from metrics import refresh_derived
from metrics.schema import Customer, Subscription, SurveyResponse, Ticket, UsageEvent

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


def active_sources(engine: Engine, settings: Any) -> list[str]:
    """The sources to sync. The demo source, when switched on only by default (no real
    source configured), stays off once the warehouse holds data of another origin — a CSV
    import, say — so synthetic rows never mix with a team's own."""
    names = enabled_sources(settings)
    if "demo" in names and settings.config.sources.demo.enabled is None and _has_real_data(engine):
        log.info("demo source off: the warehouse holds data that did not come from it")
        names.remove("demo")
    return names


def _has_real_data(engine: Engine) -> bool:
    with engine.connect() as conn:
        for table in (Ticket, SurveyResponse, UsageEvent, Subscription, Customer):
            found = conn.execute(
                select(table.source).where(table.source != "demo").limit(1)
            ).first()
            if found is not None:
                return True
    return False


def sync_and_refresh(engine: Engine, settings: Any, **kwargs: Any) -> list[StreamReport]:
    """``integrations.registry.sync_sources`` then :func:`refresh`: what every caller wants."""
    if kwargs.get("sources") is None:
        kwargs["sources"] = active_sources(engine, settings)
    reports = sync_sources(engine, settings, **kwargs)
    refresh(engine)
    return reports

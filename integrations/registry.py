"""Every data source kpibot can sync, in one explicit list.

Adding a source is one module (``integrations/<name>.py``) plus one entry here; a
meta-test fails when a connector module is missing from :data:`SOURCES`. The functions
below are what ``kpibot sync`` and the scheduler call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from integrations.base import Connector
from integrations.delighted import DelightedConnector
from integrations.demo import DemoConnector
from integrations.runner import StreamReport, SyncObserver, SyncRunner, utcnow
from integrations.stripe import StripeConnector
from integrations.zendesk import ZendeskConnector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    name: str
    connector: type  # the connector class, for docs and the meta-test
    factory: Callable[[Any], Connector]  # Settings → a ready connector
    description: str


def _demo(settings: Any) -> Connector:
    return DemoConnector(seed=settings.config.sources.demo.seed)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("demo", DemoConnector, _demo, "synthetic data for a year, offline"),
        Source(
            "zendesk",
            ZendeskConnector,
            ZendeskConnector.from_settings,
            "tickets with metrics, CSAT ratings",
        ),
        Source(
            "stripe",
            StripeConnector,
            StripeConnector.from_settings,
            "customers, subscriptions with MRR history, invoices",
        ),
        Source("delighted", DelightedConnector, DelightedConnector.from_settings, "NPS/CSAT/CES"),
    )
}


def enabled_sources(settings: Any) -> list[str]:
    """Sources switched on: those with credentials in the environment, and the demo when
    it is enabled (by default only when no real source is configured)."""
    names = [n for n in SOURCES if n in settings.sources]
    if settings.demo_enabled():
        names.insert(0, "demo")
    return names


def build_connector(name: str, settings: Any) -> Connector:
    """A connector for source ``name``, with the look-back the config file asks for."""
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}")
    connector = SOURCES[name].factory(settings)
    tuning = getattr(settings.config.sources, name, None)
    if tuning is not None:
        minimum = timedelta(minutes=tuning.lookback_minutes)
        # An instance attribute shadows the class's streams: only the look-back changes.
        connector.streams = tuple(  # type: ignore[misc]
            dataclasses.replace(s, lookback=max(s.lookback, minimum)) for s in connector.streams
        )
    return connector


def sync_sources(
    engine: Engine,
    settings: Any,
    *,
    sources: Sequence[str] | None = None,
    streams: Sequence[str] | None = None,
    full: bool = False,
    since: datetime | None = None,
    observer: SyncObserver | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[StreamReport]:
    """Sync ``sources`` (default: every enabled one) into ``engine``. A source or stream
    that fails is reported (``StreamReport.error``) and the others go on."""
    names = list(sources) if sources is not None else enabled_sources(settings)
    runner = SyncRunner(engine, clock=clock)
    if observer is not None:
        runner.observer = observer
    reports: list[StreamReport] = []
    for name in names:
        connector = build_connector(name, settings)
        try:
            reports += runner.sync(connector, streams=streams, full=full, since=since)
        finally:
            connector.close()
    return reports

"""The sources this process syncs, built from the settings (credentials switch them on)."""

from __future__ import annotations

from datetime import datetime

from bot.settings import Settings
from integrations.base import Connector
from integrations.demo import DemoConnector

# Every connector class the bot knows, for freshness look-ups (stream → table).
CONNECTOR_CLASSES: tuple[type, ...] = (DemoConnector,)


def build_connectors(settings: Settings, *, now: datetime | None = None) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    if settings.demo_enabled():
        out["demo"] = DemoConnector(seed=settings.config.sources.demo.seed, end=now)
    return out


def stream_tables() -> dict[tuple[str, str], str]:
    return {
        (cls.name, stream.name): stream.table.__tablename__  # type: ignore[attr-defined]
        for cls in CONNECTOR_CLASSES
        for stream in cls.streams  # type: ignore[attr-defined]
    }

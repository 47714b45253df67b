"""Which source fills which table, from the integrations registry: for freshness lines."""

from __future__ import annotations

from integrations.registry import SOURCES


def stream_tables() -> dict[tuple[str, str], str]:
    """(source, stream) → the warehouse table it fills: which sources a KPI depends on."""
    return {
        (name, stream.name): stream.table.__tablename__
        for name, source in SOURCES.items()
        for stream in source.connector.streams  # type: ignore[attr-defined]
    }

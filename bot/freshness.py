"""How fresh each source is: "Zendesk synced 4 min ago", and which ones are stale."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from bot import format as fmt
from metrics.schema import SyncCursor


@dataclass(frozen=True)
class SourceFreshness:
    source: str
    synced_at: datetime | None  # the oldest last full success among the streams read
    stale: bool
    error: str | None = None

    def describe(self, now: datetime) -> str:
        label = self.source.capitalize()
        text = f"{label} synced {fmt.ago(self.synced_at, now)}"
        if self.stale:
            text = f"⚠ {text} (stale)"
        return text


def freshness(
    conn: Connection,
    *,
    tables: Iterable[str],
    stream_tables: Mapping[tuple[str, str], str],
    stale_after: Mapping[str, timedelta],
    now: datetime,
) -> list[SourceFreshness]:
    """Freshness of every source feeding ``tables``.

    ``stream_tables`` maps (source, stream) to the table it fills (from the connectors'
    declarations); ``stale_after`` gives each source's threshold.
    """
    wanted = set(tables)
    rows = conn.execute(
        select(
            SyncCursor.source, SyncCursor.stream, SyncCursor.last_success_at, SyncCursor.last_error
        )
    ).all()
    by_source: dict[str, list[tuple[datetime | None, str | None]]] = {}
    for source, stream, success, error in rows:
        if stream_tables.get((source, stream)) in wanted:
            by_source.setdefault(source, []).append((success, error))
    out = []
    for source, entries in sorted(by_source.items()):
        stamps = [s for s, _ in entries]
        synced = None if any(s is None for s in stamps) else min(s for s in stamps if s)
        limit = stale_after.get(source, timedelta(hours=3))
        stale = synced is None or now - synced > limit
        error = next((e for _, e in entries if e), None)
        out.append(SourceFreshness(source, synced, stale, error))
    return out

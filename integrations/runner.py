"""The shared sync runner: everything about syncing that is not specific to one API.

For each stream of a connector it reads the saved cursor, asks the connector for pages from
there (minus a look-back window), maps each record, and commits the page's upserts, its
deletions *and* the advanced cursor in one transaction. A crash anywhere therefore loses at
most the page in flight, which the next run fetches again; re-running is always harmless,
because rows are upserted by primary key and an older version never overwrites a newer one
(``updated_at`` decides).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, select, update

from integrations.base import Connector, Deletion, Page, ReplaceChildren, Stream, Timeline
from integrations.errors import InvalidRecord, SyncError
from integrations.history import merge_timelines
from integrations.upsert import (
    WriteCounts,
    apply_deletions,
    replace_children,
    upsert_newer,
    write_rows,
)
from metrics.schema import Base, SyncCursor

__all__ = ["CursorState", "StreamReport", "SyncObserver", "SyncRunner", "upsert_newer"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StreamReport:
    source: str
    stream: str
    pages: int = 0
    records: int = 0  # raw records received
    inserted: int = 0  # rows new to the warehouse (every table the stream writes)
    updated: int = 0  # rows whose content changed
    unchanged: int = 0  # rows already stored as they are: not written
    stale: int = 0  # late, older versions: dropped
    invalid: int = 0  # records skipped for a reason (logged with their id)
    deleted: int = 0
    periods_opened: int = 0  # history periods (subscription MRR/status changes)
    seconds: float = 0.0
    error: str | None = None
    complete: bool = False  # reached the end of the stream

    @property
    def written(self) -> int:
        """Rows inserted or updated (older versions and unchanged rows are not counted)."""
        return self.inserted + self.updated

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def count(self, written: WriteCounts) -> None:
        self.inserted += written.inserted
        self.updated += written.updated
        self.unchanged += written.unchanged
        self.stale += written.stale


class SyncObserver(Protocol):
    """Progress hooks: the CLI draws bars with them; the scheduler logs."""

    def stream_started(self, source: str, stream: str) -> None: ...

    def page_committed(self, report: StreamReport) -> None: ...

    def stream_finished(self, report: StreamReport) -> None: ...


class _NoProgress:
    def stream_started(self, source: str, stream: str) -> None:
        pass

    def page_committed(self, report: StreamReport) -> None:
        pass

    def stream_finished(self, report: StreamReport) -> None:
        pass


@dataclass
class CursorState:
    since: datetime | None = None
    resume: str | None = None

    @classmethod
    def load(cls, raw: str | None) -> CursorState:
        if not raw:
            return cls()
        data = json.loads(raw)
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(since=since, resume=data.get("resume"))

    def dump(self) -> str:
        return json.dumps(
            {"since": self.since.isoformat() if self.since else None, "resume": self.resume}
        )


@dataclass
class SyncRunner:
    engine: Engine
    clock: Clock = utcnow
    observer: SyncObserver = field(default_factory=_NoProgress)

    def sync(
        self,
        connector: Connector,
        *,
        streams: Sequence[str] | None = None,
        full: bool = False,
        since: datetime | None = None,
    ) -> list[StreamReport]:
        """Sync the connector's streams one after the other; a failing stream never stops
        the others. ``full`` ignores saved cursors; ``since`` starts from that instant."""
        wanted = [s for s in connector.streams if streams is None or s.name in streams]
        return [self.sync_stream(connector, s, full=full, since=since) for s in wanted]

    def sync_stream(
        self,
        connector: Connector,
        stream: Stream,
        *,
        full: bool = False,
        since: datetime | None = None,
    ) -> StreamReport:
        report = StreamReport(source=connector.name, stream=stream.name)
        self.observer.stream_started(connector.name, stream.name)
        started = time.perf_counter()
        state = self._load_state(connector.name, stream.name)
        if full or since is not None:
            state = CursorState(since=None, resume=None)
            start_from = since
        elif state.resume is not None:
            start_from = state.since  # carry on where the last committed page ended
        else:
            start_from = state.since - stream.lookback if state.since else None
        log.info(
            "sync %s/%s from %s%s",
            connector.name,
            stream.name,
            start_from.isoformat() if start_from else "the beginning",
            " (resuming)" if state.resume else "",
        )
        try:
            for page in connector.pages(stream, since=start_from, resume=state.resume):
                state = self._commit_page(connector, stream, page, state, report)
                report.seconds = time.perf_counter() - started
                self.observer.page_committed(report)
            report.complete = True
            self._mark_success(connector.name, stream.name)
        except SyncError as exc:
            report.error = str(exc)
            log.error("sync %s/%s stopped: %s", connector.name, stream.name, exc)
            self._record_error(connector.name, stream.name, str(exc))
        except Exception as exc:  # a bug in one connector must not stop the other streams
            report.error = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("sync %s/%s failed", connector.name, stream.name)
            self._record_error(connector.name, stream.name, report.error)
        report.seconds = time.perf_counter() - started
        self.observer.stream_finished(report)
        log.info(
            "sync %s/%s: %d records in %d pages: %d inserted, %d updated, %d unchanged, "
            "%d stale, %d invalid, %d deleted, %.1fs",
            connector.name,
            stream.name,
            report.records,
            report.pages,
            report.inserted,
            report.updated,
            report.unchanged,
            report.stale,
            report.invalid,
            report.deleted,
            report.seconds,
        )
        return report

    # -- one page, one transaction -------------------------------------------------------

    def _commit_page(
        self,
        connector: Connector,
        stream: Stream,
        page: Page,
        state: CursorState,
        report: StreamReport,
    ) -> CursorState:
        rows: dict[type[Base], list[dict[str, Any]]] = defaultdict(list)
        deletions: list[Deletion] = []
        replacements: list[ReplaceChildren] = []
        timelines: list[Timeline] = []
        newest = state.since
        if page.cursor is not None and (newest is None or page.cursor > newest):
            newest = page.cursor
        for raw in page.records:
            try:
                missing = [k for k in stream.required if raw.get(k) in (None, "")]
                if missing:
                    raise InvalidRecord(f"missing {', '.join(missing)}")
                mapped = connector.map(stream, raw)
            except InvalidRecord as exc:
                report.invalid += 1
                log.warning(
                    "skipped %s/%s record %s: %s",
                    connector.name,
                    stream.name,
                    exc.record_id or raw.get(stream.primary_key) or "without id",
                    exc.reason,
                )
                continue
            for item in mapped:
                if isinstance(item, Deletion):
                    deletions.append(item)
                    # A deletion is a change seen too: the cursor moves past it.
                    seen = item.at if item.table is stream.table and page.cursor is None else None
                    if seen is not None and (newest is None or seen > newest):
                        newest = seen
                elif isinstance(item, ReplaceChildren):
                    replacements.append(item)
                elif isinstance(item, Timeline):
                    timelines.append(item)
                else:
                    rows[item.table].append(dict(item.values))
                    if item.table is stream.table and page.cursor is None:
                        stamp = item.values.get(stream.cursor_field)
                        if isinstance(stamp, datetime) and (newest is None or stamp > newest):
                            newest = stamp
        deletions.extend(Deletion(stream.table, i) for i in page.deleted_ids)

        new_state = CursorState(since=newest, resume=page.resume)
        now = self.clock()
        with self.engine.begin() as conn:
            for table, values in rows.items():
                report.count(write_rows(conn, table, values))
            if replacements:
                report.deleted += replace_children(conn, replacements)
            if deletions:
                report.deleted += apply_deletions(conn, deletions)
            if timelines:
                opened, _closed = merge_timelines(conn, timelines)
                report.periods_opened += opened
            self._save_state(conn, connector.name, stream.name, new_state, now, len(page.records))
        report.pages += 1
        report.records += len(page.records)
        return new_state

    # -- cursor rows ---------------------------------------------------------------------

    def _load_state(self, source: str, stream: str) -> CursorState:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(SyncCursor.cursor).where(
                    SyncCursor.source == source, SyncCursor.stream == stream
                )
            ).scalar_one_or_none()
        return CursorState.load(raw)

    def _save_state(
        self,
        conn: Connection,
        source: str,
        stream: str,
        state: CursorState,
        now: datetime,
        records: int,
    ) -> None:
        where = (SyncCursor.source == source, SyncCursor.stream == stream)
        updated = conn.execute(
            update(SyncCursor)
            .where(*where)
            .values(
                cursor=state.dump(),
                records_total=SyncCursor.records_total + records,
                last_page_at=now,
                updated_at=now,
            )
            .returning(SyncCursor.source)
        ).first()
        if updated is None:
            conn.execute(
                insert(SyncCursor).values(
                    source=source,
                    stream=stream,
                    cursor=state.dump(),
                    records_total=records,
                    last_page_at=now,
                    updated_at=now,
                )
            )

    def _mark_success(self, source: str, stream: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(SyncCursor)
                .where(SyncCursor.source == source, SyncCursor.stream == stream)
                .values(last_success_at=now, last_error=None, updated_at=now)
                .returning(SyncCursor.source)
            ).first()
            if done is None:  # an empty stream: remember that it was checked
                conn.execute(
                    insert(SyncCursor).values(
                        source=source,
                        stream=stream,
                        cursor=CursorState().dump(),
                        records_total=0,
                        last_success_at=now,
                        updated_at=now,
                    )
                )

    def _record_error(self, source: str, stream: str, message: str) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                update(SyncCursor)
                .where(SyncCursor.source == source, SyncCursor.stream == stream)
                .values(last_error=message[:2000], updated_at=now)
            )

"""What a data source declares, and what the shared sync runner does with it.

A connector (``integrations/<source>.py``) holds only API-specific code: its streams and,
for each stream, the one function that knows the API's paging (:meth:`Connector.pages`)
and the one that maps a raw record onto warehouse rows (:meth:`Connector.map`). The runner
(``integrations/runner.py``) owns the rest: cursor state, look-back, upserts that never let
an older version win, one transaction per page together with the advanced cursor, retries,
progress and logging.

Cursor state, as the runner stores it per (source, stream), is two things:

* ``since``: the largest ``updated_at`` (the stream's cursor field) committed so far. The
  next run starts from ``since − lookback``; re-reading a little is harmless because
  upserts are idempotent.
* ``resume``: an opaque token from the last committed page (a Zendesk ``after_url``, a
  Stripe ``starting_after`` id), or None once the stream reached its end. A run interrupted
  mid-stream resumes from it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from metrics.schema import Base

RawRecord = Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    """One warehouse row produced by mapping a raw record: upserted by primary key."""

    table: type[Base]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Deletion:
    """The source reports that this record is gone: the runner applies it."""

    table: type[Base]
    id: str


@dataclass(frozen=True)
class Stream:
    name: str
    table: type[Base]  # the main table this stream fills
    primary_key: str = "id"
    cursor_field: str = "updated_at"  # a UTC datetime in every mapped main-table row
    lookback: timedelta = timedelta(minutes=10)
    required: tuple[str, ...] = ("id",)  # raw fields without which a record is skipped


@dataclass(frozen=True)
class Page:
    records: list[RawRecord]
    resume: str | None  # where to continue after this page is committed; None at the end
    # Records the source reports as deleted in this page (ids of the stream's main table).
    deleted_ids: list[str] = field(default_factory=list)


class Connector(Protocol):
    """A data source. Implementations are plain classes listed in ``integrations.SOURCES``."""

    name: ClassVar[str]
    streams: ClassVar[tuple[Stream, ...]]

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        """Yield pages from ``resume`` if given, else from ``since`` (None: from the start)."""
        ...

    def map(self, stream: Stream, raw: RawRecord) -> list[Row | Deletion]:
        """Map one raw record to rows; raise ``InvalidRecord`` to skip it with a reason."""
        ...

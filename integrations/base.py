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
  mid-stream resumes from it. A token must be self-contained (carry its own filters): when
  ``resume`` is given, ``since`` is only a hint.

``since`` is inclusive: a connector yields records whose cursor is ``>= since``, so records
sharing the cursor value of the last committed page are read again, never skipped.

What :meth:`Connector.map` may return for one raw record:

* :class:`Row` — upserted by primary key; an older ``updated_at`` never overwrites a newer;
* :class:`Deletion` — the record is gone at the source (deleted unless a newer version
  is stored);
* :class:`ReplaceChildren` — the complete set of child rows of a parent (a subscription's
  items): children not in it are deleted;
* :class:`Timeline` — what the source says about an entity's history (a subscription's
  status and MRR); the runner keeps it as periods ``valid_from``/``valid_to`` (see
  ``integrations/history.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
    """The source reports that this record is gone: the runner applies it.

    With ``at`` (when the source deleted it), a stored version newer than ``at`` survives:
    the record was restored after the deletion we are hearing about.
    """

    table: type[Base]
    id: str
    at: datetime | None = None


@dataclass(frozen=True)
class ReplaceChildren:
    """``keep_ids`` are all the rows of ``table`` whose ``parent_field`` is ``parent_id``:
    the runner deletes the others (an item removed from a subscription)."""

    table: type[Base]
    parent_field: str
    parent_id: str
    keep_ids: frozenset[str]


@dataclass(frozen=True)
class Segment:
    """A stretch of an entity's history: from ``valid_from`` on, its state was ``values``."""

    valid_from: datetime
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Timeline:
    """An entity's history as the source tells it at ``as_of``.

    ``segments`` are in time order; the last one is the current state, open unless
    ``ended_at``. The runner writes the whole timeline the first time it sees the entity;
    afterwards it keeps the stored past and only closes the open period and opens a new one
    when the state (``values`` compared on ``compare``) changed. The change is dated
    ``changed_at`` when the source says when (an event), else the current segment's own
    start when it is later than the open period's (a trial that ended), else ``as_of``.
    """

    table: type[Base]
    key_field: str  # the entity column in ``table``, e.g. "subscription_id"
    key: str
    segments: tuple[Segment, ...]
    as_of: datetime
    compare: tuple[str, ...]
    ended_at: datetime | None = None
    changed_at: datetime | None = None


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
    records: Sequence[RawRecord]
    resume: str | None  # where to continue after this page is committed; None at the end
    # Records the source reports as deleted in this page (ids of the stream's main table).
    deleted_ids: list[str] = field(default_factory=list)
    # The cursor this page advances to, when it is not the largest ``cursor_field`` of
    # the mapped main-table rows (e.g. a Stripe event's ``created``).
    cursor: datetime | None = None


MapResult = Row | Deletion | ReplaceChildren | Timeline


class Connector(Protocol):
    """A data source. Implementations are plain classes listed in ``integrations.SOURCES``."""

    name: ClassVar[str]
    streams: ClassVar[tuple[Stream, ...]]

    def pages(
        self, stream: Stream, *, since: datetime | None, resume: str | None
    ) -> Iterator[Page]:
        """Yield pages from ``resume`` if given, else from ``since`` (None: from the start)."""
        ...

    def map(self, stream: Stream, raw: RawRecord) -> Sequence[MapResult]:
        """Map one raw record to rows; raise ``InvalidRecord`` to skip it with a reason."""
        ...

    def close(self) -> None:
        """Release HTTP connections; the runner's callers call it when a sync is done."""
        ...

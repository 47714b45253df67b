"""History tables: keeping an entity's states as periods ``[valid_from, valid_to)``.

A billing source tells us a subscription's *current* state; MRR history needs every
state it went through. :func:`merge_timelines` folds what the source says now (a
:class:`~integrations.base.Timeline`) into the stored periods:

* an entity seen for the first time gets its whole timeline as reconstructed by the
  connector (e.g. a trial, then the paid stretch, closed when the subscription ended);
* afterwards the stored past is never rewritten: when the current state equals the open
  period's, at most its end is set (the subscription ended); when it differs, the open
  period is closed at the change and a new one opens there;
* an observation older than the stored history's last change (``as_of`` before the last
  period's ``updated_at``) is dropped, like an older version of a row.

Period ids are ``"<key>@<epoch seconds of valid_from>"``, so replaying an observation
writes the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from integrations.base import Segment, Timeline
from integrations.upsert import CHUNK, same_value, upsert_rows

Period = dict[str, Any]


def merge_timelines(conn: Connection, timelines: Sequence[Timeline]) -> tuple[int, int]:
    """Fold observations into their history tables; returns (periods opened, closed)."""
    opened = closed = 0
    by_table: dict[Any, list[Timeline]] = defaultdict(list)
    for tl in timelines:
        by_table[tl.table].append(tl)
    for table, items in by_table.items():
        tbl: Table = table.__table__
        key_field = items[0].key_field
        history = _load(conn, tbl, key_field, sorted({t.key for t in items}))
        touched: dict[str, Period] = {}
        for tl in sorted(items, key=lambda t: t.as_of):
            periods = history.setdefault(tl.key, [])
            o, c = _fold(tl, periods, touched)
            opened += o
            closed += c
        upsert_rows(conn, tbl, ["id"], list(touched.values()))
    return opened, closed


def _fold(tl: Timeline, periods: list[Period], touched: dict[str, Period]) -> tuple[int, int]:
    if not periods:
        for period in _initial(tl):
            periods.append(period)
            touched[period["id"]] = period
        return len(periods), 0
    last = periods[-1]
    if tl.as_of < last["updated_at"]:
        return 0, 0  # an older observation than the history already holds
    current = tl.segments[-1]
    same = all(same_value(last.get(c), current.values.get(c)) for c in tl.compare)
    if same:
        end = max(tl.ended_at, last["valid_from"]) if tl.ended_at is not None else None
        if last["valid_to"] == end:
            return 0, 0
        last.update(valid_to=end, updated_at=tl.as_of)
        touched[last["id"]] = last
        return 0, 1 if end is not None else 0
    if tl.changed_at is not None:
        at = tl.changed_at
    elif current.valid_from > last["valid_from"]:
        at = current.valid_from
    else:
        at = tl.as_of
    if at <= last["valid_from"]:
        # The change is dated at (or before) the open period's start: it *is* that period.
        last.update({c: current.values.get(c) for c in tl.compare}, updated_at=tl.as_of)
        if tl.ended_at is not None:
            last["valid_to"] = max(tl.ended_at, last["valid_from"])
        touched[last["id"]] = last
        return 0, 0
    if tl.ended_at is not None and tl.ended_at <= at:
        # It ended before the new state began: close what was open, open nothing.
        end = max(tl.ended_at, last["valid_from"])
        if last["valid_to"] is not None and last["valid_to"] <= end:
            return 0, 0
        last.update(valid_to=end, updated_at=tl.as_of)
        touched[last["id"]] = last
        return 0, 1
    closes = 0
    if last["valid_to"] is None or last["valid_to"] > at:
        last.update(valid_to=at, updated_at=tl.as_of)
        touched[last["id"]] = last
        closes = 1
    new = _period(tl, Segment(at, current.values), tl.ended_at)
    periods.append(new)
    touched[new["id"]] = new
    return 1, closes


def _initial(tl: Timeline) -> list[Period]:
    segments = list(tl.segments)
    out: list[Period] = []
    for i, seg in enumerate(segments):
        end = segments[i + 1].valid_from if i + 1 < len(segments) else tl.ended_at
        if end is not None and end <= seg.valid_from:
            continue  # a stretch of no length (a trial cancelled the day it began)
        out.append(_period(tl, seg, end))
    if not out:  # it ended before anything began: keep its last state, of no length
        last = segments[-1]
        out.append(_period(tl, last, last.valid_from))
    return out


def _period(tl: Timeline, seg: Segment, valid_to: datetime | None) -> Period:
    return {
        **seg.values,
        "id": f"{tl.key}@{int(seg.valid_from.timestamp())}",
        tl.key_field: tl.key,
        "valid_from": seg.valid_from,
        "valid_to": valid_to,
        "updated_at": tl.as_of,
    }


def _load(conn: Connection, tbl: Table, key_field: str, keys: list[str]) -> dict[str, list[Period]]:
    out: dict[str, list[Period]] = defaultdict(list)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = conn.execute(
            select(tbl).where(tbl.c[key_field].in_(chunk)).order_by(tbl.c.valid_from)
        ).mappings()
        for row in rows:
            out[row[key_field]].append(dict(row))
    return out

"""Helpdesk KPIs over ``tickets``: FRT, TTR, FCR, ticket volume and backlog.

Deleted tickets (``status = 'deleted'``) never count. Times come from the columns Zendesk's
ticket metrics fill (calendar or business minutes, per the team's configuration).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, literal, select

from metrics.kpis.base import (
    NONE_KEY,
    SOLVED_STATUSES,
    Cell,
    Computation,
    Request,
    Source,
    additive,
    bucket_series,
    count_if,
    dimension_series,
    distributed,
    grouped,
    observations,
    scoped,
    statistic_of,
    within,
)
from metrics.schema import Ticket

TICKET_DIMENSIONS = {
    "channel": Ticket.channel,
    "group": Ticket.group_name,
    "priority": Ticket.priority,
}
TICKETS = Source(Ticket.__table__, Ticket.customer_id, TICKET_DIMENSIONS)  # type: ignore[arg-type]
_T = Ticket
_LIVE = _T.status != "deleted"
_SOLVED = _T.status.in_(SOLVED_STATUSES)


def first_response_time(conn: Connection, req: Request) -> Computation:
    """Creation → first public agent reply for tickets created in the window, in minutes.

    Tickets without a reply yet are outside the distribution and counted as ``awaiting``.
    """
    minutes = _T.first_reply_business_minutes if req.ctx.business_hours else _T.first_reply_minutes
    observed = observations(conn, req, TICKETS, on=within(_T.created_at), value=minutes,
                            where=[_LIVE])  # fmt: skip
    return distributed(req, observed, _durations(req.statistic or "median", awaiting=True))


def time_to_resolution(conn: Connection, req: Request) -> Computation:
    """Creation → latest solve, for tickets solved in the window (attributed to the solve)."""
    minutes = (
        _T.full_resolution_business_minutes
        if req.ctx.business_hours
        else _T.full_resolution_minutes
    )
    observed = observations(conn, req, TICKETS, on=within(_T.solved_at), value=minutes,
                            where=[_SOLVED, minutes.is_not(None)])  # fmt: skip
    return distributed(req, observed, _durations(req.statistic or "median", awaiting=False))


def _durations(statistic: str, *, awaiting: bool) -> Callable[[np.ndarray], Cell]:
    """The summary of a duration distribution: the statistic, with median and p90 beside it."""

    def summarize(values: np.ndarray) -> Cell:
        known = values[~np.isnan(values)]
        extra: dict[str, float | None] = {
            s: statistic_of(known, s) for s in ("median", "p90") if s != statistic
        }
        if awaiting:
            extra["awaiting"] = float(values.size - known.size)
        return Cell(statistic_of(known, statistic), int(known.size), extra)

    return summarize


def first_contact_resolution(conn: Connection, req: Request) -> Computation:
    """Solved tickets with at most one public reply and no reopen ÷ solved tickets × 100."""
    rows = grouped(
        conn,
        req,
        TICKETS,
        on=within(_T.solved_at),
        where=[_SOLVED],
        columns=[func.count(), count_if((_T.replies <= 1) & (_T.reopens == 0))],
    )
    return additive(req, rows, 2, _fcr_cell)


def _fcr_cell(sums: tuple[float, ...]) -> Cell:
    n, one_touch = (int(x) for x in sums)
    return Cell(100 * one_touch / n if n else None, n, {"one_touch": float(one_touch)})


def ticket_volume(conn: Connection, req: Request) -> Computation:
    """Tickets created in the window."""
    rows = grouped(
        conn, req, TICKETS, on=within(_T.created_at), where=[_LIVE], columns=[func.count()]
    )
    return additive(req, rows, 1, lambda s: Cell(s[0] if s[0] else None, int(s[0])))


def backlog(conn: Connection, req: Request) -> Computation:
    """Unsolved tickets (new, open, pending, on hold) at the window's end; a value per bucket.

    The warehouse keeps a ticket's current status and latest solve, not its history: a
    ticket solved now left the backlog at ``solved_at`` (at its creation if it has no solve
    time); one unsolved now is counted from its creation on (an earlier solve that was
    reopened is not known).
    """
    if req.dimension or not req.buckets:
        return _backlog_at(conn, req, req.window.end)
    # Backlog at each bucket's end = backlog at the window's start + created − solved so
    # far: a range scan per bucket instead of counting every older ticket per bucket.
    opening = _backlog_at(conn, req, req.window.start).total
    created = _per_bucket(
        grouped(conn, req, TICKETS, on=within(_T.created_at), where=[_LIVE], columns=[func.count()])
    )
    # Left the backlog in a bucket: coalesce(solved_at, created_at) in it, asked as two range
    # scans of indexes (an expression index would not survive Alembic's comparison on
    # SQLite): solved in the bucket, and solved tickets without a solve time created in it.
    solved = _per_bucket(
        grouped(conn, req, TICKETS, on=within(_T.solved_at), where=[_SOLVED],
                columns=[func.count()])
    )  # fmt: skip
    undated = _per_bucket(
        grouped(conn, req, TICKETS, on=within(_T.created_at), where=[_SOLVED],
                columns=[count_if(_T.solved_at.is_(None))])
    )  # fmt: skip
    level, seen = int(opening.value or 0), opening.n
    cells = []
    for i in range(len(req.buckets)):
        level += created.get(i, 0) - solved.get(i, 0) - undated.get(i, 0)
        seen += created.get(i, 0)
        cells.append(Cell(float(level) if seen else None, seen))
    return Computation(total=cells[-1], series=bucket_series(req.buckets, cells))


def _backlog_at(conn: Connection, req: Request, instant: datetime) -> Computation:
    """Backlog at ``instant``: tickets created before it with an unsolved status, plus
    solved ones whose solve came at or after it.

    Each is one range scan of the index that covers it: tickets created before the instant
    counted per status (``ix_tickets_status``, which SQLite skip-scans status by status),
    and tickets solved since (``ix_tickets_solved``; the other conditions sit inside the
    count so that no index with a longer range looks better to the planner).
    """
    dim = TICKETS.dimension(req.dimension) if req.dimension else None
    key = dim if dim is not None else literal(None)
    by_status = scoped(
        select(key, _T.status, func.count()).where(_T.created_at < instant), req, TICKETS
    ).group_by(*([dim] if dim is not None else []), _T.status)
    later = scoped(
        select(key, count_if(_SOLVED & (_T.created_at < instant))).where(_T.solved_at >= instant),
        req,
        TICKETS,
    ).group_by(*([dim] if dim is not None else []))
    seen: dict[str | None, int] = {}
    unsolved: dict[str | None, int] = {}
    for value, status, count in conn.execute(by_status):
        name = _key(value, dim is not None)
        if status != "deleted":
            seen[name] = seen.get(name, 0) + int(count)
        if status not in (*SOLVED_STATUSES, "deleted"):
            unsolved[name] = unsolved.get(name, 0) + int(count)
    for value, count in conn.execute(later):
        name = _key(value, dim is not None)
        unsolved[name] = unsolved.get(name, 0) + int(count)
    # n counts every ticket created before the instant: no tickets at all means no value,
    # while tickets that are all solved mean a backlog of 0.
    cells = {
        name: _backlog_cell((n, unsolved.get(name, 0)))
        for name, n in seen.items()
        if n and name is not None  # a value whose tickets were all deleted is no bar
    }
    total = _backlog_cell((sum(seen.values()), sum(unsolved.values())))
    series = dimension_series(cells) if req.dimension else ()
    return Computation(total=total, series=series)


def _key(value: Any, has_dimension: bool) -> str | None:
    if not has_dimension:
        return None
    return NONE_KEY if value is None else str(value)


def _backlog_cell(cols: tuple[Any, ...]) -> Cell:
    seen, level = int(cols[0]), int(cols[1])
    return Cell(float(level) if seen else None, seen)


def _per_bucket(rows: list[tuple[int, str | None, tuple[Any, ...]]]) -> dict[int, int]:
    return {idx: int(cols[0]) for idx, _, cols in rows}

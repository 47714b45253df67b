"""Helpdesk KPIs over ``tickets``: FRT, TTR, FCR, ticket volume and backlog.

Deleted tickets (``status = 'deleted'``) never count. Times come from the columns Zendesk's
ticket metrics fill (calendar or business minutes, per the team's configuration).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func

from metrics.kpis.base import (
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
    ticket solved now left the backlog at ``solved_at``; one unsolved now is counted from
    its creation on (an earlier solve that was reopened is not known).
    """
    if req.dimension or not req.buckets:
        return _backlog_at(conn, req, req.window.end)
    # Backlog at each bucket's end = backlog at the window's start + created − solved so
    # far: a range scan per bucket instead of counting every older ticket per bucket.
    opening = _backlog_at(conn, req, req.window.start).total
    created = _per_bucket(
        grouped(conn, req, TICKETS, on=within(_T.created_at), where=[_LIVE], columns=[func.count()])
    )
    solved = _per_bucket(
        grouped(
            conn,
            req,
            TICKETS,
            on=within(func.coalesce(_T.solved_at, _T.created_at)),
            where=[_LIVE, _SOLVED],
            columns=[func.count()],
        )
    )
    level, seen = int(opening.value or 0), opening.n
    cells = []
    for i in range(len(req.buckets)):
        level += created.get(i, 0) - solved.get(i, 0)
        seen += created.get(i, 0)
        cells.append(Cell(float(level) if seen else None, seen))
    return Computation(total=cells[-1], series=bucket_series(req.buckets, cells))


def _backlog_at(conn: Connection, req: Request, instant: datetime) -> Computation:
    def on(b: Any) -> Any:
        return _T.created_at < b.c.e

    solved_before = _SOLVED & (func.coalesce(_T.solved_at, _T.created_at) < instant)
    rows = grouped(
        conn,
        req,
        TICKETS,
        on=on,
        where=[_LIVE],
        columns=[func.count(), count_if(~solved_before)],
        intervals=[(instant, instant)],
    )
    # n counts every ticket created before the instant: no tickets at all means no value,
    # while tickets that are all solved mean a backlog of 0.
    cells = {key: _backlog_cell(cols) for _, key, cols in rows}
    total = _backlog_cell(tuple(sum(int(r[2][i]) for r in rows) for i in range(2)))
    series = dimension_series(cells) if req.dimension else ()
    return Computation(total=total, series=series)


def _backlog_cell(cols: tuple[Any, ...]) -> Cell:
    seen, level = int(cols[0]), int(cols[1])
    return Cell(float(level) if seen else None, seen)


def _per_bucket(rows: list[tuple[int, str | None, tuple[Any, ...]]]) -> dict[int, int]:
    return {idx: int(cols[0]) for idx, _, cols in rows}

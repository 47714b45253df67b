"""Revenue KPIs over ``subscription_periods``: MRR and everything derived from it.

MRR "at" an instant t is the closing balance just before t: the paid periods (active,
past_due) with ``valid_from < t <= valid_to`` (an open period has no ``valid_to``). So MRR at
a window's end is MRR at its start plus the movements *in* the window, and the closing MRR
of one month is the opening MRR of the next: a subscription that starts at local midnight on
1 November is November's new business, not October's.

Money is summed in minor units (as stored) and reported in major units of the reporting
currency, rounded to 6 decimals to shed float noise, identically on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, literal

from metrics.kpis.base import (
    PAID_STATUSES,
    Cell,
    Computation,
    Request,
    Source,
    bucket_series,
    count_if,
    dimension_series,
    grouped,
    money,
    within,
)
from metrics.schema import SubscriptionPeriod

PERIODS = Source(SubscriptionPeriod.__table__, SubscriptionPeriod.customer_id)  # type: ignore[arg-type]
_P = SubscriptionPeriod
_PAID = _P.status.in_(PAID_STATUSES)


def alive_at(b: Any) -> Any:
    """Join condition: the period holds at the end ``e`` of the interval (closing balance)."""
    return (_P.valid_from < b.c.e) & (_P.valid_to.is_(None) | (_P.valid_to >= b.c.e))


def monthly_recurring_revenue(conn: Connection, req: Request) -> Computation:
    """MRR at the window's end; with a grain, at each bucket's end."""
    currency = req.ctx.currency
    if req.dimension or not req.buckets:
        total, cells = balance_at(conn, req, req.window.end)
        series = dimension_series(cells) if req.dimension else ()
        return Computation(total=total.cell(currency), series=series)
    # MRR at each bucket's end = MRR at the window's start + what started − what ended so
    # far: a range scan per bucket rather than a scan of all history per bucket.
    level, _ = balance_at(conn, req, req.window.start)
    started = _per_bucket(
        grouped(
            conn,
            req,
            PERIODS,
            on=within(_P.valid_from),
            columns=[func.count(), count_if(_PAID), func.sum(case((_PAID, _P.mrr), else_=0))],
        )
    )
    ended = _per_bucket(
        grouped(
            conn,
            req,
            PERIODS,
            on=within(_P.valid_to),
            where=[_PAID],
            columns=[literal(0), func.count(), func.sum(_P.mrr)],
        )
    )
    cells = []
    for i in range(len(req.buckets)):
        level = level.plus(started.get(i)).minus(ended.get(i))
        cells.append(level.cell(currency))
    return Computation(total=cells[-1], series=bucket_series(req.buckets, cells))


@dataclass(frozen=True)
class Balance:
    """MRR at an instant (minor units), the paid periods behind it, and the periods ever
    started before it (none at all means there is no billing data: no value)."""

    minor: float = 0.0
    alive: int = 0
    seen: int = 0

    def plus(self, delta: Balance | None) -> Balance:
        if delta is None:
            return self
        return Balance(self.minor + delta.minor, self.alive + delta.alive, self.seen + delta.seen)

    def minus(self, delta: Balance | None) -> Balance:
        if delta is None:
            return self
        return Balance(self.minor - delta.minor, self.alive - delta.alive, self.seen - delta.seen)

    def cell(self, currency: str) -> Cell:
        # Once there is history, an MRR of 0 (everyone churned) is a real 0.
        return Cell(money(self.minor, currency) if self.seen else None, self.alive)


def balance_at(
    conn: Connection, req: Request, instant: datetime
) -> tuple[Balance, dict[str, Cell]]:
    """MRR at ``instant`` in total and per value of the query's dimension."""
    alive = _PAID & (_P.valid_to.is_(None) | (_P.valid_to >= instant))
    rows = grouped(
        conn,
        req,
        PERIODS,
        on=lambda b: _P.valid_from < b.c.e,
        columns=[func.count(), count_if(alive), func.sum(case((alive, _P.mrr), else_=0))],
        intervals=[(instant, instant)],
    )
    total = Balance()
    cells: dict[str, Cell] = {}
    for _, key, cols in rows:
        part = _balance(cols)
        total = total.plus(part)
        if key is not None and part.alive:  # a plan whose customers all left is no bar
            cells[key] = part.cell(req.ctx.currency)
    return total, cells


def _balance(cols: tuple[Any, ...]) -> Balance:
    return Balance(minor=float(cols[2] or 0), alive=int(cols[1]), seen=int(cols[0]))


def _per_bucket(rows: list[tuple[int, str | None, tuple[Any, ...]]]) -> dict[int, Balance]:
    return {idx: _balance(cols) for idx, _, cols in rows}

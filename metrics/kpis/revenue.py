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

from sqlalchemy import Connection, case, func, literal, select, union_all

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
    headline_and_series,
    intervals_table,
    money,
    scoped,
    window_and_buckets,
    within,
)
from metrics.schema import SubscriptionPeriod
from metrics.windows import local_midnight

PERIODS = Source(SubscriptionPeriod.__table__, SubscriptionPeriod.customer_id)  # type: ignore[arg-type]
_P = SubscriptionPeriod
_PAID = _P.status.in_(PAID_STATUSES)


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


# --- Movements and cohorts: what MRR's changes and the retention KPIs are made of ---------

# Below half a hundredth of a cent, an MRR is zero (sums of floats leave crumbs).
EPSILON = 0.005
MOVEMENTS = ("new", "expansion", "contraction", "churn", "reactivation")
# Every KPI below gets the whole window as interval 0, then the buckets: ratios of a window
# are not sums of its buckets' ratios.


@dataclass(frozen=True)
class Book:
    """One interval's revenue ledger, in minor units: who paid at its start and end, and
    the movements between. ``kept`` is the start customers' MRR capped at its start value
    (what GRR keeps); ``retained`` counts start customers still paying at the end."""

    start_customers: int = 0
    start_mrr: float = 0.0
    end_customers: int = 0
    end_mrr: float = 0.0
    retained: int = 0
    retained_mrr: float = 0.0
    kept: float = 0.0
    amounts: tuple[tuple[str, float], ...] = ()  # movement kind → amount
    counts: tuple[tuple[str, int], ...] = ()  # movement kind → movements
    length_days: float = 0.0

    def amount(self, kind: str) -> float:
        return dict(self.amounts).get(kind, 0.0)

    def count(self, kind: str) -> int:
        return dict(self.counts).get(kind, 0)


def books(
    conn: Connection, req: Request, *, cohort: bool = True, movements: bool = True
) -> list[Book]:
    """A Book per interval (the window, then its buckets)."""
    intervals = window_and_buckets(req)
    out = [{"length_days": (e - s).total_seconds() / 86400} for s, e in intervals]
    if cohort:
        for idx, values in _cohorts(conn, req, intervals).items():
            out[idx].update(values)
    if movements:
        for idx, (amounts, counts) in _movements(conn, req, intervals).items():
            out[idx].update(amounts=tuple(amounts.items()), counts=tuple(counts.items()))
    return [Book(**values) for values in out]  # type: ignore[arg-type]


def customer_mrr(req: Request, b: Any, edge: str) -> Any:
    """Per interval, each customer's MRR at its start (``s``) or end (``e``), if paying."""
    t = b.c[edge]
    alive = (_P.valid_from < t) & (_P.valid_to.is_(None) | (_P.valid_to >= t))
    stmt = select(b.c.idx, _P.customer_id.label("customer"), func.sum(_P.mrr).label("mrr"))
    stmt = scoped(stmt.select_from(b).join(_P, alive), req, PERIODS, [_PAID])
    return (
        stmt.group_by(b.c.idx, _P.customer_id)
        .having(func.sum(_P.mrr) > EPSILON)
        .cte(f"mrr_at_{edge}")
    )


def _cohorts(
    conn: Connection, req: Request, intervals: list[tuple[datetime, datetime]]
) -> dict[int, dict[str, Any]]:
    b = intervals_table(intervals)
    at_start, at_end = customer_mrr(req, b, "s"), customer_mrr(req, b, "e")
    end_mrr = func.coalesce(at_end.c.mrr, 0)
    kept = case(
        (at_end.c.mrr.is_(None), 0), (at_end.c.mrr < at_start.c.mrr, at_end.c.mrr),
        else_=at_start.c.mrr,
    )  # fmt: skip
    survivors = (
        select(
            at_start.c.idx,
            func.count(),
            func.sum(at_start.c.mrr),
            func.count(at_end.c.customer),
            func.sum(end_mrr),
            func.sum(kept),
        )
        .select_from(at_start)
        .outerjoin(
            at_end,
            (at_end.c.idx == at_start.c.idx) & (at_end.c.customer == at_start.c.customer),
        )
        .group_by(at_start.c.idx)
    )
    out: dict[int, dict[str, Any]] = {}
    for idx, customers, mrr, retained, retained_mrr, kept_mrr in conn.execute(survivors):
        out[idx] = {
            "start_customers": int(customers),
            "start_mrr": float(mrr or 0),
            "retained": int(retained),
            "retained_mrr": float(retained_mrr or 0),
            "kept": float(kept_mrr or 0),
        }
    ends = select(at_end.c.idx, func.count(), func.sum(at_end.c.mrr)).group_by(at_end.c.idx)
    for idx, customers, mrr in conn.execute(ends):
        out.setdefault(idx, {}).update(end_customers=int(customers), end_mrr=float(mrr or 0))
    return out


def _movements(
    conn: Connection, req: Request, intervals: list[tuple[datetime, datetime]]
) -> dict[int, tuple[dict[str, float], dict[str, int]]]:
    """MRR movements per interval, from each customer's MRR timeline.

    A customer's MRR changes where one of their paid periods starts or ends; changes at the
    same instant are netted (a plan switch is one expansion, not a churn and a new). Moving
    from 0 is new business the first time and reactivation after; moving to 0 is churn, so
    a customer churns only when their last paid subscription ends; anything else is
    expansion or contraction.
    """
    start, end = intervals[0]
    b = intervals_table(intervals)
    changed = select(_P.customer_id).where(
        _PAID,
        ((_P.valid_from >= start) & (_P.valid_from < end))
        | ((_P.valid_to >= start) & (_P.valid_to < end)),
    )
    paid = scoped(
        select(_P.customer_id, _P.valid_from, _P.valid_to, _P.mrr),
        req,
        PERIODS,
        [_PAID, _P.mrr > EPSILON, _P.customer_id.in_(changed)],
    ).cte("paid")
    deltas = union_all(
        select(paid.c.customer_id.label("customer"), paid.c.valid_from.label("t"),
               paid.c.mrr.label("d")),
        select(paid.c.customer_id, paid.c.valid_to, -paid.c.mrr).where(
            paid.c.valid_to.is_not(None)
        ),
    ).cte("deltas")  # fmt: skip
    changes = (
        select(deltas.c.customer, deltas.c.t, func.sum(deltas.c.d).label("d"))
        .group_by(deltas.c.customer, deltas.c.t)
        .cte("changes")
    )
    by_customer = {"partition_by": changes.c.customer}
    timeline = select(
        changes.c.customer,
        changes.c.t,
        changes.c.d,
        func.sum(changes.c.d)
        .over(**by_customer, order_by=changes.c.t, rows=(None, 0))
        .label("after"),
        # The first change of a customer is their first payment (periods have MRR > 0);
        # a row number shares the running sum's sort, where min(t) would sort again.
        func.row_number().over(**by_customer, order_by=changes.c.t).label("nth"),
    ).cte("timeline")
    after, d = timeline.c.after, timeline.c.d
    before = after - d
    kind = case(
        ((before <= EPSILON) & (timeline.c.nth == 1), "new"),
        (before <= EPSILON, "reactivation"),
        (after <= EPSILON, "churn"),
        (d > 0, "expansion"),
        else_="contraction",
    )
    amount = case(
        (before <= EPSILON, after), (after <= EPSILON, before), (d > 0, d), else_=-d
    )  # fmt: skip
    moves = (
        select(b.c.idx, kind.label("kind"), amount.label("amount"))
        .select_from(b)
        .join(timeline, (timeline.c.t >= b.c.s) & (timeline.c.t < b.c.e))
        .where(func.abs(d) > EPSILON, ~((before <= EPSILON) & (after <= EPSILON)))
        .subquery()
    )
    totals = select(moves.c.idx, moves.c.kind, func.sum(moves.c.amount), func.count()).group_by(
        moves.c.idx, moves.c.kind
    )
    out: dict[int, tuple[dict[str, float], dict[str, int]]] = {}
    for idx, name, total, count in conn.execute(totals):
        amounts, counts = out.setdefault(idx, ({}, {}))
        amounts[name], counts[name] = float(total), int(count)
    return out


def mrr_movements(conn: Connection, req: Request) -> Computation:
    """Net new MRR = new + expansion + reactivation − contraction − churn, with each part."""
    currency = req.ctx.currency

    def cell(book: Book) -> Cell:
        n = sum(book.count(k) for k in MOVEMENTS)
        signs = {"new": 1, "expansion": 1, "reactivation": 1, "contraction": -1, "churn": -1}
        net = sum(sign * book.amount(k) for k, sign in signs.items())
        extra: dict[str, float | None] = {k: money(book.amount(k), currency) for k in MOVEMENTS}
        extra.update({f"{k}_count": float(book.count(k)) for k in MOVEMENTS})
        return Cell(money(net, currency) if n else None, n, extra)

    return headline_and_series(req, [cell(b) for b in books(conn, req, cohort=False)])


def customer_churn_rate(conn: Connection, req: Request) -> Computation:
    """Customers lost in the window ÷ paying customers at its start × 100."""

    def cell(book: Book) -> Cell:
        lost = book.count("churn")
        extra = {"churned": float(lost), "customers_at_start": float(book.start_customers)}
        if not book.start_customers:
            return Cell(None, 0, extra)
        return Cell(100 * lost / book.start_customers, book.start_customers, extra)

    return headline_and_series(req, [cell(b) for b in books(conn, req)])


def _revenue_churn(conn: Connection, req: Request, *, net: bool) -> Computation:
    currency = req.ctx.currency

    def cell(book: Book) -> Cell:
        lost = book.amount("churn") + book.amount("contraction")
        if net:
            lost -= book.amount("expansion") + book.amount("reactivation")
        extra = {"mrr_at_start": money(book.start_mrr, currency), "lost": money(lost, currency)}
        if book.start_mrr <= EPSILON:
            return Cell(None, 0, extra)
        return Cell(_percent(lost, book.start_mrr), book.start_customers, extra)

    return headline_and_series(req, [cell(b) for b in books(conn, req)])


def gross_revenue_churn(conn: Connection, req: Request) -> Computation:
    """(Churned + contraction MRR) ÷ MRR at the window's start × 100."""
    return _revenue_churn(conn, req, net=False)


def net_revenue_churn(conn: Connection, req: Request) -> Computation:
    """(Churned + contraction − expansion − reactivation MRR) ÷ MRR at start × 100."""
    return _revenue_churn(conn, req, net=True)


def _retention(conn: Connection, req: Request, numerator: str) -> Computation:
    def cell(book: Book) -> Cell:
        if book.start_mrr <= EPSILON:
            return Cell(None, 0)
        return Cell(_percent(getattr(book, numerator), book.start_mrr), book.start_customers)

    return headline_and_series(req, [cell(b) for b in books(conn, req, movements=False)])


def net_revenue_retention(conn: Connection, req: Request) -> Computation:
    """MRR at the end from customers paying at the start ÷ their MRR at the start × 100."""
    return _retention(conn, req, "retained_mrr")


def gross_revenue_retention(conn: Connection, req: Request) -> Computation:
    """Like NRR, with each customer capped at their starting MRR: at most 100."""
    return _retention(conn, req, "kept")


def customer_retention_rate(conn: Connection, req: Request) -> Computation:
    """(E − N) ÷ S × 100: customers at the end who were already paying at the start ÷ S."""

    def cell(book: Book) -> Cell:
        extra = {
            "customers_at_start": float(book.start_customers),
            "customers_at_end": float(book.end_customers),
            "new": float(book.end_customers - book.retained),
        }
        if not book.start_customers:
            return Cell(None, 0, extra)
        return Cell(100 * book.retained / book.start_customers, book.start_customers, extra)

    return headline_and_series(req, [cell(b) for b in books(conn, req, movements=False)])


AVERAGE_MONTH_DAYS = 365.25 / 12


def customer_lifetime_value(conn: Connection, req: Request) -> Computation:
    """ARPA ÷ monthly customer churn rate (× gross margin when configured).

    ARPA is MRR ÷ paying customers at the window's end; the churn rate of the window is
    scaled to an average month (30.44 days). Undefined without churn.
    """
    currency, margin = req.ctx.currency, req.ctx.gross_margin

    def cell(book: Book) -> Cell:
        lost = book.count("churn")
        if not book.end_customers:
            return Cell(None, 0)
        arpa = book.end_mrr / book.end_customers
        extra = {"arpa": money(arpa, currency), "churned": float(lost)}
        if not lost or not book.start_customers or not book.length_days:
            return Cell(None, book.end_customers, {**extra, "monthly_churn_rate": None})
        monthly = lost / book.start_customers * AVERAGE_MONTH_DAYS / book.length_days
        extra["monthly_churn_rate"] = 100 * monthly
        return Cell(money(arpa / monthly * (margin or 1.0), currency), book.end_customers, extra)

    return headline_and_series(req, [cell(b) for b in books(conn, req)])


def cost_of_retention(conn: Connection, req: Request) -> Computation:
    """Retention spend booked in the window ÷ customers retained through it."""
    tz = req.ctx.timezone
    spend = [(local_midnight(entry.on, tz), entry.amount) for entry in req.ctx.retention_spend]

    def cell(book: Book, start: datetime, end: datetime) -> Cell:
        booked = [amount for on, amount in spend if start <= on < end]
        extra = {"spend": round(sum(booked), 6) if booked else None,
                 "retained": float(book.retained)}  # fmt: skip
        if not booked or not book.retained:
            return Cell(None, book.retained, extra)
        return Cell(round(sum(booked) / book.retained, 6), book.retained, extra)

    all_books = books(conn, req, movements=False)
    cells = [cell(b, s, e) for b, (s, e) in zip(all_books, window_and_buckets(req), strict=True)]
    return headline_and_series(req, cells)


def _percent(part: float, whole: float) -> float:
    # Both are sums of floats: round to shed crumbs that could differ between databases.
    return round(100 * round(part, 4) / round(whole, 4), 10)

"""Revenue KPIs over ``subscription_periods``: MRR and everything derived from it.

MRR "at" an instant t is the closing balance just before t: the paid periods (active,
past_due) with ``valid_from < t <= valid_to`` (an open period has no ``valid_to``). So MRR at
a window's end is MRR at its start plus the movements *in* the window, and the closing MRR
of one month is the opening MRR of the next: a subscription that starts at local midnight on
1 November is November's new business, not October's.

Money is summed in minor units (as stored) and reported in major units of the reporting
currency, rounded to 6 decimals to shed float noise, identically on both databases.

Only periods in the reporting currency (``MetricContext.currency``) count: a period's
``mrr`` is in its subscription's own currency, and without exchange rates euros and dollars
do not add up. What was left out is counted by :func:`excluded_currencies` (the customers
per other currency), so that the answer can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    case,
    func,
    literal,
    select,
    union_all,
)

from metrics.derived import EPSILON, mrr_timeline
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


def _in_currency(req: Request) -> ColumnElement[bool]:
    """The periods in the reporting currency: the only ones revenue KPIs sum."""
    return _P.currency == req.ctx.currency


def excluded_currencies(conn: Connection, req: Request, *, at_end: bool) -> dict[str, int]:
    """Per other currency than the reporting one, the customers whose paid periods were left
    out: those alive at the window's end (``at_end``: a balance), or at any time in it.

    The query's filters apply. Two range scans of ``ix_subscription_periods_currency``
    (currencies below and above the reporting one), both empty in the usual warehouse.
    """
    start = req.window.end if at_end else req.window.start
    alive = (_P.valid_from < req.window.end) & (_P.valid_to.is_(None) | (_P.valid_to >= start))
    out: dict[str, int] = {}
    for other in (_P.currency < req.ctx.currency, _P.currency > req.ctx.currency):
        stmt = scoped(
            select(_P.currency, func.count(func.distinct(_P.customer_id))).select_from(
                _P.__table__
            ),
            req,
            PERIODS,
            [other, _PAID, _P.mrr > EPSILON, alive],
        ).group_by(_P.currency)
        out.update((str(currency), int(n)) for currency, n in conn.execute(stmt))
    return dict(sorted(out.items()))


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
            where=[_in_currency(req)],
            columns=[func.count(), count_if(_PAID), func.sum(case((_PAID, _P.mrr), else_=0))],
        )
    )
    ended = _per_bucket(
        grouped(
            conn,
            req,
            PERIODS,
            on=within(_P.valid_to),
            where=[_PAID, _in_currency(req)],
            columns=[literal(0), func.count(), func.sum(_P.mrr)],
        )
    )
    closing = []
    for i in range(len(req.buckets)):
        level = level.plus(started.get(i)).minus(ended.get(i))
        closing.append(level.cell(currency))
    return Computation(total=closing[-1], series=bucket_series(req.buckets, closing))


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
    """MRR at ``instant`` in total and per value of the query's dimension.

    The paid periods alive at the instant are those ending at or after it and the open
    ones: two ranges of ``ix_subscription_periods_to``, which holds ``valid_from`` too (it is
    checked inside the sums, so that no index on ``valid_from``, a range over all history,
    looks better to the planner). Whether billing data exists at all is one row's lookup.
    """
    started = _P.valid_from < instant
    columns = [count_if(started), func.sum(case((started, _P.mrr), else_=0))]
    rows = []
    for alive in (_P.valid_to >= instant, _P.valid_to.is_(None)):

        def on(_b: Any, alive: ColumnElement[bool] = alive) -> ColumnElement[bool]:
            return alive

        rows += grouped(conn, req, PERIODS, on=on, where=[_PAID, _in_currency(req)],
                        columns=columns, intervals=[(instant, instant)])  # fmt: skip
    seen = scoped(
        select(literal(1)).select_from(_P.__table__).where(started, _in_currency(req)),
        req,
        PERIODS,
    )
    total = Balance(seen=int(conn.execute(seen.limit(1)).first() is not None))
    parts: dict[str | None, Balance] = {}
    for _, key, (alive, minor) in rows:
        part = Balance(minor=float(minor or 0), alive=int(alive), seen=int(alive))
        parts[key] = parts.get(key, Balance()).plus(part)
    cells: dict[str, Cell] = {}
    for key, part in parts.items():
        total = total.plus(replace(part, seen=0))
        if key is not None and part.alive:  # a plan whose customers all left is no bar
            cells[key] = part.cell(req.ctx.currency)
    return total, cells


def _balance(cols: tuple[Any, ...]) -> Balance:
    return Balance(minor=float(cols[2] or 0), alive=int(cols[1]), seen=int(cols[0]))


def _per_bucket(rows: list[tuple[int, str | None, tuple[Any, ...]]]) -> dict[int, Balance]:
    return {idx: _balance(cols) for idx, _, cols in rows}


# --- Movements and cohorts: what MRR's changes and the retention KPIs are made of ---------

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
    """A Book per interval (the window, then its buckets), from the customers' MRR
    timelines (``mrr_changes``, see :mod:`metrics.derived`)."""
    intervals = window_and_buckets(req)
    timeline = mrr_timeline(conn)
    out: list[dict[str, Any]] = [
        {"length_days": (e - s).total_seconds() / 86400} for s, e in intervals
    ]
    if cohort:
        for idx, values in enumerate(_cohorts(conn, req, timeline, intervals)):
            out[idx].update(values)
    if movements:
        for idx, (amounts, counts) in _movements(conn, req, timeline, intervals).items():
            out[idx].update(amounts=tuple(amounts.items()), counts=tuple(counts.items()))
    return [Book(**values) for values in out]


def _within(timeline: FromClause) -> Any:
    return within(timeline.c.changed_at)


def _timeline_currency(req: Request, timeline: FromClause) -> ColumnElement[bool]:
    """The timeline rows in the reporting currency (one timeline per customer and currency)."""
    return timeline.c.currency == req.ctx.currency  # type: ignore[no-any-return]


def alive_at(timeline: FromClause, instant: Any) -> list[ColumnElement[bool]]:
    """The timeline rows whose stretch holds ``instant`` and have MRR: one per paying
    customer. Two conditions, each a range of one index (``ix_mrr_changes_next``), for the
    two halves of a UNION ALL: rows whose next change comes at or after the instant, and
    the customers' latest rows. (One condition with an OR scans far more of the index.)"""
    c = timeline.c
    paying = (c.changed_at < instant) & (c.mrr_after > EPSILON)
    return [(c.next_at >= instant) & paying, c.next_at.is_(None) & paying]


def paying_at(
    req: Request, timeline: FromClause, b: Any, edge: str, *, any_currency: bool = False
) -> Any:
    """Per interval, the customers paying at its start (``s``) or end (``e``) and their MRR
    in the reporting currency; ``any_currency``: in any currency (MRR not comparable then,
    and a customer paying in two currencies is two rows)."""
    c = timeline.c
    currency = [] if any_currency else [_timeline_currency(req, timeline)]
    parts = [
        scoped(
            select(b.c.idx, c.customer_id.label("customer"), c.mrr_after.label("mrr"))
            .select_from(b)
            .join(timeline, condition),
            req,
            _source(timeline),
            currency,
        )
        for condition in alive_at(timeline, b.c[edge])
    ]
    return union_all(*parts).cte(f"paying_at_{edge}")


def _source(timeline: FromClause) -> Source:
    return Source(timeline, timeline.c.customer_id)


def _cohorts(
    conn: Connection,
    req: Request,
    timeline: FromClause,
    intervals: list[tuple[datetime, datetime]],
) -> list[dict[str, Any]]:
    """Who paid at each interval's start and end, and what became of them.

    Paying customers at the window's start are counted once; a customer without a change
    in an interval pays the same at its end as at its start, so only those with a change
    are looked at: by their first change in the interval (its ``mrr_before`` is their MRR
    at the start) and their last (its ``mrr_after``, their MRR at the end). One change is
    both; only customers with several are grouped. Each bucket starts where the one before
    ended.
    """
    c, source = timeline.c, _source(timeline)
    currency = _timeline_currency(req, timeline)
    stab = union_all(
        *(
            scoped(select(func.count(), func.sum(c.mrr_after)).select_from(timeline), req,
                   source, [condition, currency])
            for condition in alive_at(timeline, intervals[0][0])
        )
    )  # fmt: skip
    halves = conn.execute(stab).all()
    opening = (sum(int(n) for n, _ in halves), sum(float(m or 0) for _, m in halves))

    b = intervals_table(intervals)
    first = c.previous_at.is_(None) | (c.previous_at < b.c.s)
    last = c.next_at.is_(None) | (c.next_at >= b.c.e)

    def in_interval(*columns: Any, where: ColumnElement[bool]) -> Select[Any]:
        stmt = select(b.c.idx, *columns).select_from(b).join(timeline, _within(timeline)(b))
        return scoped(stmt, req, source, [where, currency])

    single = in_interval(c.mrr_before.label("s"), c.mrr_after.label("e"), where=first & last)
    several = in_interval(
        func.sum(case((first, c.mrr_before), else_=0)),
        func.sum(case((last, c.mrr_after), else_=0)),
        where=(first & ~last) | (last & ~first),  # the middle changes do not matter
    ).group_by(b.c.idx, c.customer_id)
    changed = union_all(single, several).subquery("changed")
    was, now = changed.c.s > EPSILON, changed.c.e > EPSILON
    kept = case((changed.c.e < changed.c.s, changed.c.e), else_=changed.c.s)
    totals = select(
        changed.c.idx,
        count_if(was & ~now),  # lost
        count_if(~was & now),  # won (new or reactivated)
        func.sum(case((was, changed.c.s), else_=0)),  # their MRR at the start
        func.sum(case((now, changed.c.e), else_=0)),  # at the end
        func.sum(case((was & now, changed.c.e), else_=0)),  # retained customers' at the end
        func.sum(case((was & now, kept), else_=0)),  # … capped at the start's
    ).group_by(changed.c.idx)
    moved = {row[0]: row[1:] for row in conn.execute(totals)}

    out = []
    closing = opening
    for idx in range(len(intervals)):
        # The window and the first bucket start together; every other bucket where the
        # previous one ended.
        customers_at_start, mrr_at_start = opening if idx <= 1 else closing
        lost, won, was_mrr, now_mrr, retained_mrr, kept_mrr = moved.get(idx, (0, 0, 0, 0, 0, 0))
        unchanged = mrr_at_start - float(was_mrr or 0)
        closing = (customers_at_start - int(lost) + int(won), unchanged + float(now_mrr or 0))
        out.append(
            {
                "start_customers": customers_at_start,
                "start_mrr": mrr_at_start,
                "retained": customers_at_start - int(lost),
                "retained_mrr": unchanged + float(retained_mrr or 0),
                "kept": unchanged + float(kept_mrr or 0),
                "end_customers": closing[0],
                "end_mrr": closing[1],
            }
        )
    return out


def _movements(
    conn: Connection,
    req: Request,
    timeline: FromClause,
    intervals: list[tuple[datetime, datetime]],
) -> dict[int, tuple[dict[str, float], dict[str, int]]]:
    """MRR movements per interval: the timeline's classified changes in it, summed.

    Movements add up, so with buckets only the buckets are scanned and the window (interval
    0) is their sum: the buckets partition it exactly.
    """
    c = timeline.c
    scanned = intervals[1:] if len(intervals) > 1 else intervals
    b = intervals_table(scanned)
    totals = scoped(
        select(b.c.idx, c.kind, func.sum(c.amount), func.count())
        .select_from(b)
        .join(timeline, _within(timeline)(b)),
        req,
        _source(timeline),
        [c.kind.is_not(None), _timeline_currency(req, timeline)],
    ).group_by(b.c.idx, c.kind)
    out: dict[int, tuple[dict[str, float], dict[str, int]]] = {}
    offset = 1 if len(intervals) > 1 else 0
    for idx, name, total, count in conn.execute(totals):
        amounts, counts = out.setdefault(idx + offset, ({}, {}))
        amounts[name], counts[name] = float(total), int(count)
        if offset:
            window_amounts, window_counts = out.setdefault(0, ({}, {}))
            window_amounts[name] = window_amounts.get(name, 0.0) + float(total)
            window_counts[name] = window_counts.get(name, 0) + int(count)
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

"""Product KPIs over ``usage_events``: active users, DAU/WAU/MAU, stickiness, adoption and
product usage rate.

A user is active in an interval when they have a qualifying event in it: any event, or one
of ``MetricContext.active_events`` when the team configured them. An event's account is
the customer (``account_id`` = ``customers.id``), which is how plan and segment filter.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from metrics.derived import mrr_timeline
from metrics.kpis.base import (
    Cell,
    Computation,
    Request,
    Source,
    dimension_series,
    grouped,
    headline_and_series,
    intervals_table,
    scoped,
    window_and_buckets,
    within,
)
from metrics.kpis.revenue import paying_at
from metrics.result import Point
from metrics.schema import UsageEvent
from metrics.windows import MAX_WINDOW_DAYS, Window, buckets, local_midnight, shift

EVENTS = Source(
    UsageEvent.__table__,  # type: ignore[arg-type]
    UsageEvent.account_id,
    {"feature": UsageEvent.event},
)
_E = UsageEvent


def qualifying(req: Request) -> list[Any]:
    return [_E.event.in_(req.ctx.active_events)] if req.ctx.active_events else []


def _distinct_users(
    conn: Connection, req: Request, intervals: list[tuple[datetime, datetime]]
) -> list[int]:
    """Distinct active users in each interval."""
    rows = grouped(
        conn,
        req,
        EVENTS,
        on=within(_E.occurred_at),
        where=qualifying(req),
        columns=[func.count(func.distinct(_E.user_id))],
        intervals=intervals,
    )
    counts = [0] * len(intervals)
    for idx, _, (count,) in rows:
        counts[idx] = int(count)
    return counts


def active_users(conn: Connection, req: Request) -> Computation:
    """Distinct users with a qualifying event in the window (and in each bucket)."""
    counts = _distinct_users(conn, req, window_and_buckets(req))
    return headline_and_series(req, [Cell(float(c) if c else None, c) for c in counts])


def local_days(window: Window) -> list[tuple[datetime, datetime]]:
    """The window's *complete* local days, midnight to midnight (23 or 25 hours on a DST
    change). A rolling window's partial first day, and the day in progress at its end, are
    left out: a day that is only partly in the window has only part of its users, and
    counting it as a day would make DAU (and health's usage) fall and rise with the time
    of day the question is asked. ``today`` holds no complete day."""
    tz = window.timezone
    days = buckets(window, "day", limit=MAX_WINDOW_DAYS + 1)
    return [
        (b.start, b.end)
        for b in days
        if b.start == local_midnight(date.fromisoformat(b.key), tz)
        and b.end == local_midnight(date.fromisoformat(b.key) + timedelta(days=1), tz)
    ]


def _mean_daily(daily: list[tuple[datetime, int]], start: datetime, end: datetime) -> Cell:
    """Mean of the daily active users of the complete local days in ``[start, end)``."""
    values = [count for day, count in daily if start <= day < end]
    if not any(values):
        return Cell(None, 0)
    return Cell(sum(values) / len(values), len(values), {"days": float(len(values))})


def daily_active_users(conn: Connection, req: Request) -> Computation:
    """DAU: the mean over the window's complete local days of each day's distinct active
    users (see :func:`local_days`); a window without a complete day has no DAU."""
    days = local_days(req.window)
    daily = list(zip((s for s, _ in days), _distinct_users(conn, req, days), strict=True))
    cells = [_mean_daily(daily, s, e) for s, e in window_and_buckets(req)]
    return headline_and_series(req, cells)


def _trailing(conn: Connection, req: Request, days: int) -> list[Cell]:
    """Distinct active users in the ``days`` days ending at the window's (bucket's) end."""
    tz = req.ctx.timezone
    spans = [(shift(e, tz, -days, "d"), e) for _, e in window_and_buckets(req)]
    return [Cell(float(c) if c else None, c) for c in _distinct_users(conn, req, spans)]


def weekly_active_users(conn: Connection, req: Request) -> Computation:
    """WAU: distinct active users in the 7 days ending at the window's end."""
    return headline_and_series(req, _trailing(conn, req, 7))


def monthly_active_users(conn: Connection, req: Request) -> Computation:
    """MAU: distinct active users in the 30 days ending at the window's end."""
    return headline_and_series(req, _trailing(conn, req, 30))


def stickiness(conn: Connection, req: Request) -> Computation:
    """DAU ÷ MAU × 100: the window's mean daily actives ÷ the 30-day actives at its end."""
    dau = daily_active_users(conn, req)
    mau = monthly_active_users(conn, req)

    def ratio(d: Cell | Point, m: Cell | Point) -> Cell:
        if d.value is None or not m.value:
            return Cell(None, 0)
        return Cell(100 * d.value / m.value, m.n, {"dau": d.value, "mau": m.value})

    cells = [ratio(dau.total, mau.total)] + [
        ratio(d, m) for d, m in zip(dau.series, mau.series, strict=True)
    ]
    return headline_and_series(req, cells)


def adoption_rate(conn: Connection, req: Request) -> Computation:
    """Users of a feature (an event name) in the window ÷ active users in it × 100.

    Asked with ``where feature=export`` or ``by feature``; the active users in the
    denominator are counted with every other filter, but not the feature.
    """
    everyone = replace(req, filters=tuple(f for f in req.filters if f[0] != "feature"),
                       dimension=None)  # fmt: skip
    intervals = window_and_buckets(req)
    active = _distinct_users(conn, everyone, intervals)
    users = grouped(
        conn,
        req,
        EVENTS,
        on=within(_E.occurred_at),
        columns=[func.count(func.distinct(_E.user_id))],
        intervals=intervals,
    )

    def cell(count: int, actives: int) -> Cell:
        if not actives:
            return Cell(None, 0)
        return Cell(100 * count / actives, actives, {"users": float(count)})

    if req.dimension:
        # By feature, the headline is the features' mean adoption: "used any feature" would
        # be 100 % by construction (every event is a feature, the active users' too).
        cells = {key: cell(int(c), active[0]) for _, key, (c,) in users if key is not None}
        rates = [c.value for c in cells.values() if c.value is not None]
        mean = sum(rates) / len(rates) if rates else None
        total = Cell(mean, active[0] if rates else 0, {"features": float(len(rates))})
        return Computation(total=total, series=dimension_series(cells))
    counts = [0] * len(intervals)
    for idx, _, (count,) in users:
        counts[idx] = int(count)
    return headline_and_series(req, [cell(c, a) for c, a in zip(counts, active, strict=True)])


def product_usage_rate(conn: Connection, req: Request) -> Computation:
    """Paying accounts with a qualifying event in the window ÷ paying accounts × 100.

    Paying accounts are the customers with MRR at the window's end, in any currency (no
    money is summed here).
    """
    b = intervals_table(window_and_buckets(req))
    paying = paying_at(req, mrr_timeline(conn), b, "e", any_currency=True)
    used = (
        scoped(
            select(b.c.idx, _E.account_id.label("account"))
            .select_from(b)
            .join(_E.__table__, within(_E.occurred_at)(b)),
            replace(req, filters=()),  # plan and segment already narrow the paying side
            EVENTS,
            qualifying(req),
        )
        .distinct()
        .cte("used")
    )
    stmt = (
        select(
            paying.c.idx,
            func.count(func.distinct(paying.c.customer)),
            func.count(func.distinct(used.c.account)),
        )
        .select_from(paying)
        .outerjoin(used, (used.c.idx == paying.c.idx) & (used.c.account == paying.c.customer))
        .group_by(paying.c.idx)
    )
    found = {idx: (int(total), int(active)) for idx, total, active in conn.execute(stmt)}
    cells = []
    for i in range(len(req.buckets) + 1):
        total, active = found.get(i, (0, 0))
        extra = {"active_accounts": float(active), "paying_accounts": float(total)}
        cells.append(Cell(100 * active / total if total else None, total, extra))
    return headline_and_series(req, cells)

"""Small builders for hand-computed KPI tests: rows with only the columns that matter.

Times are written as local Warsaw wall-clock strings ("2026-11-20 10:00") because that is
how the expected numbers are worked out by hand; ``at`` turns them into aware datetimes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from metrics import MetricContext, Result, evaluate, get_kpi, parse_query, refresh_derived
from metrics.schema import (
    Customer,
    SubscriptionPeriod,
    SurveyResponse,
    Ticket,
    UsageEvent,
)

WARSAW = ZoneInfo("Europe/Warsaw")
CTX = MetricContext(timezone=WARSAW, currency="EUR")
# "now" in most tests: Tuesday 24 November 2026, 10:00 in Warsaw (09:00 UTC).
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=WARSAW)

_ids = itertools.count(1)
F = TypeVar("F", bound=Callable[..., Any])

# KPI name → the hand-computed tests that cover it (filled by @covers, read by the
# catalogue meta-test).
COVERED: dict[str, list[str]] = {}


def covers(*kpis: str) -> Callable[[F], F]:
    """Mark a test as a hand-computed check of ``kpis``."""

    def mark(test: F) -> F:
        for kpi in kpis:
            COVERED.setdefault(kpi, []).append(f"{test.__module__}.{test.__name__}")
        return test

    return mark


def at(text: str, tz: ZoneInfo = WARSAW) -> datetime:
    """``"2026-11-20 10:00"`` local wall-clock time in ``tz``, as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def ask(engine: Engine, text: str, *, now: datetime = NOW, ctx: MetricContext = CTX) -> Result:
    """The answer to ``text``. Revenue KPIs are asked twice: as the data stands (customers
    whose periods changed are computed from ``subscription_periods``), then after
    ``refresh_derived`` (read from ``mrr_changes``), which is rolled back; both must agree."""
    query = parse_query(text)
    with engine.connect() as conn:
        result = evaluate(conn, query, ctx, now=now)
        if "subscription_periods" in get_kpi(query.kpi).sources:
            conn.rollback()
            with conn.begin() as tx:
                refresh_derived(conn)
                assert evaluate(conn, query, ctx, now=now) == result, "mrr_changes disagrees"
                tx.rollback()
        return result


def _insert(engine: Engine, model: Any, rows: list[dict[str, Any]]) -> None:
    # One statement per row: rows may set different columns, and tests insert a handful.
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(model).values(row))


def tickets(engine: Engine, *rows: dict[str, Any]) -> None:
    """Tickets; ``created`` (and ``solved``) as local strings, the rest as columns."""
    out = []
    for row in rows:
        row = dict(row)
        created = at(row.pop("created"))
        solved = row.pop("solved", None)
        out.append(
            {
                "id": str(next(_ids)),
                "source": "test",
                "status": "open",
                "created_at": created,
                "updated_at": created,
                "solved_at": at(solved) if solved else None,
                "replies": 0,
                "reopens": 0,
                **row,
            }
        )
    _insert(engine, Ticket, out)


def surveys(
    engine: Engine,
    kind: str,
    *answers: tuple[str, float],
    scale_max: int | None = None,
    **columns: Any,
) -> None:
    """Survey answers ``(local time, score)`` of one kind; the usual scale per kind."""
    scale = scale_max or {"nps": 10, "csat": 5, "ces": 7}[kind]
    rows = [
        {
            "id": str(next(_ids)),
            "source": "test",
            "kind": kind,
            "score": score,
            "scale_max": scale,
            "responded_at": at(when),
            "updated_at": at(when),
            **columns,
        }
        for when, score in answers
    ]
    _insert(engine, SurveyResponse, rows)


def customers(engine: Engine, *rows: dict[str, Any]) -> None:
    out = []
    for row in rows:
        created = at(row.pop("created", "2020-01-01 00:00"))
        out.append({"source": "test", "created_at": created, "updated_at": created, **row})
    _insert(engine, Customer, out)


def periods(
    engine: Engine,
    *rows: tuple[str, str, float, str, str | None],
    status: str = "active",
    subscription: str | None = None,
    currency: str = "EUR",
) -> None:
    """Subscription periods ``(customer, subscription, mrr in minor units, from, to)``."""
    out = []
    for customer, sub, mrr, start, end in rows:
        out.append(
            {
                "id": f"{sub}@{next(_ids)}",
                "source": "test",
                "subscription_id": sub,
                "customer_id": customer,
                "status": status,
                "mrr": mrr,
                "currency": currency,
                "valid_from": at(start),
                "valid_to": at(end) if end else None,
                "updated_at": at(start),
            }
        )
    _insert(engine, SubscriptionPeriod, out)


def events(engine: Engine, *rows: tuple[str, str | None, str, str]) -> None:
    """Usage events ``(user, account, event, local time)``."""
    out = [
        {
            "id": str(next(_ids)),
            "source": "test",
            "user_id": user,
            "account_id": account,
            "event": event,
            "occurred_at": at(when),
            "updated_at": at(when),
        }
        for user, account, event, when in rows
    ]
    _insert(engine, UsageEvent, out)


def series(result: Result) -> dict[str, float | None]:
    return {p.key: p.value for p in result.series}

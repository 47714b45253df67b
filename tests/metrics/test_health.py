"""Hand-computed customer health scores, on SQLite and PostgreSQL alike.

``last 30d`` at 24 November 10:00 is [25 Oct 10:00, 24 Nov 10:00): 31 local days, of which
29 are complete (26 October to 23 November): usage is the share of those.
Default weights: usage 0.4, satisfaction 0.2, tickets 0.2, payment 0.2.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from metrics import MetricContext
from tests.metrics.helpers import (
    WARSAW,
    ask,
    covers,
    customers,
    events,
    periods,
    series,
    surveys,
    tickets,
)

# A: active on 3 of 29 days, NPS 9 (90) and CSAT 5 (100), one open ticket, paying.
A = (0.4 * 100 * 3 / 29 + 0.2 * 95 + 0.2 * 75 + 0.2 * 100) / 1.0
# B: no usage, no answers (satisfaction left out), no tickets, past due.
B = (0.4 * 0 + 0.2 * 100 + 0.2 * 0) / 0.8
# C: active every day, five open tickets (0), paying.
C = (0.4 * 100 + 0.2 * 0 + 0.2 * 100) / 0.8


def _accounts(engine: Engine) -> None:
    customers(
        engine,
        {"id": "A", "name": "Acme", "plan": "pro"},
        {"id": "B", "name": "Bolt", "plan": "pro"},
        {"id": "C", "name": "Cog", "plan": "basic"},
    )
    periods(engine, ("A", "a1", 1000, "2026-01-01 00:00", None),
            ("C", "c1", 1000, "2026-01-01 00:00", None))  # fmt: skip
    periods(engine, ("B", "b1", 1000, "2026-01-01 00:00", None), status="past_due")
    periods(engine, ("X", "x1", 1000, "2026-01-01 00:00", "2026-10-01 00:00"))  # gone
    events(engine, *[("a", "A", "login", f"2026-11-{d:02} 12:00") for d in (2, 3, 3, 20)])
    first = date(2026, 10, 25)
    # C on each of the 31 days, the last one before 10:00 ("now"): every complete day.
    times = [f"{first + timedelta(days=i)} {'09:00' if i == 30 else '12:00'}" for i in range(31)]
    events(engine, *[("c", "C", "login", t) for t in times])
    surveys(engine, "nps", ("2026-11-10 12:00", 9), customer_id="A")
    surveys(engine, "csat", ("2026-11-11 12:00", 5), customer_id="A")
    surveys(engine, "nps", ("2026-09-01 12:00", 0), customer_id="B")  # before the window
    tickets(engine, {"created": "2026-11-01 12:00", "customer_id": "A"})
    tickets(engine, *[{"created": "2026-11-01 12:00", "customer_id": "C"} for _ in range(5)])
    tickets(engine, {"created": "2026-11-01 12:00", "customer_id": "B", "status": "solved",
                     "solved": "2026-11-02 12:00"})  # fmt: skip


@covers("health")
def test_health_is_the_mean_weighted_score_of_paying_customers(engine: Engine) -> None:
    _accounts(engine)
    result = ask(engine, "health")
    assert result.value == pytest.approx((A + B + C) / 3)
    assert result.n == 3
    assert (result.extra["red"], result.extra["yellow"], result.extra["green"]) == (1, 2, 0)


@covers("health")
def test_health_bottom_lists_the_weakest_customers_with_their_inputs(engine: Engine) -> None:
    _accounts(engine)
    result = ask(engine, "health bottom 2")
    assert [(p.key, p.label) for p in result.series] == [("B", "Bolt"), ("A", "Acme")]
    assert [p.value for p in result.series] == pytest.approx([B, A])
    acme = result.series[1].extra
    assert acme["usage"] == pytest.approx(100 * 3 / 29)
    assert (acme["satisfaction"], acme["tickets"], acme["payment"]) == (95.0, 75.0, 100.0)
    assert result.series[0].extra["satisfaction"] is None
    assert [p.key for p in ask(engine, "health top 1").series] == ["C"]
    assert result.to_json()["series"][0]["label"] == "Bolt"


@covers("health")
def test_health_by_plan_and_where_plan(engine: Engine) -> None:
    _accounts(engine)
    assert series(ask(engine, "health by plan")) == pytest.approx({"pro": (A + B) / 2, "basic": C})
    assert ask(engine, "health where plan=basic").value == pytest.approx(C)


@covers("health")
def test_health_weights_come_from_the_context(engine: Engine) -> None:
    _accounts(engine)
    ctx = MetricContext(timezone=WARSAW, health_weights={"payment": 1.0})
    assert series(ask(engine, "health bottom 3", ctx=ctx)) == {"B": 0.0, "A": 100.0, "C": 100.0}


@covers("health")
def test_health_without_paying_customers_is_none(engine: Engine) -> None:
    result = ask(engine, "health bottom 10")
    assert (result.value, result.n, result.series) == (None, 0, ())

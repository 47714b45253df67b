"""Hand-computed revenue KPIs on small data, on SQLite and PostgreSQL alike.

MRR is stored in cents and reported in euros (the test context's currency).
"""

from __future__ import annotations

from sqlalchemy import Engine

from tests.metrics.helpers import ask, at, covers, customers, periods, series


def _book(engine: Engine) -> None:
    periods(
        engine,
        ("A", "a1", 10000, "2026-01-01 00:00", None),
        ("B", "b1", 5000, "2026-06-01 00:00", "2026-11-10 00:00"),
        ("D", "d1", 2000, "2026-10-01 00:00", None),
    )
    periods(engine, ("C", "c1", 9900, "2026-11-01 00:00", None), status="trialing")
    periods(engine, ("D", "d1", 2000, "2026-09-01 00:00", "2026-10-01 00:00"), status="past_due")


@covers("mrr")
def test_mrr_sums_paid_periods_alive_at_the_windows_end_in_major_units(engine: Engine) -> None:
    _book(engine)
    result = ask(engine, "mrr")
    assert (result.value, result.n, result.unit) == (120.0, 2, "EUR")
    assert result.end == at("2026-11-24 10:00")


@covers("mrr")
def test_mrr_vs_previous_is_the_mrr_at_the_end_of_the_previous_30_days(engine: Engine) -> None:
    _book(engine)
    result = ask(engine, "mrr vs previous")
    assert (result.value, result.previous) == (120.0, 170.0)
    assert result.change == -50.0


@covers("mrr")
def test_mrr_by_month_is_the_closing_balance_of_each_month(engine: Engine) -> None:
    _book(engine)
    result = ask(engine, "mrr since 2026-08-01 by month")
    # past_due counts; on 1 October d1 changes status, so both its periods border there.
    assert series(result) == {
        "2026-08-01": 150.0,
        "2026-09-01": 170.0,
        "2026-10-01": 170.0,
        "2026-11-01": 120.0,
    }
    assert result.value == 120.0


@covers("mrr")
def test_mrr_includes_a_subscription_ending_exactly_at_the_windows_end(engine: Engine) -> None:
    _book(engine)
    # b1 ends at midnight starting 10 November: it is still in 9 November's closing MRR.
    assert ask(engine, "mrr yesterday", now=at("2026-11-10 08:00")).value == 170.0
    assert ask(engine, "mrr today", now=at("2026-11-10 08:00")).value == 120.0


@covers("mrr")
def test_mrr_without_billing_data_is_none(engine: Engine) -> None:
    assert ask(engine, "mrr").value is None
    assert ask(engine, "mrr last 3d by day").series[0].value is None


@covers("mrr")
def test_mrr_by_plan_and_where_plan_use_the_customers_plan(engine: Engine) -> None:
    _book(engine)
    customers(engine, {"id": "A", "plan": "enterprise"}, {"id": "D", "plan": "starter"})
    assert ask(engine, "mrr where plan=enterprise").value == 100.0
    result = ask(engine, "mrr by plan")
    assert [(p.key, p.value) for p in result.series] == [("enterprise", 100.0), ("starter", 20.0)]

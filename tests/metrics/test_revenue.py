"""Hand-computed revenue KPIs on small data, on SQLite and PostgreSQL alike.

MRR is stored in cents and reported in euros (the test context's currency).
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from metrics import MetricContext, RetentionSpend
from tests.metrics.helpers import WARSAW, ask, at, covers, customers, periods, series


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


def _november(engine: Engine) -> None:
    """A month of every kind of movement (MRR in cents; now is 24 November 10:00).

    At 1 November 00:00: A 100, B 50 + 30, E 60, G 10 = 250 €, four customers.
    Now: A 150, C 20, D 40, E 60, G 25 = 295 €, five customers.
    """
    periods(
        engine,
        ("A", "a1", 10000, "2026-01-01 00:00", "2026-11-05 12:00"),
        ("A", "a1", 15000, "2026-11-05 12:00", None),  # expansion +50
        ("B", "b1", 5000, "2026-06-01 00:00", "2026-11-10 00:00"),  # contraction −50
        ("B", "b2", 3000, "2026-06-01 00:00", "2026-11-20 00:00"),  # B's last: churn −30
        ("C", "c1", 2000, "2026-11-03 09:00", None),  # new +20
        ("D", "d1", 4000, "2026-03-01 00:00", "2026-05-01 00:00"),  # churned in May …
        ("D", "d2", 4000, "2026-11-15 00:00", None),  # … reactivation +40
        ("E", "e1", 6000, "2026-01-01 00:00", "2026-11-12 00:00"),  # a switch at one instant
        ("E", "e2", 6000, "2026-11-12 00:00", None),  # with the same MRR: no movement
        ("G", "g1", 1000, "2026-01-01 00:00", "2026-11-18 00:00"),
        ("G", "g2", 2500, "2026-11-18 00:00", None),  # one switch: expansion +15
    )
    periods(engine, ("F", "f1", 9900, "2026-11-01 00:00", None), status="trialing")


@covers("mrr_movements")
def test_mrr_movements_split_the_months_change_in_mrr(engine: Engine) -> None:
    _november(engine)
    result = ask(engine, "mrr movements this month")
    assert result.value == 45.0  # 295 − 250
    assert result.unit == "EUR"
    assert {
        k: result.extra[k] for k in ("new", "expansion", "contraction", "churn", "reactivation")
    } == {
        "new": 20.0,
        "expansion": 65.0,
        "contraction": 50.0,
        "churn": 30.0,
        "reactivation": 40.0,
    }
    assert result.n == 6
    assert (result.extra["expansion_count"], result.extra["churn_count"]) == (2, 1)


@covers("mrr_movements")
def test_mrr_movements_by_week_add_up_to_the_month(engine: Engine) -> None:
    _november(engine)
    result = ask(engine, "mrr movements this month by week")
    assert series(result) == {
        "2026-10-26": None,  # only 1 November, nothing moved
        "2026-11-02": 70.0,  # C new, A expansion
        "2026-11-09": -10.0,  # B contraction, D reactivation
        "2026-11-16": -15.0,  # G expansion, B churn
        "2026-11-23": None,
    }
    assert result.value == 45.0


@covers("mrr_movements")
def test_mrr_movements_of_an_empty_window_are_none(engine: Engine) -> None:
    _november(engine)
    assert ask(engine, "mrr movements yesterday").value is None


@covers("churn")
def test_churn_counts_a_customer_only_when_their_last_subscription_ends(engine: Engine) -> None:
    _november(engine)
    result = ask(engine, "churn this month")
    assert result.value == 25.0  # B of A, B, E, G
    assert (result.extra["churned"], result.extra["customers_at_start"]) == (1, 4)
    # B's first subscription ended on the 10th: a contraction, no churn yet.
    assert ask(engine, "churn between 2026-11-01 and 2026-11-15").value == 0.0
    assert ask(engine, "churn this month where plan=pro").value is None


@covers("churn")
def test_churn_by_month_divides_by_each_months_starting_customers(engine: Engine) -> None:
    _november(engine)
    customers(engine, {"id": "B", "plan": "pro"}, {"id": "D", "plan": "pro"})
    result = ask(engine, "churn since 2026-04-01 by month")
    got = series(result)
    assert got["2026-04-01"] == 0.0
    # D's subscription ended at 1 May 00:00: D was paying when May began and churned in it.
    assert got["2026-05-01"] == 25.0  # D of A, D, E, G (B starts in June)
    assert got["2026-11-01"] == 25.0
    assert ask(engine, "churn this month where plan=pro").value == 100.0


@covers("gross_revenue_churn", "net_revenue_churn")
def test_revenue_churn_gross_and_net(engine: Engine) -> None:
    _november(engine)
    assert ask(engine, "revenue churn this month").value == 32.0  # (30 + 50) / 250
    assert ask(engine, "net revenue churn this month").value == -10.0  # (80 − 65 − 40) / 250
    assert ask(engine, "net revenue churn this month").extra["mrr_at_start"] == 250.0


@covers("gross_revenue_churn", "net_revenue_churn", "nrr", "grr", "crr", "clv")
def test_retention_kpis_of_a_window_without_customers_are_none(engine: Engine) -> None:
    for kpi in ("gross revenue churn", "net revenue churn", "nrr", "grr", "crr", "clv"):
        assert ask(engine, f"{kpi} this month").value is None, kpi


@covers("nrr", "grr")
def test_nrr_counts_expansion_and_grr_caps_each_customer_at_its_start(engine: Engine) -> None:
    _november(engine)
    # Start: A 100, B 80, E 60, G 10 = 250. End: A 150, B 0, E 60, G 25 = 235.
    assert ask(engine, "nrr this month").value == 94.0
    # Capped: A 100, B 0, E 60, G 10 = 170.
    assert ask(engine, "grr this month").value == 68.0


@covers("crr")
def test_crr_is_customers_at_the_end_less_new_over_customers_at_the_start(engine: Engine) -> None:
    _november(engine)
    result = ask(engine, "retention this month")
    assert result.value == 75.0  # (5 − 2) / 4: C and D are new (D reactivated)
    assert (result.extra["customers_at_end"], result.extra["new"]) == (5, 2)


@covers("clv")
def test_clv_is_arpa_over_the_monthly_churn_rate_times_the_margin(engine: Engine) -> None:
    _november(engine)
    days = (at("2026-11-24 10:00") - at("2026-11-01 00:00")).total_seconds() / 86400
    monthly_churn = 1 / 4 * (365.25 / 12) / days
    arpa = 295 / 5
    assert ask(engine, "ltv this month").value == pytest.approx(arpa / monthly_churn)
    ctx = MetricContext(timezone=WARSAW, currency="EUR", gross_margin=0.8)
    assert ask(engine, "clv this month", ctx=ctx).value == pytest.approx(0.8 * arpa / monthly_churn)
    # Without churn the lifetime is unbounded: no value.
    assert ask(engine, "clv between 2026-11-01 and 2026-11-15").value is None


@covers("cost_of_retention")
def test_cost_of_retention_divides_the_spend_booked_in_the_window_by_retained_customers(
    engine: Engine,
) -> None:
    _november(engine)
    spend = (RetentionSpend(date(2026, 11, 1), 1200.0), RetentionSpend(date(2026, 10, 15), 999.0))
    ctx = MetricContext(timezone=WARSAW, currency="EUR", retention_spend=spend)
    result = ask(engine, "cost of retention this month", ctx=ctx)
    assert (result.value, result.extra["retained"]) == (400.0, 3)  # A, E and G
    assert ask(engine, "cost of retention this month").value is None  # no spend configured


# --- Currencies: only periods in the reporting currency count --------------------------


def _two_currencies(engine: Engine) -> None:
    """EUR is the reporting currency (CTX). B pays in USD; E moved from USD to EUR."""
    periods(
        engine,
        ("A", "a1", 10000, "2026-01-01 00:00", None),
        ("E", "e2", 4000, "2026-11-05 00:00", None),
    )
    periods(
        engine,
        ("B", "b1", 50000, "2026-11-03 00:00", None),
        ("E", "e1", 3000, "2026-06-01 00:00", "2026-11-05 00:00"),
        ("F", "f1", 900, "2026-01-01 00:00", "2026-06-01 00:00"),  # long gone
        currency="USD",
    )
    periods(engine, ("G", "g1", 70000, "2026-01-01 00:00", None), currency="JPY")


@covers("mrr")
def test_mrr_counts_only_the_reporting_currency_and_says_what_it_left_out(
    engine: Engine,
) -> None:
    _two_currencies(engine)
    result = ask(engine, "mrr")
    assert (result.value, result.n, result.unit) == (140.0, 2, "EUR")
    # Customers with paid periods in another currency at the window's end.
    assert result.extra["excluded_currencies"] == {"JPY": 1, "USD": 1}
    assert result.to_json()["excluded_currencies"] == {"JPY": 1, "USD": 1}
    assert series(ask(engine, "mrr this month by week")) == {
        "2026-10-26": 100.0,
        "2026-11-02": 140.0,
        "2026-11-09": 140.0,
        "2026-11-16": 140.0,
        "2026-11-23": 140.0,
    }


@covers("mrr")
def test_mrr_with_billing_only_in_other_currencies_is_none_with_a_warning(
    engine: Engine,
) -> None:
    periods(engine, ("B", "b1", 50000, "2026-11-03 00:00", None), currency="USD")
    result = ask(engine, "mrr")
    assert result.value is None
    assert result.extra["excluded_currencies"] == {"USD": 1}


@covers("mrr_movements", "churn", "nrr")
def test_movements_and_retention_count_only_the_reporting_currency(engine: Engine) -> None:
    _two_currencies(engine)
    # In euros: E is new on 5 November (their dollars are not revenue here); B's dollars
    # are no new business; A carries on.
    result = ask(engine, "mrr movements this month")
    assert (result.value, result.extra["new"], result.extra["new_count"]) == (40.0, 40.0, 1.0)
    assert result.extra["excluded_currencies"] == {"JPY": 1, "USD": 2}  # B, E in the window
    assert ask(engine, "churn this month").value == 0.0  # of A; E's dollars ending is no churn
    assert ask(engine, "nrr this month").value == 100.0
    result = ask(engine, "mrr movements last 3m", now=at("2026-05-01 00:00"))
    assert result.extra["excluded_currencies"] == {"JPY": 1, "USD": 1}  # F


def test_a_revenue_kpi_without_other_currencies_has_no_warning(engine: Engine) -> None:
    _book(engine)
    assert "excluded_currencies" not in ask(engine, "mrr").extra
    assert "excluded_currencies" not in ask(engine, "nps").extra

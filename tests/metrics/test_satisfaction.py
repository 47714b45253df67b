"""Hand-computed NPS, CSAT and CES on small data, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.metrics.helpers import ask, at, covers, customers, series, surveys


@covers("nps")
def test_nps_counts_promoters_minus_detractors_over_responses_in_the_window(
    engine: Engine,
) -> None:
    surveys(
        engine,
        "nps",
        ("2026-10-25 09:59", 0),  # a minute before the window: out
        ("2026-10-25 10:00", 7),  # the window's first instant: in (passive)
        ("2026-11-01 12:00", 10),
        ("2026-11-02 12:00", 9),
        ("2026-11-03 12:00", 8),
        ("2026-11-04 12:00", 6),
        ("2026-11-24 10:00", 0),  # "now": the window is open at its end
    )
    result = ask(engine, "nps last 30d")
    # 2 promoters, 2 passives, 1 detractor of 5: 100 × (2 − 1) / 5.
    assert result.value == 20.0
    assert result.n == 5
    assert result.unit == "score"
    assert result.extra["promoters"] == 2
    assert result.extra["passives"] == 2
    assert result.extra["detractors"] == 1
    # 1.96 × 100 × √((0.4 + 0.2 − 0.2²) / 5)
    assert result.extra["margin_of_error"] == pytest.approx(1.96 * 100 * math.sqrt(0.56 / 5))
    assert result.start == at("2026-10-25 10:00")
    assert result.end == at("2026-11-24 10:00")


@covers("nps")
def test_nps_of_an_empty_window_is_none(engine: Engine) -> None:
    surveys(engine, "nps", ("2026-01-05 12:00", 10))
    result = ask(engine, "nps last 30d")
    assert result.value is None
    assert result.n == 0
    assert result.extra["margin_of_error"] is None


@covers("nps")
def test_nps_of_a_single_promoter_is_100_with_no_margin(engine: Engine) -> None:
    surveys(engine, "nps", ("2026-11-20 12:00", 9))
    result = ask(engine, "nps last 7d")
    assert (result.value, result.n, result.extra["margin_of_error"]) == (100.0, 1, 0.0)


@covers("nps")
def test_nps_by_day_follows_local_days_across_the_end_of_summer_time(engine: Engine) -> None:
    # 25 October 2026 is 25 hours long in Warsaw: 22:00 UTC on the 24th to 23:00 UTC.
    surveys(
        engine,
        "nps",
        ("2026-10-24 23:59", 10),
        ("2026-10-25 00:00", 0),
        ("2026-10-25 02:30", 10),  # the repeated hour (first pass, CEST)
        ("2026-10-25 23:59", 10),
        ("2026-10-26 00:00", 6),
    )
    result = ask(engine, "nps between 2026-10-24 and 2026-10-26 by day")
    assert series(result) == {"2026-10-24": 100.0, "2026-10-25": 100 / 3, "2026-10-26": -100.0}
    lengths = [p.end - p.start for p in result.series if p.start and p.end]
    assert lengths == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]
    assert sum(p.n for p in result.series) == result.n == 5
    assert result.value == 20.0


@covers("nps")
def test_nps_yesterday_on_the_start_of_summer_time_is_a_23_hour_day(engine: Engine) -> None:
    surveys(
        engine, "nps", ("2026-03-29 00:00", 10), ("2026-03-29 23:59", 0), ("2026-03-30 00:00", 9)
    )
    result = ask(engine, "nps yesterday", now=at("2026-03-30 08:00"))
    assert result.end - result.start == timedelta(hours=23)
    assert (result.value, result.n) == (0.0, 2)


@covers("nps")
def test_nps_where_plan_reads_the_customers_plan(engine: Engine) -> None:
    customers(engine, {"id": "c1", "plan": "Enterprise"}, {"id": "c2", "plan": "starter"})
    surveys(engine, "nps", ("2026-11-20 12:00", 10), customer_id="c1")
    surveys(engine, "nps", ("2026-11-20 12:00", 0), customer_id="c2")
    surveys(engine, "nps", ("2026-11-20 12:00", 0))  # no customer: in no plan
    assert ask(engine, "nps last 30d where plan=enterprise").value == 100.0
    by_plan = ask(engine, "nps last 30d by plan")
    assert series(by_plan) == {"(none)": -100.0, "Enterprise": 100.0, "starter": -100.0}
    assert by_plan.value == -100 / 3


@covers("nps")
def test_nps_vs_previous_compares_with_the_30_days_before(engine: Engine) -> None:
    surveys(engine, "nps", ("2026-10-20 12:00", 0), ("2026-11-20 12:00", 10))
    result = ask(engine, "nps last 30d vs previous")
    assert (result.value, result.previous, result.change) == (100.0, -100.0, 200.0)
    assert result.previous_end == result.start
    assert result.previous_start == at("2026-09-25 10:00")


@covers("csat")
def test_csat_counts_4_and_5_of_5_and_zendesk_good_as_satisfied(engine: Engine) -> None:
    surveys(engine, "csat", *[("2026-11-20 12:00", s) for s in (5, 4, 3, 1)])
    surveys(engine, "csat", *[("2026-11-21 12:00", s) for s in (1, 0, 1)], scale_max=1)
    result = ask(engine, "csat last 30d")
    assert result.value == 100 * 4 / 7
    assert result.n == 7
    assert (result.extra["satisfied"], result.extra["dissatisfied"]) == (4, 3)
    assert result.unit == "percent"


@covers("csat")
def test_csat_of_an_empty_window_is_none(engine: Engine) -> None:
    surveys(engine, "nps", ("2026-11-20 12:00", 10))  # another kind: not CSAT
    assert ask(engine, "csat last 30d").value is None


@covers("csat")
def test_csat_by_week_buckets_iso_weeks_starting_monday(engine: Engine) -> None:
    surveys(
        engine, "csat", ("2026-11-15 23:59", 5), ("2026-11-16 00:00", 1), ("2026-11-22 12:00", 4)
    )
    result = ask(engine, "csat since 2026-11-09 by week")
    assert series(result) == {"2026-11-09": 100.0, "2026-11-16": 50.0, "2026-11-23": None}
    assert [p.n for p in result.series] == [1, 2, 0]


@covers("ces")
def test_ces_is_the_mean_of_7_point_answers_and_ignores_other_scales(engine: Engine) -> None:
    surveys(
        engine, "ces", ("2026-11-20 12:00", 7), ("2026-11-20 13:00", 5), ("2026-11-20 14:00", 3)
    )
    surveys(engine, "ces", ("2026-11-20 12:00", 1), scale_max=5)
    result = ask(engine, "ces last 30d")
    assert (result.value, result.n) == (5.0, 3)


@covers("ces")
def test_ces_of_an_empty_window_is_none_and_a_single_answer_is_itself(engine: Engine) -> None:
    assert ask(engine, "ces last 30d").value is None
    surveys(engine, "ces", ("2026-11-20 12:00", 6))
    assert ask(engine, "ces last 30d").value == 6.0

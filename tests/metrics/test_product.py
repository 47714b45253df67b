"""Hand-computed product KPIs on small data, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from metrics import MetricContext
from tests.metrics.helpers import WARSAW, ask, at, covers, events, periods, series

LATER = at("2026-12-24 10:00")  # a month after the events: empty windows
BEFORE_BILLING = at("2025-06-01 10:00")  # before any subscription: no paying accounts


def _week(engine: Engine) -> None:
    """``last 7d`` is [17 Nov 10:00, 24 Nov 10:00): eight local days, two of them partial."""
    events(
        engine,
        ("u1", "A", "login", "2026-11-18 09:00"),
        ("u1", "A", "export", "2026-11-18 10:00"),
        ("u1", "A", "login", "2026-11-20 12:00"),
        ("u2", "A", "login", "2026-11-20 13:00"),
        ("u3", "B", "export", "2026-11-23 23:30"),
        ("u4", None, "login", "2026-11-10 09:00"),  # before the week, within 30 days
        ("u5", "C", "login", "2026-11-17 09:59"),  # a minute before the week
    )
    periods(
        engine,
        ("A", "a1", 1000, "2026-01-01 00:00", None),
        ("B", "b1", 1000, "2026-01-01 00:00", None),
        ("D", "d1", 1000, "2026-01-01 00:00", None),
    )


@covers("active_users")
def test_active_users_are_distinct_users_with_an_event_in_the_window(engine: Engine) -> None:
    _week(engine)
    result = ask(engine, "active users last 7d")
    assert (result.value, result.unit) == (3.0, "users")
    assert series(ask(engine, "active users last 7d by week")) == {
        "2026-11-16": 2.0,  # u1, u2 (from Tuesday 10:00)
        "2026-11-23": 1.0,
    }
    assert ask(engine, "active users yesterday", now=LATER).value is None


@covers("active_users")
def test_active_users_count_only_the_configured_events(engine: Engine) -> None:
    _week(engine)
    ctx = MetricContext(timezone=WARSAW, active_events=("login",))
    assert ask(engine, "active users last 7d", ctx=ctx).value == 2.0


@covers("dau")
def test_dau_is_the_mean_of_daily_active_users_over_the_windows_complete_days(
    engine: Engine,
) -> None:
    _week(engine)
    # Complete local days 18th … 23rd (the 17th from 10:00 and the 24th to 10:00 are
    # partial, left out): daily actives 1, 0, 2, 0, 0, 1.
    result = ask(engine, "dau last 7d")
    assert (result.value, result.n, result.extra["days"]) == (pytest.approx(4 / 6), 6, 6.0)
    by_day = series(ask(engine, "dau last 7d by day"))
    assert by_day["2026-11-20"] == 2.0
    assert by_day["2026-11-17"] is None and by_day["2026-11-24"] is None  # partial
    assert ask(engine, "dau last 7d", now=LATER).value is None
    assert ask(engine, "dau today").value is None  # today is not over
    assert ask(engine, "dau yesterday").value == 1.0


def _every_day(engine: Engine) -> None:
    """Two users active every day of October and November: u1 at 00:30, u2 at noon."""
    rows = []
    for day in [date(2026, 10, 1) + timedelta(days=i) for i in range(61)]:
        rows.append(("u1", "A", "login", f"{day} 00:30"))
        rows.append(("u2", "A", "login", f"{day} 12:00"))
    events(engine, *rows)


@covers("dau", "stickiness")
@pytest.mark.parametrize("clock", ["00:00", "00:45", "01:00", "11:59", "12:30", "23:59"])
def test_dau_does_not_change_with_the_time_of_day(engine: Engine, clock: str) -> None:
    _every_day(engine)
    now = at(f"2026-11-20 {clock}")
    assert ask(engine, "dau last 7d", now=now).value == 2.0
    assert ask(engine, "dau last 30d", now=now).value == 2.0
    assert ask(engine, "dau this month", now=now).value == 2.0
    assert ask(engine, "stickiness last 7d", now=now).value == 100.0


@covers("wau", "mau")
def test_wau_and_mau_count_users_in_the_7_and_30_days_to_the_end(engine: Engine) -> None:
    _week(engine)
    assert ask(engine, "wau last 7d").value == 3.0
    assert ask(engine, "mau last 7d").value == 5.0
    assert ask(engine, "mau today", now=LATER).value is None


@covers("stickiness")
def test_stickiness_is_dau_over_mau(engine: Engine) -> None:
    _week(engine)
    result = ask(engine, "stickiness last 7d")
    assert result.value == pytest.approx(100 * (4 / 6) / 5)  # DAU over complete days / MAU
    assert (result.extra["dau"], result.extra["mau"]) == (pytest.approx(4 / 6), 5.0)
    assert ask(engine, "stickiness today", now=LATER).value is None


@covers("adoption")
def test_adoption_is_feature_users_over_active_users(engine: Engine) -> None:
    _week(engine)
    assert ask(engine, "adoption last 7d where feature=export").value == pytest.approx(200 / 3)
    by_feature = ask(engine, "adoption last 7d by feature")
    assert series(by_feature) == pytest.approx({"export": 200 / 3, "login": 200 / 3})
    # The headline: the mean adoption of the features (every event is one, so "any
    # feature" would be 100 % by construction).
    assert by_feature.value == pytest.approx(200 / 3)
    assert (by_feature.n, by_feature.extra["features"]) == (3, 2.0)
    ctx = MetricContext(timezone=WARSAW, active_events=("login",))
    assert ask(engine, "adoption last 7d where feature=export", ctx=ctx).value == 100.0
    assert ask(engine, "adoption last 7d by feature", ctx=ctx).value == 100.0
    assert ask(engine, "adoption today where feature=export", now=LATER).value is None


@covers("usage_rate")
def test_usage_rate_is_active_paying_accounts_over_paying_accounts(engine: Engine) -> None:
    _week(engine)
    result = ask(engine, "usage rate last 7d")
    assert result.value == pytest.approx(200 / 3)  # A and B of A, B, D
    assert (result.extra["active_accounts"], result.extra["paying_accounts"]) == (2, 3)
    assert ask(engine, "usage rate last 7d", now=BEFORE_BILLING).value is None

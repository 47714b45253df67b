"""Hand-computed helpdesk KPIs on small data, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from metrics import KPIS, MetricContext
from tests.metrics.helpers import WARSAW, ask, covers, series, tickets


def _frt(created: str, minutes: float | None, **columns: object) -> dict[str, object]:
    return {"created": created, "first_reply_minutes": minutes, **columns}


@covers("frt")
def test_frt_is_the_median_of_replied_tickets_and_counts_the_awaiting(engine: Engine) -> None:
    tickets(
        engine,
        _frt("2026-11-20 09:00", 10),
        _frt("2026-11-20 10:00", 40),
        _frt("2026-11-21 09:00", 30),
        _frt("2026-11-22 09:00", 20),
        _frt("2026-11-23 09:00", None),  # no reply yet
        _frt("2026-11-23 09:00", 5, status="deleted"),
        _frt("2026-11-10 09:00", 1000),  # created before the window
    )
    result = ask(engine, "frt last 7d")
    assert result.value == 25.0
    assert result.n == 4
    assert result.statistic == "median"
    assert result.title == "First response time (median)"
    assert result.unit == "minutes"
    assert result.extra["awaiting"] == 1
    # p90 of 10, 20, 30, 40: rank 0.9 × 3 = 2.7, so 30 + 0.7 × (40 − 30).
    assert result.extra["p90"] == pytest.approx(37.0)
    assert ask(engine, "frt p90 last 7d").value == pytest.approx(37.0)
    assert ask(engine, "frt mean last 7d").value == 25.0
    assert ask(engine, "frt count last 7d").value == 4.0


@pytest.mark.parametrize(
    ("text", "unit"),
    [("frt count", "count"), ("ttr count", "count"), ("frt p90", "minutes"),
     ("ttr mean", "minutes"), ("frt", "minutes"), ("tickets", "count")],
)  # fmt: skip
def test_a_count_statistic_is_a_count_not_minutes(engine: Engine, text: str, unit: str) -> None:
    assert ask(engine, f"{text} last 7d").unit == unit
    # Every KPI that allows "count": its answer is a count.
    for kpi in KPIS:
        if kpi.allows_statistic("count"):
            assert ask(engine, f"{kpi.name} count last 7d").unit == "count"


@covers("frt")
def test_frt_percentiles_interpolate_between_tied_values(engine: Engine) -> None:
    tickets(engine, *[_frt("2026-11-20 09:00", m) for m in (5, 5, 5, 7)])
    assert ask(engine, "frt last 7d").value == 5.0
    assert ask(engine, "frt p90 last 7d").value == pytest.approx(6.4)  # 5 + 0.7 × 2
    assert ask(engine, "frt p50 last 7d").value == 5.0


@covers("frt")
def test_frt_of_an_empty_window_is_none_and_of_one_ticket_is_its_time(engine: Engine) -> None:
    tickets(engine, _frt("2026-11-20 09:00", None))
    empty = ask(engine, "frt last 7d")
    assert (empty.value, empty.n, empty.extra["awaiting"]) == (None, 0, 1)
    tickets(engine, _frt("2026-11-21 09:00", 12))
    single = ask(engine, "frt p90 last 7d")
    assert (single.value, single.n, single.extra["median"]) == (12.0, 1, 12.0)


@covers("frt")
def test_frt_reads_business_minutes_when_business_hours_are_configured(engine: Engine) -> None:
    tickets(engine, _frt("2026-11-20 09:00", 600, first_reply_business_minutes=60))
    ctx = MetricContext(timezone=WARSAW, business_hours=True)
    assert ask(engine, "frt last 7d", ctx=ctx).value == 60.0


@covers("frt")
def test_frt_by_day_puts_each_ticket_in_its_local_creation_day(engine: Engine) -> None:
    tickets(
        engine,
        _frt("2026-11-22 23:59", 10),
        _frt("2026-11-23 00:00", 20),
        _frt("2026-11-23 12:00", 40),
    )
    result = ask(engine, "frt p90 since 2026-11-22 by day")
    assert result.grain == "day"
    assert series(result) == pytest.approx(
        {"2026-11-22": 10.0, "2026-11-23": 38.0, "2026-11-24": None}
    )
    assert [p.extra["awaiting"] for p in result.series] == [0, 0, 0]
    assert result.value == pytest.approx(36.0)  # p90 of 10, 20, 40: 20 + 0.8 × 20


@covers("tickets")
def test_ticket_volume_counts_tickets_created_yesterday_by_channel(engine: Engine) -> None:
    tickets(
        engine,
        {"created": "2026-11-23 00:00", "channel": "email"},
        {"created": "2026-11-23 12:00", "channel": "email"},
        {"created": "2026-11-23 23:59", "channel": "web"},
        {"created": "2026-11-23 13:00"},
        {"created": "2026-11-23 14:00", "channel": "web", "status": "deleted"},
        {"created": "2026-11-24 00:00", "channel": "web"},  # today
    )
    result = ask(engine, "tickets yesterday by channel")
    assert result.value == 4.0
    assert [(p.key, p.value) for p in result.series] == [
        ("email", 2.0),
        ("(none)", 1.0),
        ("web", 1.0),
    ]
    assert ask(engine, "tickets yesterday where channel=web").value == 1.0


@covers("tickets")
def test_ticket_volume_of_an_empty_window_is_none(engine: Engine) -> None:
    assert ask(engine, "tickets today").value is None


@covers("tickets")
def test_ticket_volume_by_day_spans_the_23_hour_day_of_spring_forward(engine: Engine) -> None:
    tickets(
        engine,
        {"created": "2026-03-28 23:30"},
        {"created": "2026-03-29 00:00"},
        {"created": "2026-03-29 23:59"},
        {"created": "2026-03-30 00:00"},
    )
    result = ask(engine, "tickets between 2026-03-28 and 2026-03-30 by day")
    assert series(result) == {"2026-03-28": 1.0, "2026-03-29": 2.0, "2026-03-30": 1.0}
    assert [p.end - p.start for p in result.series if p.end and p.start] == [
        timedelta(hours=24),
        timedelta(hours=23),
        timedelta(hours=24),
    ]


@covers("ttr")
def test_ttr_is_attributed_to_the_window_in_which_tickets_were_solved(engine: Engine) -> None:
    tickets(
        engine,
        # created long ago, solved in the window: counts
        {"created": "2026-09-01 09:00", "solved": "2026-11-20 09:00", "status": "solved",
         "full_resolution_minutes": 300},
        {"created": "2026-11-19 09:00", "solved": "2026-11-21 09:00", "status": "closed",
         "full_resolution_minutes": 100},
        # solved, then reopened: not resolved now
        {"created": "2026-11-19 09:00", "solved": "2026-11-21 09:00", "status": "open",
         "full_resolution_minutes": 50},
        # created in the window, solved after it
        {"created": "2026-11-20 09:00", "solved": "2026-11-24 11:00", "status": "solved",
         "full_resolution_minutes": 7},
    )  # fmt: skip
    result = ask(engine, "ttr last 7d")
    assert (result.value, result.n) == (200.0, 2)
    assert ask(engine, "ttr yesterday").value is None


@covers("ttr")
def test_ttr_of_a_single_ticket_is_its_time_in_business_minutes_when_configured(
    engine: Engine,
) -> None:
    tickets(
        engine,
        {"created": "2026-11-19 09:00", "solved": "2026-11-21 09:00", "status": "solved",
         "full_resolution_minutes": 2880, "full_resolution_business_minutes": 960},
    )  # fmt: skip
    ctx = MetricContext(timezone=WARSAW, business_hours=True)
    assert ask(engine, "ttr p90 last 7d", ctx=ctx).value == 960.0


@covers("fcr")
def test_fcr_counts_solved_tickets_with_at_most_one_reply_and_no_reopen(engine: Engine) -> None:
    solved = {"created": "2026-11-19 09:00", "solved": "2026-11-21 09:00", "status": "solved"}
    tickets(
        engine,
        {**solved, "replies": 1},
        {**solved, "replies": 0},
        {**solved, "replies": 2},
        {**solved, "replies": 1, "reopens": 1},
        {**solved, "replies": 1, "status": "pending"},  # not solved: not counted
    )
    result = ask(engine, "fcr last 7d")
    assert (result.value, result.n, result.extra["one_touch"]) == (50.0, 4, 2)
    assert ask(engine, "fcr last 2d").value is None


def _backlog_tickets(engine: Engine) -> None:
    tickets(
        engine,
        {"created": "2026-11-18 09:00", "status": "open", "channel": "email"},
        {"created": "2026-11-19 09:00", "solved": "2026-11-21 12:00", "status": "solved"},
        {"created": "2026-11-21 09:00", "status": "pending", "channel": "web"},
        {"created": "2026-11-22 09:00", "solved": "2026-11-23 10:00", "status": "closed"},
        {"created": "2026-11-23 09:00", "status": "deleted"},
        {"created": "2026-11-24 08:00", "status": "hold", "channel": "email"},
    )


@covers("backlog")
def test_backlog_since_a_date_is_the_unsolved_count_at_the_end_of_each_day(
    engine: Engine,
) -> None:
    _backlog_tickets(engine)
    result = ask(engine, "backlog since 2026-11-20")
    assert result.grain == "day"
    assert series(result) == {
        "2026-11-20": 2.0,
        "2026-11-21": 2.0,
        "2026-11-22": 3.0,
        "2026-11-23": 2.0,
        "2026-11-24": 3.0,
    }
    assert result.value == 3.0
    assert ask(engine, "backlog since 2026-11-20 by week").value == 3.0


@covers("backlog")
def test_backlog_by_channel_is_counted_at_the_windows_end(engine: Engine) -> None:
    _backlog_tickets(engine)
    result = ask(engine, "backlog today by channel")
    assert [(p.key, p.value) for p in result.series] == [
        ("(none)", 0.0),
        ("email", 2.0),
        ("web", 1.0),
    ]
    assert ask(engine, "backlog yesterday").value == 2.0


@covers("backlog")
def test_backlog_without_any_ticket_is_none_but_a_cleared_backlog_is_zero(
    engine: Engine,
) -> None:
    assert ask(engine, "backlog today").value is None
    tickets(
        engine, {"created": "2026-11-19 09:00", "solved": "2026-11-21 12:00", "status": "solved"}
    )
    assert ask(engine, "backlog today").value == 0.0
    assert series(ask(engine, "backlog last 7d")) == {
        "2026-11-17": None,  # no ticket yet: no value
        "2026-11-18": None,
        "2026-11-19": 1.0,
        "2026-11-20": 1.0,
        "2026-11-21": 0.0,
        "2026-11-22": 0.0,
        "2026-11-23": 0.0,
        "2026-11-24": 0.0,
    }


@covers("frt")
def test_frt_last_24h_counts_the_tickets_created_in_the_24_hours_up_to_now(
    engine: Engine,
) -> None:
    tickets(
        engine,
        {"created": "2026-11-23 09:30", "first_reply_minutes": 100.0},  # 24.5 hours ago
        {"created": "2026-11-23 10:30", "first_reply_minutes": 10.0},
        {"created": "2026-11-24 09:00", "first_reply_minutes": 30.0},
    )
    result = ask(engine, "frt p90 last 24h")
    assert (result.value, result.n) == (pytest.approx(28.0), 2)  # p90 of 10 and 30
    assert ask(engine, "frt last 24h vs previous").previous == 100.0

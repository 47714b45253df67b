"""Windows and buckets in the team's time zone, across DST changes and month ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import WindowError
from metrics.windows import WindowSpec, buckets, period_start, previous, resolve
from tests.metrics.helpers import NOW, WARSAW, at


def _resolve(text: str, now: datetime = NOW, tz: ZoneInfo = WARSAW) -> tuple[datetime, datetime]:
    from metrics import parse_query

    spec = parse_query(f"nps {text}").window
    assert spec is not None
    window = resolve(spec, tz, now)
    return window.start, window.end


def test_last_30d_moves_back_on_the_wall_clock_across_the_end_of_summer_time() -> None:
    start, end = _resolve("last 30d", now=at("2026-11-20 10:00"))
    assert start == at("2026-10-21 10:00")
    assert end - start == timedelta(days=30, hours=1)  # 25 October had 25 hours


def test_last_months_are_calendar_offsets_clamped_to_the_month_end() -> None:
    assert _resolve("last 1m", now=at("2026-03-31 12:00"))[0] == at("2026-02-28 12:00")
    assert _resolve("last 1q", now=at("2026-05-31 12:00"))[0] == at("2026-02-28 12:00")
    assert _resolve("last 1y", now=at("2028-02-29 12:00"))[0] == at("2027-02-28 12:00")
    assert _resolve("last 2w")[0] == at("2026-11-10 10:00")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("today", "2026-11-24 00:00", "2026-11-24 10:00"),
        ("yesterday", "2026-11-23 00:00", "2026-11-24 00:00"),
        ("this week", "2026-11-23 00:00", "2026-11-24 10:00"),  # ISO weeks start on Monday
        ("last week", "2026-11-16 00:00", "2026-11-23 00:00"),
        ("this month", "2026-11-01 00:00", "2026-11-24 10:00"),
        ("last month", "2026-10-01 00:00", "2026-11-01 00:00"),
        ("this quarter", "2026-10-01 00:00", "2026-11-24 10:00"),
        ("last quarter", "2026-07-01 00:00", "2026-10-01 00:00"),
        ("this year", "2026-01-01 00:00", "2026-11-24 10:00"),
        ("last year", "2025-01-01 00:00", "2026-01-01 00:00"),
        ("since 2026-10-01", "2026-10-01 00:00", "2026-11-24 10:00"),
        ("between 2026-03-01 and 2026-03-31", "2026-03-01 00:00", "2026-04-01 00:00"),
        ("between 2026-11-01 and 2026-12-31", "2026-11-01 00:00", "2026-11-24 10:00"),
    ],
)
def test_calendar_windows_start_at_local_midnight(text: str, start: str, end: str) -> None:
    assert _resolve(text) == (at(start), at(end))


def test_a_window_starting_in_the_future_is_refused() -> None:
    with pytest.raises(WindowError, match="starts in the future"):
        _resolve("since 2026-12-01")


def test_a_window_longer_than_five_years_is_refused() -> None:
    with pytest.raises(WindowError, match="five years"):
        _resolve("since 2020-01-01")


def test_too_many_buckets_are_refused() -> None:
    window = resolve(WindowSpec("since", first=date(2025, 1, 1)), WARSAW, NOW)
    with pytest.raises(WindowError, match="400 points"):
        buckets(window, "day")


def test_buckets_are_clipped_to_a_rolling_window_and_keyed_by_local_start_date() -> None:
    window = resolve(WindowSpec("rolling", 2, "d"), WARSAW, NOW)
    got = buckets(window, "day")
    assert [b.key for b in got] == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert got[0].start == at("2026-11-22 10:00")
    assert got[-1].end == NOW
    weeks = buckets(resolve(WindowSpec("this", unit="month"), WARSAW, NOW), "week")
    assert [b.key for b in weeks] == [
        "2026-10-26",
        "2026-11-02",
        "2026-11-09",
        "2026-11-16",
        "2026-11-23",
    ]
    assert weeks[0].start == at("2026-11-01 00:00")


@pytest.mark.parametrize(
    ("text", "comparison", "start", "end"),
    [
        ("last 30d", "previous", "2026-09-25 10:00", "2026-10-25 10:00"),
        ("this month", "previous", "2026-10-01 00:00", "2026-10-24 10:00"),
        ("last month", "previous", "2026-09-01 00:00", "2026-10-01 00:00"),
        ("last quarter", "previous", "2026-04-01 00:00", "2026-07-01 00:00"),
        ("today", "previous", "2026-11-23 00:00", "2026-11-23 10:00"),
        ("yesterday", "previous", "2026-11-22 00:00", "2026-11-23 00:00"),
        ("this week", "previous", "2026-11-16 00:00", "2026-11-17 10:00"),
        ("between 2026-11-01 and 2026-11-10", "previous", "2026-10-22 00:00", "2026-11-01 00:00"),
        ("since 2026-11-20", "previous", "2026-11-15 14:00", "2026-11-20 00:00"),
        ("last 30d", "last_year", "2025-10-25 10:00", "2025-11-24 10:00"),
        ("this month", "last_year", "2025-11-01 00:00", "2025-11-24 10:00"),
    ],
)
def test_the_comparison_window(text: str, comparison: str, start: str, end: str) -> None:
    from metrics import parse_query

    spec = parse_query(f"nps {text}").window
    assert spec is not None
    before = previous(resolve(spec, WARSAW, NOW), comparison, NOW)
    assert (before.start, before.end) == (at(start), at(end))


ZONES = ["Europe/Warsaw", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=60, deadline=None)
@given(
    first=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 11, 1)),
    days=st.integers(min_value=0, max_value=120),
    grain=st.sampled_from(["day", "week", "month"]),
    zone=st.sampled_from(ZONES),
)
def test_buckets_partition_the_window_in_any_zone(
    first: date, days: int, grain: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    spec = WindowSpec("between", first=first, last=first + timedelta(days=days))
    window = resolve(spec, tz, datetime(2027, 1, 1, tzinfo=UTC))
    got = buckets(window, grain)
    assert got[0].start == window.start
    assert got[-1].end == window.end
    assert all(a.end == b.start for a, b in pairwise(got))
    assert all(b.start < b.end for b in got)
    # A bucket's key is the local day its calendar bucket starts on; only the first one
    # may be clipped to start later.
    assert got[0].key == period_start(window.local_start.date(), grain).isoformat()
    assert all(b.start.astimezone(tz).date().isoformat() == b.key for b in got[1:])


def test_last_24h_is_elapsed_time_even_when_the_clocks_change() -> None:
    # Summer time ended at 03:00 on 25 October 2026: that local day had 25 hours.
    start, end = _resolve("last 24h", now=at("2026-10-25 12:00"))
    assert end - start == timedelta(hours=24)
    assert start == at("2026-10-24 13:00")
    assert _resolve("last 6h") == (at("2026-11-24 04:00"), at("2026-11-24 10:00"))


def test_hour_windows_compare_with_the_hours_before_and_cut_into_local_days() -> None:
    from metrics import parse_query

    spec = parse_query("nps last 6h").window
    assert spec is not None
    window = resolve(spec, WARSAW, at("2026-11-24 03:00"))
    before = previous(window, "previous", at("2026-11-24 03:00"))
    assert (before.start, before.end) == (at("2026-11-23 15:00"), at("2026-11-23 21:00"))
    days = buckets(window, "day")
    assert [(b.key, b.start, b.end) for b in days] == [
        ("2026-11-23", at("2026-11-23 21:00"), at("2026-11-24 00:00")),
        ("2026-11-24", at("2026-11-24 00:00"), at("2026-11-24 03:00")),
    ]

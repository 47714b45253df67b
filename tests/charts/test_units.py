"""Numbers on charts read in their units: durations, money, percent, counts."""

from __future__ import annotations

import pytest

from bot.charts import _DurationLocator, _UnitFormatter, format_duration, format_value


@pytest.mark.parametrize(
    "minutes,text",
    [
        (0, "0m"),
        (0.5, "30s"),
        (45, "45m"),
        (59.6, "1h"),
        (135, "2h 15m"),
        (24 * 60, "1d"),
        (3 * 1440 + 4 * 60, "3d 4h"),
        (-90, "−1h 30m"),
        (1e9, "694,444d 11h"),
    ],
)
def test_durations_read_as_minutes_hours_and_days(minutes, text):
    assert format_duration(minutes) == text


@pytest.mark.parametrize(
    "value,unit,text",
    [
        (12_345, "USD", "$12.3k"),
        (1_234_567, "EUR", "€1.2M"),
        (950, "GBP", "£950"),
        (12.5, "USD", "$12.50"),
        (-2_500, "USD", "−$2.5k"),
        (999_960, "USD", "$1M"),
        (1e9, "USD", "$1B"),
        (12_300, "PLN", "PLN 12.3k"),
        (92.44, "percent", "92.4%"),
        (100, "percent", "100%"),
        (1234, "count", "1,234"),
        (2_500_000, "users", "2.5M"),
        (42, "score", "42"),
        (5.83, "score", "5.83"),
        (-12.5, "score", "−12.5"),
        (0.4567, "ratio", "0.46"),
        (135, "minutes", "2h 15m"),
        (None, "count", "no data"),
        (float("nan"), "count", "no data"),
    ],
)
def test_values_read_in_their_unit(value, unit, text):
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    "unit,ticks,labels",
    [
        ("count", [0, 200, 400, 600], ["0", "200", "400", "600"]),
        ("count", [0, 20_000, 40_000], ["0", "20k", "40k"]),
        ("count", [0, 0.5, 1.0, 1.5], ["0", "0.5", "1.0", "1.5"]),
        ("USD", [-10_000, 0, 10_000, 20_000], ["−$10k", "$0", "$10k", "$20k"]),
        ("EUR", [0, 500_000, 1_000_000], ["€0", "€500k", "€1,000k"]),
        ("percent", [88, 90, 92, 94], ["88%", "90%", "92%", "94%"]),
        ("percent", [99.5, 99.75, 100], ["99.50%", "99.75%", "100.00%"]),
        ("score", [-100, -50, 0, 50, 100], ["−100", "−50", "0", "50", "100"]),
        ("minutes", [0, 120, 240, 360], ["0m", "2h", "4h", "6h"]),
        ("count", [1e9, 2e9, 3e9], ["1B", "2B", "3B"]),
    ],
)
def test_tick_labels_share_one_scale_and_stay_distinct(unit, ticks, labels):
    assert _UnitFormatter(unit).format_ticks(ticks) == labels


@pytest.mark.parametrize(
    "vmax,step",
    [(50, 10), (300, 60), (600, 120), (1440, 240), (10 * 1440, 2 * 1440), (400 * 1440, 100 * 1440)],
)
def test_duration_ticks_fall_on_whole_minutes_hours_or_days(vmax, step):
    ticks = _DurationLocator().tick_values(0, vmax)

    assert ticks[0] == 0
    assert ticks[1] - ticks[0] == step
    assert len(ticks) <= 7

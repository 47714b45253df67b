"""Every chart kind draws a valid, readable PNG for typical, empty, single-point, very long
(5 years daily) and extreme inputs, with alt text, and never raises."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from bot import charts
from metrics.result import Point, Result
from tests.charts import samples
from tests.charts.helpers import (
    assert_no_overlapping_tick_labels,
    assert_text_inside_card,
    assert_valid_png,
)

# sample name → the kind render() must pick for it
KINDS = {
    "csat": "line",
    "nps": "nps",
    "mrr_movements": "mrr",
    "tickets": "volume",
    "backlog": "backlog",
    "frt": "duration",
    "by_channel": "bars",
    "health": "health",
}


def sample(name: str, shape: str) -> Result:
    return samples.by_dimension(shape) if name == "by_channel" else samples.result(name, shape)


@pytest.mark.parametrize("shape", samples.SHAPES)
@pytest.mark.parametrize("name", KINDS)
def test_every_kind_renders_a_valid_png_for_every_shape(name, shape, figures):
    result = sample(name, shape)
    assert charts.chart_kind(result) == KINDS[name]

    chart = charts.render(result, threshold=None)

    assert chart is not None
    assert_valid_png(chart.png)
    assert chart.filename.endswith(".png")
    assert result.title in chart.alt_text
    assert result.timezone in chart.alt_text
    (fig,) = figures
    assert_text_inside_card(fig)
    assert_no_overlapping_tick_labels(fig)


@pytest.mark.parametrize("name", [n for n in KINDS if n != "health"])
def test_an_empty_window_says_no_data(name):
    chart = charts.render(sample(name, "empty"))

    assert chart is not None
    assert "no data in this window" in chart.alt_text


@pytest.mark.parametrize("points", [7, 30, 90, 365, 5 * 365 + 1])
@pytest.mark.parametrize("name", ["csat", "nps", "tickets", "frt"])
def test_tick_labels_never_overlap_from_a_week_to_five_years(name, points, figures):
    charts.render(samples.result(name, n=points))

    (fig,) = figures
    assert_no_overlapping_tick_labels(fig)
    assert_text_inside_card(fig)


@pytest.mark.parametrize("grain,points", [("week", 1), ("week", 53), ("month", 1), ("month", 60)])
def test_weekly_and_monthly_series_render(grain, points, figures):
    result = samples.result("csat", n=points, grain=grain)
    if grain == "month":
        bounds = samples.days(points, grain="month")
    else:
        starts = [samples.END - timedelta(days=7 * (points - i)) for i in range(points)]
        bounds = [(s, s + timedelta(days=7)) for s in starts]
    series = tuple(
        Point(key=f"k{i}", value=90.0 + i % 5, n=3, start=s, end=e)
        for i, (s, e) in enumerate(bounds)
    )
    chart = charts.render(replace(result, series=series, previous_series=()))

    assert_valid_png(chart.png)
    (fig,) = figures
    assert_no_overlapping_tick_labels(fig)


def test_a_single_value_without_a_series_has_no_chart():
    result = replace(samples.result("csat", "typical"), grain=None, series=(), previous_series=())

    assert charts.chart_kind(result) is None
    assert charts.render(result) is None


def test_none_and_nan_values_are_gaps_not_errors():
    result = samples.result("csat", "typical")
    values = [None, math.nan, 91.0, None, 93.0, math.inf, 92.0]
    series = tuple(replace(p, value=v) for p, v in zip(result.series, values, strict=False))

    chart = charts.line_chart(replace(result, series=series, previous_series=()))

    assert_valid_png(chart.png)
    assert "4 of 7 days have no data" in chart.alt_text


def test_all_gaps_is_no_data():
    result = samples.result("backlog", "typical")
    series = tuple(replace(p, value=None) for p in result.series)

    chart = charts.render(replace(result, series=series))

    assert "no data in this window" in chart.alt_text


def test_a_threshold_is_drawn_and_described(figures):
    chart = charts.render(samples.result("frt"), threshold=240)

    assert "Alert threshold 4h shown dashed" in chart.alt_text
    (fig,) = figures
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "Alert at 4h" in labels


def test_a_threshold_far_outside_the_data_stays_in_view(figures):
    charts.render(samples.result("csat"), threshold=10.0)

    (fig,) = figures
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 10.0 < hi


def test_the_previous_period_is_a_faint_line_under_the_current_one(figures):
    chart = charts.render(samples.result("csat"))

    assert "previous period is drawn as a faint grey line" in chart.alt_text
    (fig,) = figures
    assert "Previous period" in fig.axes[0].get_legend_handles_labels()[1]


def test_alt_text_says_latest_lowest_highest_and_trend():
    alt = charts.render(samples.result("frt")).alt_text

    assert alt.startswith("Line chart of First response time (median), 1 Nov – 30 Nov 2026")
    assert "Latest median" in alt
    assert "Lowest" in alt and "highest" in alt
    assert "Trend " in alt
    assert "down 22m from 2h 7m in the previous period" in alt


def test_the_title_names_the_kpi_the_window_and_the_time_zone(figures):
    charts.render(samples.result("nps"), window_label="last 30 days")

    (fig,) = figures
    texts = [t.get_text() for t in fig.texts]
    assert "NPS · last 30 days · Europe/Warsaw" in texts


def test_nps_without_counts_falls_back_to_a_line():
    result = samples.result("nps")
    series = tuple(replace(p, extra={}) for p in result.series)

    chart = charts.render(replace(result, series=series))

    assert chart.alt_text.startswith("Line chart of NPS")


def test_mrr_losses_are_drawn_down_whatever_their_sign(figures):
    result = samples.result("mrr_movements")
    negative = tuple(
        replace(p, extra={**p.extra, **{k: -p.extra[k] for k in ("churn", "contraction")}})
        for p in result.series
    )
    charts.render(result)
    charts.render(replace(result, series=negative))

    assert figures[0].axes[0].get_ylim() == figures[1].axes[0].get_ylim()
    assert figures[0].axes[0].get_ylim()[0] < 0


def test_mrr_net_new_is_computed_when_missing():
    result = samples.result("mrr_movements", "single")
    (point,) = result.series
    extra = {k: v for k, v in point.extra.items() if k != "net_new"}
    chart = charts.render(replace(result, series=(replace(point, value=None, extra=extra),)))

    net = charts.format_value(point.extra["net_new"], "USD")
    assert f"Latest net new MRR {net}" in chart.alt_text


def test_health_names_the_least_healthy_customers(figures):
    chart = charts.render(samples.result("health"))

    assert "Least healthy: " in chart.alt_text
    assert "1 customer has no score" in chart.alt_text
    (fig,) = figures
    names = [t.get_text() for t in fig.axes[1].texts]
    assert "Least healthy" in names
    assert len(names) == 1 + 2 * charts.LEAST_HEALTHY


def test_health_from_a_customer_dimension():
    result = Result(
        kpi="health",
        title="Customer health",
        unit="score",
        statistic=None,
        start=samples.END - timedelta(days=1),
        end=samples.END,
        timezone=samples.TZ,
        value=61.0,
        n=3,
        higher_is_better=True,
        dimension="customer",
        series=(Point("Acme", 12.0, 1), Point("Globex", 88.0, 1), Point("Initech", 55.0, 1)),
    )

    chart = charts.render(result)

    assert "Red (below 50): 1; yellow (50 to 75): 1; green (76 and above): 1." in chart.alt_text
    assert "Least healthy: Acme (12)" in chart.alt_text


def test_bars_keep_non_additive_values_apart_and_say_what_is_hidden():
    result = samples.by_dimension("long")
    scores = replace(result, kpi="nps", unit="score", title="NPS")

    chart = charts.render(scores)

    assert "189 more not shown" in chart.alt_text
    assert "others" not in chart.alt_text


def test_bars_sum_the_rest_of_a_count_into_others():
    chart = charts.render(samples.by_dimension("typical"))

    assert "3 others 7" in chart.alt_text


def test_negative_bars_render(figures):
    result = samples.by_dimension("typical")
    series = tuple(
        replace(p, value=-p.value if i % 2 else p.value) for i, p in enumerate(result.series)
    )

    chart = charts.render(replace(result, series=series, unit="EUR", previous_series=()))

    assert_valid_png(chart.png)
    assert_text_inside_card(figures[0])


UNITS = ["minutes", "percent", "score", "count", "users", "ratio", "USD", "EUR", "PLN"]
EXTREMES = {
    "zeros": [0.0] * 5,
    "equal": [7.0] * 5,
    "billions": [1e9, 2e9, 1.5e9, 3e9, 1e9],
    "negative": [-5.0, -1.0, -3.0, -2.0, -8.0],
}


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("values", EXTREMES.values(), ids=EXTREMES.keys())
def test_extreme_values_render_sanely_in_every_unit(unit, values, figures):
    result = samples.result("csat", n=5, unit=unit)
    series = tuple(replace(p, value=v) for p, v in zip(result.series, values, strict=True))

    chart = charts.render(replace(result, series=series, previous_series=()), threshold=values[0])

    assert_valid_png(chart.png)
    (fig,) = figures
    assert_no_overlapping_tick_labels(fig)
    assert_text_inside_card(fig)


def test_keys_without_bucket_bounds_still_make_a_time_axis():
    result = samples.result("csat", n=10)
    series = tuple(replace(p, start=None, end=None) for p in result.series)

    chart = charts.render(replace(result, series=series, previous_series=()))

    assert "Latest value" in chart.alt_text
    assert "(30 Nov 2026)" in chart.alt_text


def test_keys_that_are_not_dates_are_categories(figures):
    result = samples.result("csat", n=10)
    series = tuple(
        replace(p, start=None, end=None, key=f"sprint {i}") for i, p in enumerate(result.series)
    )

    chart = charts.render(replace(result, series=series, previous_series=()))

    assert "(sprint 9)" in chart.alt_text
    assert_no_overlapping_tick_labels(figures[0])


def test_dollar_signs_are_text_not_mathtext(figures):
    result = replace(samples.result("csat"), title="Revenue from the $5 plan and the $9 plan")

    chart = charts.render(result)

    assert_valid_png(chart.png)
    assert "Revenue from the $5 plan and the $9 plan" in chart.alt_text


def test_an_unknown_time_zone_falls_back_to_utc():
    chart = charts.render(replace(samples.result("csat"), timezone="Mars/Olympus_Mons"))

    assert_valid_png(chart.png)


def test_a_long_title_is_shortened_to_fit(figures):
    charts.render(replace(samples.result("csat"), title="Customer satisfaction " * 8))

    (fig,) = figures
    assert_text_inside_card(fig)
    assert any(t.get_text().endswith("…") for t in fig.texts)

"""The main kinds still look the way they were reviewed: pixel comparison with a tolerance
against tests/charts/baseline/*.png.

Regenerate after a deliberate change (then look at every image before committing):

    KPIBOT_REGENERATE_GOLDENS=1 python -m pytest tests/charts/test_goldens.py -q
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib.testing.compare import compare_images

from bot import charts
from bot.replies import Chart
from tests.charts import samples

BASELINE = Path(__file__).parent / "baseline"
REGENERATE = os.environ.get("KPIBOT_REGENERATE_GOLDENS") == "1"
# RMS difference on a 0–255 scale: survives FreeType/Agg rounding between machines, fails
# on a moved label, a changed colour or a lost series.
TOLERANCE = 2.0


def _digest() -> Chart:
    results = [samples.result(k) for k in ("csat", "nps", "tickets", "backlog", "frt")]
    return charts.sparkline_grid(
        results, title="Morning digest · 30 Nov 2026 · Europe/Warsaw", subtitle="Last 30 days"
    )


GOLDENS: dict[str, Callable[[], Chart | None]] = {
    "line": lambda: charts.render(samples.result("csat"), threshold=90.0),
    "nps": lambda: charts.render(samples.result("nps")),
    "mrr": lambda: charts.render(samples.result("mrr_movements")),
    "volume": lambda: charts.render(samples.result("tickets")),
    "backlog": lambda: charts.render(samples.result("backlog"), threshold=380.0),
    "duration": lambda: charts.render(samples.result("frt"), threshold=240.0),
    "bars": lambda: charts.render(samples.by_dimension()),
    "health": lambda: charts.render(samples.result("health")),
    "no_data": lambda: charts.render(samples.result("csat", "empty")),
    "sparkline_grid": _digest,
}


@pytest.mark.parametrize("name", GOLDENS)
def test_chart_matches_its_golden_image(name, tmp_path):
    chart = GOLDENS[name]()
    assert chart is not None
    expected = BASELINE / f"{name}.png"
    if REGENERATE:
        expected.write_bytes(chart.png)
        pytest.skip(f"regenerated {expected.name}")
    actual = tmp_path / f"{name}.png"
    actual.write_bytes(chart.png)

    difference = compare_images(str(expected), str(actual), tol=TOLERANCE)

    assert difference is None, difference


def test_every_kind_has_a_golden_image():
    assert set(charts.CHART_KINDS) <= set(GOLDENS)

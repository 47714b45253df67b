"""Charts are safe to draw from worker threads, leave matplotlib's global state alone, never
use pyplot, and every registered kind is rendered and documented."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib as mpl

from bot import charts
from tests.charts import samples

ROOT = Path(__file__).resolve().parents[2]


def _render_all() -> list[bytes]:
    results = [samples.result(k) for k in ("csat", "nps", "mrr_movements", "frt")]
    return [charts.render(r).png for r in results]


def test_renders_in_threads_match_renders_in_sequence():
    expected = _render_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: _render_all(), range(4)))

    assert all(run == expected for run in runs)


def test_rendering_leaves_rc_params_untouched():
    before = dict(mpl.rcParams)

    _render_all()

    assert dict(mpl.rcParams) == before


def test_a_host_that_restyles_matplotlib_does_not_restyle_our_cards():
    plain = charts.render(samples.result("csat")).png

    with mpl.rc_context(
        {
            "font.size": 30,
            "lines.linewidth": 9,
            "axes.facecolor": "black",
            "savefig.transparent": True,
            "figure.facecolor": "red",
        }
    ):
        styled = charts.render(samples.result("csat")).png

    assert styled == plain


def test_charts_never_import_pyplot():
    code = (
        "import sys; from bot import charts; from tests.charts import samples\n"
        "for k in samples.KPIS: charts.render(samples.result(k))\n"
        "charts.sparkline_grid([samples.result('csat')], title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_every_registered_kpi_maps_to_a_kind_with_a_renderer():
    assert set(charts.KIND_BY_KPI.values()) <= set(charts.CHART_KINDS)
    assert set(charts._RENDERERS) == set(charts.CHART_KINDS)


def test_every_kind_is_documented():
    doc = (ROOT / "docs" / "charts.md").read_text()

    for kind in charts.CHART_KINDS:
        assert f"`{kind}`" in doc, f"docs/charts.md does not describe the {kind!r} chart"
    assert "KPIBOT_REGENERATE_GOLDENS" in doc


def test_every_kpi_in_the_metrics_registry_has_a_chart_kind() -> None:
    from bot.charts import CHART_KINDS, KIND_BY_KPI
    from metrics import KPIS

    assert {k.name for k in KPIS} == set(KIND_BY_KPI)
    assert set(KIND_BY_KPI.values()) <= set(CHART_KINDS)

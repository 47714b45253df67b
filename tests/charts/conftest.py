"""Fixtures for the chart tests: pinned matplotlib settings and a look at the figures."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib as mpl
import matplotlib.style
import pytest
from matplotlib.figure import Figure

from bot import charts


@pytest.fixture(autouse=True)
def pinned_matplotlib() -> Iterator[None]:
    """Matplotlib's own defaults whatever the machine's matplotlibrc says, with the bundled
    DejaVu Sans and default hinting: the settings the golden images were drawn with."""
    with (
        matplotlib.style.context("default"),
        mpl.rc_context({"font.family": "DejaVu Sans", "text.hinting": "default"}),
    ):
        yield


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure a render turns into PNG during the test, drawn, for inspection."""
    seen: list[Figure] = []
    to_png = charts._png

    def capture(fig: Figure) -> bytes:
        seen.append(fig)
        return to_png(fig)

    monkeypatch.setattr(charts, "_png", capture)
    return seen

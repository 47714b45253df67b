"""Checks shared by the chart tests."""

from __future__ import annotations

import itertools
import struct

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_BYTES, MAX_BYTES = 5 * 1024, 400 * 1024


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which always comes first."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_valid_png(data: bytes, *, width: int = 1200, height: int | None = 600) -> None:
    w, h = png_size(data)
    assert w == width
    if height is not None:
        assert h == height
    assert MIN_BYTES <= len(data) <= MAX_BYTES, f"{len(data)} bytes"


def _drawn_texts(fig: Figure) -> list[Text]:
    """Visible, non-empty texts, leaving out tick labels of ticks outside the view (which
    matplotlib keeps around but does not draw)."""
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                ticks.update((tick.label1, tick.label2))
    shown = {*tick_labels(fig, "x"), *tick_labels(fig, "y")}
    return [
        t
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and (t not in ticks or t in shown)
    ]


def axis_tick_labels(ax: Axes, axis_name: str) -> list[Text]:
    """The tick labels one axes actually shows along one axis: in view, not blank."""
    if not ax.axison:
        return []
    axis = ax.xaxis if axis_name == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis_name == "x" else ax.get_ylim())
    slack = (hi - lo) * 1e-9
    return [
        tick.label1
        for tick in axis.get_major_ticks()
        if tick.label1.get_visible()
        and tick.label1.get_text()
        and lo - slack <= tick.get_loc() <= hi + slack
    ]


def tick_labels(fig: Figure, axis_name: str) -> list[Text]:
    return [t for ax in fig.axes for t in axis_tick_labels(ax, axis_name)]


def assert_no_overlapping_tick_labels(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    for axis_name in ("x", "y"):
        for ax in fig.axes:
            labels = axis_tick_labels(ax, axis_name)
            boxes = sorted(
                (t.get_window_extent(renderer) for t in labels),
                key=lambda b: b.x0 if axis_name == "x" else b.y0,
            )
            for a, b in itertools.pairwise(boxes):
                gap = b.x0 - a.x1 if axis_name == "x" else b.y0 - a.y1
                assert gap > 0, f"{axis_name} tick labels overlap: {a} {b}"
            # Values must read apart; dates may repeat a day number ("15" in Oct and Nov).
            texts = [t.get_text() for t in labels]
            if axis_name == "y":
                assert len(texts) == len(set(texts)), f"repeated y tick labels {texts}"


def assert_text_inside_card(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    card = fig.bbox
    for t in _drawn_texts(fig):
        box = t.get_window_extent(renderer)
        assert box.x0 >= card.x0 - 1 and box.x1 <= card.x1 + 1, f"clipped: {t.get_text()!r}"
        assert box.y0 >= card.y0 - 1 and box.y1 <= card.y1 + 1, f"clipped: {t.get_text()!r}"

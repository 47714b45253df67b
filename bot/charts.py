"""Charts for answers, digests and alerts: a :class:`~metrics.result.Result` in, a PNG out.

Everything here is a plain synchronous function (the bot calls them through
``asyncio.to_thread``) built on matplotlib's object API — ``Figure`` plus the Agg canvas,
never pyplot — and nothing reads or writes global matplotlib state beyond the defaults:
fonts, colours and sizes are set on each artist, so concurrent renders in threads do not
interfere and a host application's rcParams cannot restyle our cards.

Kinds (``CHART_KINDS``) and what each one reads from the Result:

========== ==============================================================================
line       ``series`` over time; ``previous_series`` as a faint line matched bucket by
           bucket; an alert ``threshold`` dashed.
nps        ``series`` score as a line (top panel) over stacked promoter / passive /
           detractor response counts (``Point.extra`` "promoters", "passives",
           "detractors"); without counts it falls back to ``line``.
mrr        MRR movements as diverging bars: "new", "expansion", "reactivation" up,
           "contraction", "churn" down (``Point.extra``, magnitudes: the sign is ignored),
           net new MRR ("net_new", else ``Point.value``, else computed) as a line.
volume     counts as bars per time bucket (ticket volume).
backlog    an area per time bucket.
duration   median (``Point.value``) as a line with a band up to ``Point.extra["p90"]``.
bars       one horizontal bar per dimension value (any KPI split by a dimension).
health     customer health distribution: a histogram of 0–100 scores coloured by band
           (red < 50 ≤ yellow < 76 ≤ green) and the least healthy customers by name.
           Scores come from ``Result.extra["customers"]``, a sequence of mappings
           ``{"name": str, "score": float | None}`` (one per customer, unscored ones
           ``None``), or else from ``series`` when ``dimension == "customer"`` (key = name).
========== ==============================================================================

:func:`render` picks the kind (``KIND_BY_KPI``, then a fallback: a time series is a line, a
dimension split is bars, a single value without a series has no chart and gives ``None``).
:func:`sparkline_grid` draws several Results on one digest card.

A series with no values gives a "No data in this window" card, never an exception; a single
point is data and is drawn as one marked point or bar. ``None`` and NaN values are gaps.

Size: 8 × 4 in at 150 dpi = 1200 × 600 px. Slack and Discord show previews at roughly
360–550 px wide and open the full image on click; 150 dpi keeps the text crisp on HiDPI
screens and when zoomed, while the layout (all sizes in points) is the same as 800 × 400 at
100 dpi. The card is opaque white with dark text, which reads on light and dark themes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from io import BytesIO
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, Formatter, Locator, MaxNLocator

from bot.replies import Chart, Tone
from metrics.result import Point, Result

__all__ = [
    "CHART_KINDS",
    "KIND_BY_KPI",
    "backlog_chart",
    "bar_chart",
    "chart_kind",
    "duration_chart",
    "format_value",
    "health_chart",
    "line_chart",
    "mrr_movements_chart",
    "no_data_chart",
    "nps_chart",
    "render",
    "sparkline_grid",
    "volume_chart",
]

# ---------------------------------------------------------------------------------------
# Look

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.0, 150
FONT = "DejaVu Sans"  # bundled with matplotlib: identical glyphs everywhere

CARD = "#FFFFFF"
BORDER = "#D0D3D6"
INK = "#1D1C1D"  # Slack's own text colour
MUTED = "#616061"
GRID = "#E6E7E8"
AXIS = "#B8BABC"

# Okabe & Ito, "Color Universal Design" (2008): distinguishable with every common
# colour-vision deficiency.
BLUE = "#0072B2"
SKY = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
YELLOW = "#F0E442"
PURPLE = "#CC79A7"
GREY = "#A0A3A6"
PASSIVE = "#C9CCCF"

TONE_COLOURS = {Tone.GOOD: BLUE, Tone.BAD: VERMILLION, Tone.NEUTRAL: MUTED}

TITLE_PT, SUBTITLE_PT, LABEL_PT, TICK_PT, LEGEND_PT, NOTE_PT = 14.0, 11.0, 10.5, 10.0, 9.5, 9.5

# ---------------------------------------------------------------------------------------
# Registry

CHART_KINDS = ("line", "nps", "mrr", "volume", "backlog", "duration", "bars", "health")

#: KPI name (as the metrics registry spells it) → chart kind for its time series.
#: KPIs not listed get the fallback: time series → "line", dimension → "bars".
KIND_BY_KPI: Mapping[str, str] = MappingProxyType(
    {
        "nps": "nps",
        "csat": "line",
        "ces": "line",
        "frt": "duration",
        "ttr": "duration",
        "fcr": "line",
        "backlog": "backlog",
        "tickets": "volume",
        "mrr": "line",
        "mrr_movements": "mrr",
        "churn": "line",
        "gross_revenue_churn": "line",
        "net_revenue_churn": "line",
        "nrr": "line",
        "grr": "line",
        "crr": "line",
        "clv": "line",
        "cost_of_retention": "line",
        "active_users": "line",
        "dau": "line",
        "wau": "line",
        "mau": "line",
        "stickiness": "line",
        "adoption": "line",
        "usage_rate": "line",
        "health": "health",
    }
)


def chart_kind(result: Result) -> str | None:
    """The kind of chart :func:`render` draws for ``result``; ``None`` when it has none."""
    kind = KIND_BY_KPI.get(result.kpi)
    if kind == "health" and ("customers" in result.extra or result.dimension == "customer"):
        return "health"
    if result.dimension is not None:
        return "bars"
    if result.grain is not None or result.series:
        if kind is None or kind == "health":
            return "line"
        return kind
    return None


def render(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart | None:
    """The chart that fits ``result`` (see :func:`chart_kind`), or ``None`` for a single
    value without a series. ``threshold`` draws an alert line; ``window_label`` ("last 30
    days") replaces the dates in the title."""
    kind = chart_kind(result)
    if kind is None:
        return None
    return _RENDERERS[kind](result, threshold=threshold, window_label=window_label)


# ---------------------------------------------------------------------------------------
# Numbers in their units

_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
MINUS = "−"


def _is_money(unit: str) -> bool:
    return len(unit) == 3 and unit.isupper()


def _money_prefix(unit: str) -> str:
    return _CURRENCY_SYMBOLS.get(unit, unit + " ")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _compact(value: float, decimals: int = 1) -> str:
    """12_345 → "12.3k", 1_200_000 → "1.2M"; the sign is the caller's business."""
    a = abs(value)
    for div, suffix in _SCALES:
        if round(a / div, decimals) >= 1:
            scaled = round(a / div, decimals)
            if scaled >= 1000 and div < 1e12:  # 999.96k rounds up into the next scale
                continue
            return _trim(f"{scaled:,.{decimals}f}") + suffix
    return _trim(f"{a:,.{decimals}f}")


def format_duration(minutes: float) -> str:
    """45 → "45m", 135 → "2h 15m", 4560 → "3d 4h"; below a minute, seconds."""
    sign = MINUS if minutes < 0 else ""
    m = abs(minutes)
    if m == 0:
        return "0m"
    if m < 1:
        return f"{sign}{max(1, round(m * 60))}s"
    whole = round(m)
    if whole < 60:
        return f"{sign}{whole}m"
    if whole < 1440:
        h, rest = divmod(whole, 60)
        return f"{sign}{h}h" + (f" {rest}m" if rest else "")
    d, h = divmod(round(m / 60), 24)
    return f"{sign}{d:,}d" + (f" {h}h" if h else "")


def format_value(value: float | None, unit: str) -> str:
    """A value as a person reads it: "$12.3k", "2h 15m", "92.4%", "1,234", "42"."""
    if value is None or not math.isfinite(value):
        return "no data"
    sign = MINUS if value < 0 else ""
    a = abs(value)
    if unit == "minutes":
        return format_duration(value)
    if unit == "percent":
        return f"{sign}{_compact(a) if a >= 1e6 else _trim(f'{a:,.1f}')}%"
    if _is_money(unit):
        body = _compact(a) if a >= 1000 else (f"{a:,.0f}" if a == round(a) else f"{a:,.2f}")
        return f"{sign}{_money_prefix(unit)}{body}"
    if unit in ("count", "users"):
        return sign + (_compact(a) if a >= 1e6 else f"{a:,.0f}")
    if unit == "ratio":
        return sign + _trim(f"{a:,.2f}")
    # score and anything unknown
    return sign + (_compact(a) if a >= 1e6 else _trim(f"{a:,.{2 if a < 10 else 1}f}"))


def _format_change(change: float, unit: str, previous: float | None) -> str:
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    if change == 0:
        return "= no change"
    body = format_value(abs(change), unit)
    if unit == "percent":
        body = body.removesuffix("%") + " pts"
    if (unit in ("count", "users") or _is_money(unit)) and previous:
        body += f" ({'+' if change > 0 else MINUS}{abs(change) / abs(previous) * 100:.1f}%)"
    return f"{arrow} {body}"


def _change(result: Result) -> float | None:
    """``Result.change``, or ``None`` when either side is missing or not a number."""
    change = result.change
    return change if change is not None and math.isfinite(change) else None


def _tone(result: Result) -> Tone:
    change = _change(result)
    if not change or result.higher_is_better is None:
        return Tone.NEUTRAL
    return Tone.GOOD if (change > 0) == result.higher_is_better else Tone.BAD


def _decimals_for(step: float) -> int:
    """The fewest decimals that show ticks ``step`` apart as distinct numbers."""
    for d in range(7):
        if abs(round(step, d) - step) <= step * 1e-6:
            return d
    return 6


class _UnitFormatter(Formatter):
    """Tick labels in a Result's unit, with one scale and precision for the whole axis."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self._ticks: list[float] = []

    def set_locs(self, locs: list[float]) -> None:
        super().set_locs(locs)
        self._ticks = [float(v) for v in locs]

    def __call__(self, x: float, pos: int | None = None) -> str:
        if self.unit == "minutes":
            return format_duration(x)
        locs = sorted(v for v in self._ticks if math.isfinite(v)) or [x]
        steps = np.diff(locs)
        step = float(np.min(steps)) if len(steps) else max(abs(x), 1.0)
        # The largest scale the step is a whole multiple of: 0, 200, 400 stay plain,
        # 0, 20k, 40k get a suffix, and every label has the same precision.
        div, suffix = next(((d, s) for d, s in _SCALES if step >= d), (1.0, ""))
        decimals = _decimals_for(step / div) if step > 0 else 0
        body = f"{abs(x) / div:,.{decimals}f}"
        if float(body.replace(",", "")) == 0:
            body, suffix = "0", ""
        sign = MINUS if x < 0 and body != "0" else ""
        if self.unit == "percent":
            return f"{sign}{body}{suffix}%"
        if _is_money(self.unit):
            return f"{sign}{_money_prefix(self.unit)}{body}{suffix}"
        return f"{sign}{body}{suffix}"


class _DurationLocator(Locator):
    """Ticks at whole minutes, hours or days, so that labels read "30m", "2h", "3d"."""

    _STEPS: tuple[int, ...] = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720)
    _STEPS += tuple(1440 * d for d in (1, 2, 3, 5, 7, 14, 28))

    def __init__(self, nbins: int = 6) -> None:
        self.nbins = nbins

    def __call__(self) -> Sequence[float]:
        assert self.axis is not None, "a locator is called once set on an axis"
        vmin, vmax = self.axis.get_view_interval()
        return self.tick_values(vmin, vmax)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        span = max(vmax - vmin, 1e-9)
        step: float | None = next((s for s in self._STEPS if span / s <= self.nbins), None)
        if step is None:  # months or more: nice numbers of days
            days = MaxNLocator(self.nbins, steps=[1, 2, 5, 10]).tick_values(
                vmin / 1440, vmax / 1440
            )
            step = max(float(days[1] - days[0]) * 1440, 1440.0)
        start = math.ceil(vmin / step - 1e-9) * step
        return list(np.arange(start, vmax + step * 1e-9, step))


def _unit_label(unit: str) -> str:
    if _is_money(unit):
        return unit
    return {"minutes": "time", "percent": "percent"}.get(unit, unit)


# ---------------------------------------------------------------------------------------
# Series → arrays


@dataclass(frozen=True)
class _Series:
    x: np.ndarray  # matplotlib date numbers (days) when is_time, else 0..n-1
    y: np.ndarray  # float, NaN for gaps
    keys: tuple[str, ...]
    is_time: bool
    width: float  # one bucket, in x units

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.y)


def _num(value: Any) -> float:
    """A value from a series or extra as a float; None/NaN/non-numbers are NaN (gaps)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        return UTC


# "2026-11-01", "2026-W45", "2026-11": bucket keys when a Point has no start
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^\d{4}-W\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _key_start(key: str, tz: tzinfo) -> datetime | None:
    try:
        if _DAY.match(key):
            d = date.fromisoformat(key)
        elif _WEEK.match(key):
            d = datetime.strptime(key + "-1", "%G-W%V-%u").date()
        elif _MONTH.match(key):
            d = date.fromisoformat(key + "-01")
        else:
            return None
    except ValueError:
        return None
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _series(points: Sequence[Point], tz: tzinfo, values: Sequence[float] | None = None) -> _Series:
    y = np.array([_num(p.value) for p in points] if values is None else values, dtype=float)
    keys = tuple(p.key for p in points)
    starts = [p.start or _key_start(p.key, tz) for p in points]
    if points and all(s is not None for s in starts):
        x = mdates.date2num([s.astimezone(UTC) for s in starts])  # type: ignore[union-attr]
        spans = [(p.end - p.start).total_seconds() / 86400 for p in points if p.start and p.end]
        if spans:
            width = float(np.median(spans))
        elif len(x) > 1:
            width = float(np.median(np.diff(x)))
        else:
            width = 1.0
        return _Series(x, y, keys, True, max(width, 1 / 1440))
    return _Series(np.arange(len(points), dtype=float), y, keys, False, 1.0)


def _extra(points: Sequence[Point], name: str) -> np.ndarray:
    return np.array([_num(p.extra.get(name)) for p in points], dtype=float)


# ---------------------------------------------------------------------------------------
# Words: title, window, alt text

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(d: datetime | date, *, year: bool = True) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]}" + (f" {d.year}" if year else "")


def _window(result: Result, window_label: str | None) -> str:
    if window_label:
        return window_label
    tz = _zone(result.timezone)
    start = result.start.astimezone(tz)
    last = (result.end - timedelta(microseconds=1)).astimezone(tz)
    if last <= start or start.date() == last.date():
        return _day(start)
    return f"{_day(start, year=start.year != last.year)} – {_day(last)}"


def _title(result: Result, window_label: str | None) -> str:
    return f"{result.title} · {_window(result, window_label)} · {result.timezone}"


def _subtitle(result: Result, *extra: str) -> str:
    parts = []
    if result.value is not None:
        parts.append(f"{format_value(result.value, result.unit)} overall (n={result.n:,})")
    change = _change(result)
    if change is not None:
        parts.append(f"{_format_change(change, result.unit, result.previous)} vs previous")
    if result.grain:
        parts.append(f"by {result.grain}")
    elif result.dimension:
        parts.append(f"by {result.dimension}")
    parts.extend(e for e in extra if e)
    return " · ".join(parts)


def _bucket_name(s: _Series, i: int, tz: tzinfo, grain: str | None) -> str:
    if not s.is_time:
        return s.keys[i]
    if grain is None:  # from the bucket's own length
        grain = "month" if s.width >= 28 else "week" if s.width >= 7 else None
    when = mdates.num2date(s.x[i], tz=tz)
    if grain == "month":
        return f"{_MONTHS[when.month - 1]} {when.year}"
    if grain == "week":
        return f"the week of {_day(when)}"
    if s.width < 1:
        return f"{_day(when)} {when:%H:%M}"
    return _day(when)


def _trend(y: np.ndarray) -> str:
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return ""
    idx = np.nonzero(ok)[0].astype(float)
    vals = y[ok]
    slope = float(np.polyfit(idx, vals, 1)[0])
    rise = slope * (idx[-1] - idx[0])
    scale = max(float(np.ptp(vals)), float(np.mean(np.abs(vals))), 1e-12)
    if abs(rise) < 0.1 * scale:
        return "flat"
    return "rising" if rise > 0 else "falling"


def _describe_series(
    result: Result, s: _Series, what: str, tz: tzinfo, values: np.ndarray | None = None
) -> list[str]:
    """Sentences on the latest value, the lowest and highest, and the trend."""
    y = s.y if values is None else values
    ok = np.nonzero(np.isfinite(y))[0]
    if not len(ok):
        return [f"No {what} in this window."]
    unit = result.unit

    def at(i: int) -> str:
        return f"{format_value(float(y[i]), unit)} ({_bucket_name(s, int(i), tz, result.grain)})"

    last = int(ok[-1])
    lo = int(ok[np.argmin(y[ok])])
    hi = int(ok[np.argmax(y[ok])])
    out = [f"Latest {what} {at(last)}."]
    if len(ok) > 1:
        out.append(f"Lowest {at(lo)}, highest {at(hi)}.")
        trend = _trend(y)
        if trend:
            first = int(ok[0])
            out.append(
                f"Trend {trend}, from {format_value(float(y[first]), unit)} "
                f"to {format_value(float(y[last]), unit)}."
            )
    gaps = len(y) - len(ok)
    if gaps:
        verb = "has" if gaps == 1 else "have"
        out.append(f"{gaps} of {len(y)} {_plural(result.grain or 'bucket')} {verb} no data.")
    return out


def _plural(word: str) -> str:
    return word + "s"


def _count(n: int, word: str) -> str:
    """1 customer, 2 customers."""
    return f"{n:,} {word if n == 1 else _plural(word)}"


def _alt(result: Result, kind_phrase: str, window_label: str | None, sentences: list[str]) -> str:
    head = f"{kind_phrase} of {result.title}, {_window(result, window_label)}, {result.timezone}."
    if result.value is not None:
        head += f" Overall {format_value(result.value, result.unit)} (n={result.n:,})"
        if _change(result) is not None:
            head += f", {_words_change(result)}"
        head += "."
    return " ".join([head, *sentences])


def _words_change(result: Result) -> str:
    change = _change(result) or 0.0
    if change == 0:
        return "unchanged from the previous period"
    direction = "up" if change > 0 else "down"
    amount = format_value(abs(change), result.unit)
    if result.unit == "percent":
        amount = amount.removesuffix("%") + " percentage points"
    return (
        f"{direction} {amount} from "
        f"{format_value(result.previous, result.unit)} in the previous period"
    )


def _threshold_words(threshold: float | None, y: np.ndarray, unit: str, grain: str | None) -> str:
    if threshold is None or not math.isfinite(threshold):
        return ""
    above = int(np.sum(np.isfinite(y) & (y > threshold)))
    return (
        f"Alert threshold {format_value(threshold, unit)} shown dashed; "
        f"{_count(above, grain or 'bucket')} above it."
    )


def _safe(text: str) -> str:
    """Text drawn as is: an even number of "$" would otherwise switch on mathtext."""
    return text.replace("$", r"\$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def _filename(result: Result, kind: str) -> str:
    end = (result.end - timedelta(microseconds=1)).astimezone(_zone(result.timezone))
    return f"{_slug(result.kpi)}-{kind}-{end.date().isoformat()}.png"


# ---------------------------------------------------------------------------------------
# Figure scaffolding


def _figure(height_in: float = HEIGHT_IN) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, facecolor=CARD)
    # A hairline border: the white card stays distinct on a white (light theme) channel.
    fig.patch.set_edgecolor(BORDER)
    fig.patch.set_linewidth(1.5)
    FigureCanvasAgg(fig)
    return fig


def _text(fig: Figure, x: float, y: float, s: str, **kw: Any) -> Any:
    kw.setdefault("color", INK)
    kw.setdefault("fontfamily", FONT)
    return fig.text(x, y, _safe(s), **kw)


def _fit(fig: Figure, text: Any, max_width_px: float, min_size: float) -> None:
    """Shrink, then cut with an ellipsis, a text that would run off the card."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    while text.get_window_extent(renderer).width > max_width_px:
        size = text.get_fontsize()
        if size > min_size:
            text.set_fontsize(size - 0.5)
            continue
        s = text.get_text()
        if len(s) <= 4:
            return
        text.set_text(s[: max(len(s) - max(2, len(s) // 12), 3)].rstrip(" ·…") + "…")


def _header(fig: Figure, title: str, subtitle: str, *, layout: bool = True) -> float:
    """Title and subtitle at the top left; returns the figure fraction they take."""
    h_in = fig.get_figheight()
    margin = 0.16
    t = _text(
        fig,
        margin / WIDTH_IN,
        1 - 0.13 / h_in,
        title,
        fontsize=TITLE_PT,
        fontweight="bold",
        va="top",
        ha="left",
    )
    _fit(fig, t, (WIDTH_IN - 2 * margin) * DPI, 10.5)
    used = 0.45
    if subtitle:
        st = _text(
            fig,
            margin / WIDTH_IN,
            1 - 0.46 / h_in,
            subtitle,
            fontsize=SUBTITLE_PT,
            color=MUTED,
            va="top",
            ha="left",
        )
        _fit(fig, st, (WIDTH_IN - 2 * margin) * DPI, 8.5)
        used = 0.74
    frac = used / h_in
    if layout:
        fig.set_layout_engine(
            ConstrainedLayoutEngine(rect=(0.01, 0.01, 0.98, 1 - frac - 0.01), h_pad=0.04)
        )
    return frac


def _style_axes(ax: Axes, *, ygrid: bool = True, xgrid: bool = False) -> None:
    ax.set_facecolor(CARD)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(AXIS)
    ax.tick_params(labelsize=TICK_PT, labelfontfamily=FONT, colors=MUTED, labelcolor=INK, length=3)
    ax.tick_params(axis="y", length=0)
    ax.grid(False)
    if ygrid:
        ax.yaxis.grid(True, color=GRID, linewidth=0.8)
    if xgrid:
        ax.xaxis.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def _ylabel(ax: Axes, text: str, color: str = MUTED) -> None:
    ax.set_ylabel(_safe(text), fontsize=LABEL_PT, fontfamily=FONT, color=color)


def _unit_axis(ax: Axes, unit: str, axis: str = "y") -> None:
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(_UnitFormatter(unit))
    if unit == "minutes":
        target.set_major_locator(_DurationLocator())
    else:
        whole = unit in ("count", "users")
        target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10], integer=whole))


def _time_axis(ax: Axes, s: _Series, tz: tzinfo, *, pad: float) -> None:
    if s.is_time:
        locator = mdates.AutoDateLocator(tz=tz, minticks=3, maxticks=8)
        formatter = mdates.ConciseDateFormatter(
            locator,
            tz=tz,
            formats=["%Y", "%b", "%d", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M"],
            offset_formats=["", "%Y", "%b %Y", "%d %b %Y", "%d %b %Y", "%d %b %Y %H:%M"],
        )
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(formatter)
        ax.xaxis.get_offset_text().set(fontfamily=FONT, fontsize=TICK_PT, color=MUTED)
    else:
        keys = s.keys
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
        ax.xaxis.set_major_formatter(
            lambda v, _pos: _safe(_short(keys[int(v)], 12)) if 0 <= v < len(keys) else ""
        )
    lo, hi = float(s.x.min()), float(s.x.max())
    if len(s.x) == 1:  # one bucket: name it, instead of hour ticks around it
        ax.xaxis.set_major_locator(FixedLocator([lo]))
        ax.xaxis.set_major_formatter(lambda _v, _p: _safe(_bucket_name(s, 0, tz, None)))
        pad = max(pad, s.width * 1.5)
    ax.set_xlim(lo - pad, hi + pad)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _y_limits(
    ax: Axes, values: Sequence[np.ndarray], *, zero: bool, threshold: float | None = None
) -> None:
    """Limits that hold every finite value (and the threshold), stay sane when all values
    are equal or zero, and start at zero where asked (bars, areas, durations)."""
    finite = [v[np.isfinite(v)] for v in values]
    data = np.concatenate(finite) if finite else np.array([])
    if threshold is not None and math.isfinite(threshold):
        data = np.append(data, threshold)
    if not len(data):
        ax.set_ylim(0, 1)
        return
    lo, hi = float(data.min()), float(data.max())
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo
    if span <= max(abs(hi), abs(lo), 1.0) * 1e-9:  # all equal (with zero: all zero)
        half = max(abs(hi) * 0.1, 1.0)
        lo, hi = (0.0, 2 * half) if zero else (lo - half, hi + half)
        span = hi - lo
    pad = span * 0.06
    ax.set_ylim(lo if zero and lo == 0 else lo - pad, hi if zero and hi == 0 else hi + pad)


def _note_if_all_zero(ax: Axes, y: np.ndarray) -> None:
    """An empty-looking plot of zeros is a finding, not a failure: say so."""
    ok = np.isfinite(y)
    if ok.any() and not np.any(y[ok]):
        ax.text(
            0.5,
            0.5,
            "Every value in this window is zero",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=SUBTITLE_PT,
            fontfamily=FONT,
            color=MUTED,
        )


def _marker_mask(y: np.ndarray) -> np.ndarray:
    """Points a plain line would not show: isolated between gaps."""
    ok = np.isfinite(y)
    prev_ok = np.r_[False, ok[:-1]]
    next_ok = np.r_[ok[1:], False]
    return ok & ~prev_ok & ~next_ok


def _plot_line(
    ax: Axes,
    s: _Series,
    y: np.ndarray,
    *,
    color: str,
    label: str,
    lw: float = 2.2,
    zorder: float = 3,
) -> None:
    dense = len(y) > 45
    if dense:  # a month and more: no markers; years of days: a hairline, not a blob
        lw = lw * (0.75 if len(y) <= 400 else 0.5)
    ax.plot(
        s.x,
        y,
        color=color,
        linewidth=lw,
        label=_safe(label),
        marker=None if dense else "o",
        markersize=3.5,
        solid_capstyle="round",
        zorder=zorder,
    )
    lonely = _marker_mask(y)
    if dense and lonely.any():
        ax.plot(s.x[lonely], y[lonely], "o", color=color, markersize=3, zorder=zorder)


def _label_last(ax: Axes, s: _Series, y: np.ndarray, unit: str, color: str) -> None:
    ok = np.nonzero(np.isfinite(y))[0]
    if not len(ok):
        return
    i = int(ok[-1])
    ax.annotate(
        _safe(format_value(float(y[i]), unit)),
        (s.x[i], y[i]),
        xytext=(5, 0),
        textcoords="offset points",
        va="center",
        ha="left",
        fontsize=LABEL_PT,
        fontweight="bold",
        fontfamily=FONT,
        color=color,
        zorder=6,
        bbox={"boxstyle": "round,pad=0.15", "fc": CARD, "ec": "none", "alpha": 0.85},
    )


def _previous_values(result: Result, length: int) -> np.ndarray | None:
    """The comparison period's values, bucket i of it matched to bucket i of this one;
    ``None`` when it has none."""
    prev = result.previous_series
    if not prev or not length:
        return None
    n = min(len(prev), length)
    y = np.full(length, np.nan)
    y[:n] = [_num(p.value) for p in prev[:n]]
    return y if np.isfinite(y).any() else None


def _previous(ax: Axes, s: _Series, result: Result) -> np.ndarray | None:
    """The comparison period as a faint line behind this one."""
    y = _previous_values(result, len(s.x))
    if y is None:
        return None
    label = "Same period last year" if result.comparison == "last_year" else "Previous period"
    ax.plot(s.x, y, color=GREY, linewidth=1.4, alpha=0.9, label=label, zorder=2)
    return y


def _threshold(ax: Axes, threshold: float | None, unit: str, *, vertical: bool = False) -> None:
    if threshold is None or not math.isfinite(threshold):
        return
    label = _safe(f"Alert at {format_value(threshold, unit)}")
    draw = ax.axvline if vertical else ax.axhline
    draw(threshold, color=VERMILLION, linestyle=(0, (5, 3)), linewidth=1.4, label=label, zorder=4)


def _legend(ax: Axes, handles: Sequence[Any] | None = None, ncols: int | None = None) -> None:
    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    labels = [_short(str(h.get_label()), 30) for h in handles]
    if ncols is None:  # one row when it fits the card (DejaVu: ~0.6 em a character)
        width_pt = sum(len(label) * 0.6 * LEGEND_PT + 2.8 * LEGEND_PT for label in labels)
        ncols = len(handles) if width_pt < (WIDTH_IN - 1.0) * 72 else math.ceil(len(handles) / 2)
    ax.legend(
        handles=handles,
        labels=labels,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=ncols,
        frameon=False,
        prop={"family": FONT, "size": LEGEND_PT},
        labelcolor=INK,
        handlelength=1.6,
        columnspacing=1.2,
        borderaxespad=0.3,
    )


def _bars(
    ax: Axes,
    x: np.ndarray,
    bottom: np.ndarray,
    height: np.ndarray,
    width: float,
    color: str,
    label: str | None = None,
    **kw: Any,
) -> PolyCollection:
    """Vertical bars as one collection: thousands of buckets cost one artist."""
    ok = np.isfinite(height) & np.isfinite(bottom)
    x, b, h = x[ok], bottom[ok], height[ok]
    left, right = x - width / 2, x + width / 2
    verts = np.stack(
        [np.c_[left, b], np.c_[left, b + h], np.c_[right, b + h], np.c_[right, b]], axis=1
    )
    coll = PolyCollection(
        list(verts), facecolors=color, edgecolors="none", linewidths=0, label=label, **kw
    )
    ax.add_collection(coll, autolim=False)
    return coll


def _bar_width(s: _Series) -> float:
    return s.width * (0.8 if len(s.x) <= 120 else 1.0)


def _png(fig: Figure) -> bytes:
    buf = BytesIO()
    # print_png, not savefig: savefig.* rcParams (transparent, bbox) must not change the card.
    fig.canvas.print_png(buf, metadata={"Software": None})  # type: ignore[attr-defined]
    return buf.getvalue()


def _chart(fig: Figure, alt: str, filename: str) -> Chart:
    return Chart(png=_png(fig), alt_text=alt, filename=filename)


# ---------------------------------------------------------------------------------------
# Kinds


def no_data_chart(result: Result, *, window_label: str | None = None) -> Chart:
    """A card that says "No data in this window" under the usual title."""
    fig = _figure()
    _header(fig, _title(result, window_label), "", layout=False)
    _text(
        fig, 0.5, 0.47, "No data in this window", fontsize=18, color=MUTED, ha="center", va="center"
    )
    _text(
        fig,
        0.5,
        0.36,
        "Nothing was recorded for this KPI between these dates.",
        fontsize=SUBTITLE_PT,
        color=MUTED,
        ha="center",
        va="center",
    )
    window = _window(result, window_label)
    alt = f"{result.title}, {window}, {result.timezone}: no data in this window."
    return _chart(fig, alt, _filename(result, "no-data"))


def _time_card(result: Result, window_label: str | None) -> tuple[Figure, Axes]:
    """The card every single-axes time chart is drawn on: title, subtitle, one axes."""
    fig = _figure()
    _header(fig, _title(result, window_label), _subtitle(result))
    ax = fig.add_subplot()
    _style_axes(ax)
    return fig, ax


def _finish_time_axes(
    ax: Axes,
    s: _Series,
    result: Result,
    tz: tzinfo,
    *,
    values: Sequence[np.ndarray],
    zero: bool,
    threshold: float | None,
    bars: bool = False,
    handles: Sequence[Any] = (),
) -> None:
    """Threshold, axes in the KPI's unit, limits and the legend (``handles`` first)."""
    _threshold(ax, threshold, result.unit)
    _note_if_all_zero(ax, np.concatenate(values))
    pad = s.width * 0.6 if bars else max(s.width * 0.5, (s.x.max() - s.x.min()) * 0.01)
    _time_axis(ax, s, tz, pad=pad)
    _y_limits(ax, values, zero=zero, threshold=threshold)
    _unit_axis(ax, result.unit)
    _ylabel(ax, _unit_label(result.unit))
    _legend(ax, [*handles, *ax.get_legend_handles_labels()[0]])


def line_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """The KPI over time, the previous period faint behind it, an alert threshold dashed."""
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    if not s.valid.any():
        return no_data_chart(result, window_label=window_label)
    fig, ax = _time_card(result, window_label)
    prev = _previous(ax, s, result)
    _plot_line(ax, s, s.y, color=BLUE, label=result.title)
    _label_last(ax, s, s.y, result.unit, BLUE)
    values = [s.y] if prev is None else [s.y, prev]
    zero = result.unit == "minutes"
    _finish_time_axes(ax, s, result, tz, values=values, zero=zero, threshold=threshold)
    sentences = _describe_series(result, s, "value", tz)
    if prev is not None:
        sentences.append("The previous period is drawn as a faint grey line for comparison.")
    sentences.append(_threshold_words(threshold, s.y, result.unit, result.grain))
    alt = _alt(result, "Line chart", window_label, [x for x in sentences if x])
    return _chart(fig, alt, _filename(result, "line"))


def backlog_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """Unsolved tickets per bucket as an area."""
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    if not s.valid.any():
        return no_data_chart(result, window_label=window_label)
    fig, ax = _time_card(result, window_label)
    prev = _previous(ax, s, result)
    ax.fill_between(s.x, 0, s.y, color=SKY, alpha=0.35, linewidth=0, zorder=2)
    _plot_line(ax, s, s.y, color=BLUE, label=result.title, lw=1.8)
    _label_last(ax, s, s.y, result.unit, BLUE)
    values = [s.y] if prev is None else [s.y, prev]
    _finish_time_axes(ax, s, result, tz, values=values, zero=True, threshold=threshold)
    sentences = _describe_series(result, s, "backlog", tz)
    sentences.append(_threshold_words(threshold, s.y, result.unit, result.grain))
    alt = _alt(result, "Area chart", window_label, [x for x in sentences if x])
    return _chart(fig, alt, _filename(result, "backlog"))


def volume_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """Counts per time bucket as bars (ticket volume); split by a dimension → bar_chart."""
    if result.dimension is not None:
        return bar_chart(result, threshold=threshold, window_label=window_label)
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    if not s.valid.any():
        return no_data_chart(result, window_label=window_label)
    fig, ax = _time_card(result, window_label)
    _bars(ax, s.x, np.zeros_like(s.y), s.y, _bar_width(s), BLUE, label=result.title, zorder=2)
    prev = _previous(ax, s, result)
    values = [s.y] if prev is None else [s.y, prev]
    _finish_time_axes(ax, s, result, tz, values=values, zero=True, threshold=threshold, bars=True)
    sentences = _describe_series(result, s, "count", tz)
    total = float(np.nansum(s.y))
    sentences.insert(0, f"Total {format_value(total, result.unit)}.")
    sentences.append(_threshold_words(threshold, s.y, result.unit, result.grain))
    alt = _alt(result, "Bar chart", window_label, [x for x in sentences if x])
    return _chart(fig, alt, _filename(result, "volume"))


def duration_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """Median response or resolution time with a band up to the 90th percentile."""
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    p90 = _extra(result.series, "p90")
    if not s.valid.any():
        return no_data_chart(result, window_label=window_label)
    fig, ax = _time_card(result, window_label)
    band = np.isfinite(p90) & s.valid
    if band.any():
        ax.fill_between(
            s.x,
            s.y,
            p90,
            where=band,
            interpolate=False,
            color=SKY,
            alpha=0.35,
            linewidth=0,
            label="Median to p90",
            zorder=1,
        )
        ax.plot(s.x, np.where(band, p90, np.nan), color=SKY, linewidth=1.0, zorder=1)
        lonely = band & _marker_mask(np.where(band, p90, np.nan))
        if lonely.any():  # a band one bucket wide has no area: draw it as a bar
            ax.vlines(
                s.x[lonely], s.y[lonely], p90[lonely], color=SKY, alpha=0.6, linewidth=6, zorder=1
            )
    prev = _previous(ax, s, result)
    _plot_line(ax, s, s.y, color=BLUE, label="Median")
    _label_last(ax, s, s.y, result.unit, BLUE)
    values = [s.y, p90] + ([] if prev is None else [prev])
    _finish_time_axes(ax, s, result, tz, values=values, zero=True, threshold=threshold)
    sentences = _describe_series(result, s, "median", tz)
    if band.any():
        i = int(np.nonzero(band)[0][-1])
        latest = format_value(float(p90[i]), result.unit)
        sentences.append(f"The shaded band reaches the 90th percentile, latest {latest}.")
    sentences.append(_threshold_words(threshold, s.y, result.unit, result.grain))
    alt = _alt(result, "Line chart", window_label, [x for x in sentences if x])
    return _chart(fig, alt, _filename(result, "duration"))


_NPS_PARTS = (
    ("promoters", "Promoters", GREEN),
    ("passives", "Passives", PASSIVE),
    ("detractors", "Detractors", VERMILLION),
)


def nps_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """NPS as a line over stacked promoter / passive / detractor response counts."""
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    counts = {key: _extra(result.series, key) for key, _, _ in _NPS_PARTS}
    has_counts = any(np.isfinite(c).any() for c in counts.values())
    if not has_counts:
        return line_chart(result, threshold=threshold, window_label=window_label)
    fig = _figure()
    _header(fig, _title(result, window_label), _subtitle(result, _moe(result)))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    for ax in (top, bottom):
        _style_axes(ax)
    # Score
    prev = _previous(top, s, result)
    top.axhline(0, color=AXIS, linewidth=0.8, zorder=1)
    _plot_line(top, s, s.y, color=BLUE, label="NPS")
    _threshold(top, threshold, result.unit)
    _label_last(top, s, s.y, result.unit, BLUE)
    _y_limits(top, [s.y] if prev is None else [s.y, prev], zero=False, threshold=threshold)
    lo, hi = top.get_ylim()
    if max(lo, -100.0) < min(hi, 100.0):  # NPS lives in −100..100; padding need not leave it
        top.set_ylim(max(lo, -100.0), min(hi, 100.0))
    top.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 5, 10]))
    top.yaxis.set_major_formatter(_UnitFormatter("score"))
    _ylabel(top, "NPS")
    top.tick_params(axis="x", labelbottom=False, length=0)
    # Responses
    w = _bar_width(s)
    base = np.zeros(len(s.x))
    handles: list[Any] = []
    for key, label, colour in _NPS_PARTS:
        h = np.nan_to_num(np.abs(counts[key]))
        _bars(bottom, s.x, base, h, w, colour, zorder=2)
        handles.append(Patch(facecolor=colour, label=label))
        base = base + h
    bottom.set_ylim(0, max(float(base.max()) * 1.08, 1.0))
    bottom.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    bottom.yaxis.set_major_formatter(_UnitFormatter("count"))
    _ylabel(bottom, "responses")
    _time_axis(bottom, s, tz, pad=s.width * 0.6)
    line_handles, _ = top.get_legend_handles_labels()
    _legend(top, [*line_handles, *handles])
    fig.align_ylabels([top, bottom])
    sentences = _describe_series(result, s, "NPS", tz)
    totals = {key: int(np.nansum(np.abs(c))) for key, c in counts.items()}
    sentences.append(
        "Bars below show responses per {}: {:,} promoters, {:,} passives, {:,} detractors.".format(
            result.grain or "bucket", totals["promoters"], totals["passives"], totals["detractors"]
        )
    )
    sentences.append(_threshold_words(threshold, s.y, result.unit, result.grain))
    alt = _alt(result, "Line and stacked bar chart", window_label, [x for x in sentences if x])
    return _chart(fig, alt, _filename(result, "nps"))


def _moe(result: Result) -> str:
    moe = _num(result.extra.get("margin_of_error"))
    return f"±{moe:.0f} margin of error" if math.isfinite(moe) else ""


_MRR_UP = (
    ("new", "New", GREEN),
    ("expansion", "Expansion", SKY),
    ("reactivation", "Reactivation", PURPLE),
)
_MRR_DOWN = (("contraction", "Contraction", ORANGE), ("churn", "Churn", VERMILLION))


def mrr_movements_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """MRR movements as diverging bars (gains up, losses down) with net new MRR as a line."""
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    parts = {key: np.abs(_extra(result.series, key)) for key, _, _ in _MRR_UP + _MRR_DOWN}
    has_parts = any(np.isfinite(v).any() for v in parts.values())
    net = _extra(result.series, "net_new")
    net = np.where(np.isfinite(net), net, s.y)
    if has_parts:
        computed = sum(np.nan_to_num(parts[k]) for k, _, _ in _MRR_UP) - sum(
            np.nan_to_num(parts[k]) for k, _, _ in _MRR_DOWN
        )
        any_part = np.any([np.isfinite(v) for v in parts.values()], axis=0)
        net = np.where(np.isfinite(net), net, np.where(any_part, computed, np.nan))
    if not has_parts and not np.isfinite(net).any():
        return no_data_chart(result, window_label=window_label)
    fig, ax = _time_card(result, window_label)
    w = _bar_width(s)
    up = np.zeros(len(s.x))
    down = np.zeros(len(s.x))
    handles: list[Any] = []
    for key, label, colour in _MRR_UP:
        h = np.nan_to_num(parts[key])
        _bars(ax, s.x, up, h, w, colour, zorder=2)
        up = up + h
        handles.append(Patch(facecolor=colour, label=label))
    for key, label, colour in _MRR_DOWN:
        h = np.nan_to_num(parts[key])
        _bars(ax, s.x, down, -h, w, colour, zorder=2)
        down = down - h
        handles.append(Patch(facecolor=colour, label=label))
    ax.axhline(0, color=INK, linewidth=0.8, zorder=3)
    ns = _Series(s.x, net, s.keys, s.is_time, s.width)
    _plot_line(ax, ns, net, color=INK, label="Net new MRR", lw=1.8, zorder=5)
    _finish_time_axes(
        ax,
        s,
        result,
        tz,
        values=[up, down, net],
        zero=True,
        threshold=threshold,
        bars=True,
        handles=handles,
    )
    sentences = _describe_series(result, ns, "net new MRR", tz, values=net)
    totals = {key: float(np.nansum(v)) for key, v in parts.items()}
    sentences.append(
        "Gains drawn up: new {}, expansion {}, reactivation {}; losses drawn down: "
        "contraction {}, churn {}.".format(
            *(format_value(totals[k], result.unit) for k, _, _ in _MRR_UP + _MRR_DOWN)
        )
    )
    alt = _alt(result, "Diverging bar chart", window_label, sentences)
    return _chart(fig, alt, _filename(result, "mrr"))


MAX_BARS = 12
_ADDITIVE_UNITS = ("count",)


def bar_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """One horizontal bar per dimension value, largest first (at most ``MAX_BARS``)."""
    rows = [(p.key, _num(p.value)) for p in result.series]
    rows = [r for r in rows if math.isfinite(r[1])]
    if not rows:
        return no_data_chart(result, window_label=window_label)
    rows.sort(key=lambda r: r[1], reverse=True)
    hidden = rows[MAX_BARS - 1 :] if len(rows) > MAX_BARS else []
    shown = rows[: MAX_BARS - 1] if hidden else rows
    note = ""
    if hidden and result.unit in _ADDITIVE_UNITS:
        shown.append((f"{len(hidden)} others", sum(v for _, v in hidden)))
    elif hidden:
        note = f"{len(hidden)} more not shown"
    previous = {p.key: _num(p.value) for p in result.previous_series}
    fig = _figure()
    _header(fig, _title(result, window_label), _subtitle(result, note))
    ax = fig.add_subplot()
    _style_axes(ax, ygrid=False, xgrid=True)
    ax.tick_params(axis="x", length=0)
    ax.spines["bottom"].set_visible(False)
    y = np.arange(len(shown), dtype=float)
    vals = np.array([v for _, v in shown])
    ax.barh(y, vals, height=0.66, color=BLUE, zorder=2)
    prev = np.array([previous.get(k, math.nan) for k, _ in shown])
    if np.isfinite(prev).any():
        ax.scatter(
            prev, y, marker="|", s=260, linewidths=2.2, color=INK, zorder=3, label="Previous period"
        )
    _threshold(ax, threshold, result.unit, vertical=True)
    _bar_value_limits(ax, [vals, prev], threshold)
    for yi, v, p in zip(y, vals, prev, strict=True):
        end = v if not math.isfinite(p) else (max(v, p) if v >= 0 else min(v, p))
        ax.annotate(
            _safe(format_value(float(v), result.unit)),
            (end, yi),
            xytext=(4 if v >= 0 else -4, 0),
            textcoords="offset points",
            ha="left" if v >= 0 else "right",
            va="center",
            fontsize=TICK_PT,
            fontfamily=FONT,
            color=INK,
            zorder=4,
        )
    ax.set_yticks(y, [_safe(_short(k, 24)) for k, _ in shown])
    ax.invert_yaxis()
    _unit_axis(ax, result.unit, axis="x")
    ax.set_xlabel(_safe(_unit_label(result.unit)), fontsize=LABEL_PT, fontfamily=FONT, color=MUTED)
    _legend(ax)
    parts = [f"{k} {format_value(v, result.unit)}" for k, v in shown]
    sentences = [f"By {result.dimension or 'key'}, largest first: {', '.join(parts)}."]
    if note:
        sentences.append(note.capitalize() + ".")
    if np.isfinite(prev).any():
        sentences.append("Black ticks mark the previous period.")
    alt = _alt(result, "Bar chart", window_label, sentences)
    return _chart(fig, alt, _filename(result, "bars"))


def _bar_value_limits(ax: Axes, values: Sequence[np.ndarray], threshold: float | None) -> None:
    """Horizontal bars: room from zero to the longest bar plus its value label."""
    data = np.concatenate([v[np.isfinite(v)] for v in values])
    if threshold is not None and math.isfinite(threshold):
        data = np.append(data, threshold)
    lo, hi = min(float(data.min()), 0.0), max(float(data.max()), 0.0)
    if hi == lo:
        hi = 1.0
    span = hi - lo
    ax.set_xlim(lo - (span * 0.16 if lo < 0 else 0), hi + (span * 0.16 if hi > 0 else 0))


# Health bands (KPIS.md): red < 50 ≤ yellow < 76 ≤ green
_HEALTH_BANDS = (
    ("Red", 0.0, 50.0, VERMILLION),
    ("Yellow", 50.0, 76.0, YELLOW),
    ("Green", 76.0, 100.0, GREEN),
)
# Bin edges that fall on the band limits, each about 5 points wide.
_HEALTH_EDGES = np.unique(
    np.concatenate([np.linspace(0, 50, 11), np.linspace(50, 76, 6), np.linspace(76, 100, 6)])
)
LEAST_HEALTHY = 6


def _customer_scores(result: Result) -> list[tuple[str, float]]:
    raw = result.extra.get("customers")
    out: list[tuple[str, float]] = []
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        for item in raw:
            if isinstance(item, Mapping):
                out.append((str(item.get("name", "?")), _num(item.get("score"))))
    elif result.dimension == "customer":
        out = [(p.key, _num(p.value)) for p in result.series]
    return out


def _band(score: float) -> tuple[str, str]:
    for name, lo, hi, colour in _HEALTH_BANDS:
        if lo <= score < hi:
            return name, colour
    return _HEALTH_BANDS[-1][0], _HEALTH_BANDS[-1][3]


def health_chart(
    result: Result, *, threshold: float | None = None, window_label: str | None = None
) -> Chart:
    """Customer health scores as a histogram in red / yellow / green bands, with the least
    healthy customers named beside it. ``threshold`` is drawn as a dashed vertical line."""
    everyone = _customer_scores(result)
    scored = [(n, min(max(v, 0.0), 100.0)) for n, v in everyone if math.isfinite(v)]
    if not scored:
        return no_data_chart(result, window_label=window_label)
    scores = np.array([v for _, v in scored])
    counts, _ = np.histogram(scores, bins=_HEALTH_EDGES)
    per_band = {
        name: int(np.sum((scores >= lo) & ((scores < hi) | (hi == 100))))
        for name, lo, hi, _ in _HEALTH_BANDS
    }
    unscored = len(everyone) - len(scored)
    fig = _figure()
    subtitle = " · ".join(
        x
        for x in (
            _count(len(scored), "customer"),
            f"median {np.median(scores):.0f}",
            f"{unscored:,} not scored" if unscored else "",
        )
        if x
    )
    _header(fig, _title(result, window_label), subtitle)
    ax, side = fig.subplots(1, 2, width_ratios=[2.3, 1])
    _style_axes(ax)
    for _name, lo, hi, colour in _HEALTH_BANDS:
        ax.axvspan(lo, hi, color=colour, alpha=0.08, linewidth=0, zorder=0)
    lefts, rights = _HEALTH_EDGES[:-1], _HEALTH_EDGES[1:]
    colours = [_band((lo + hi) / 2)[1] for lo, hi in zip(lefts, rights, strict=True)]
    ax.bar(
        lefts,
        counts,
        width=(rights - lefts) * 0.92,
        align="edge",
        color=colours,
        edgecolor=[_darker(c) for c in colours],
        linewidth=0.6,
        zorder=2,
    )
    _threshold(ax, threshold, "score", vertical=True)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 25, 50, 76, 100])
    ax.xaxis.set_major_formatter(lambda v, _p: f"{v:.0f}")
    ax.set_ylim(0, max(float(counts.max()) * 1.12, 1.0))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.yaxis.set_major_formatter(_UnitFormatter("count"))
    _ylabel(ax, "customers")
    ax.set_xlabel("health score (0–100)", fontsize=LABEL_PT, fontfamily=FONT, color=MUTED)
    handles = [
        Patch(facecolor=c, edgecolor=_darker(c), label=f"{n} {_band_range(lo, hi)}: {k:,}")
        for (n, lo, hi, c), k in zip(_HEALTH_BANDS, per_band.values(), strict=True)
    ]
    _legend(ax, handles)
    # The least healthy, by name
    side.axis("off")
    worst = sorted(scored, key=lambda r: (r[1], r[0]))[:LEAST_HEALTHY]
    side.text(
        0,
        1,
        "Least healthy",
        transform=side.transAxes,
        fontsize=LABEL_PT,
        fontweight="bold",
        fontfamily=FONT,
        color=INK,
        va="top",
    )
    for i, (name, score) in enumerate(worst):
        yy = 0.83 - i * 0.135
        colour = _band(score)[1]
        side.scatter(
            [0.03],
            [yy],
            s=40,
            marker="s",
            color=colour,
            edgecolors=_darker(colour),
            linewidths=0.6,
            transform=side.transAxes,
            clip_on=False,
        )
        side.text(
            0.1,
            yy,
            _safe(_short(name, 20)),
            transform=side.transAxes,
            fontsize=TICK_PT,
            fontfamily=FONT,
            color=INK,
            va="center",
        )
        side.text(
            1.0,
            yy,
            f"{score:.0f}",
            transform=side.transAxes,
            fontsize=TICK_PT,
            fontfamily=FONT,
            color=INK,
            va="center",
            ha="right",
            fontweight="bold",
        )
    alt_names = ", ".join(f"{n} ({v:.0f})" for n, v in worst)
    sentences = [
        f"{_count(len(scored), 'customer')} scored, median {np.median(scores):.0f}, "
        f"lowest {scores.min():.0f}, highest {scores.max():.0f}.",
        "Red (below 50): {Red:,}; yellow (50 to 75): {Yellow:,}; green (76 and above): "
        "{Green:,}.".format(**per_band),
        f"Least healthy: {alt_names}.",
    ]
    if unscored:
        has = "has" if unscored == 1 else "have"
        sentences.append(f"{_count(unscored, 'customer')} {has} no score.")
    if threshold is not None and math.isfinite(threshold):
        below = int(np.sum(scores < threshold))
        sentences.append(f"Alert threshold {threshold:.0f} shown dashed; {below:,} below it.")
    alt = _alt(result, "Histogram", window_label, sentences)
    return _chart(fig, alt, _filename(result, "health"))


def _band_range(lo: float, hi: float) -> str:
    if lo == 0:
        return f"<{hi:.0f}"
    if hi == 100:
        return f"≥{lo:.0f}"
    return f"{lo:.0f}–{hi - 1:.0f}"


def _darker(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#{:02X}{:02X}{:02X}".format(*(int(c * 0.7) for c in (r, g, b)))


# ---------------------------------------------------------------------------------------
# Digest card

MAX_SPARKLINES = 12


def sparkline_grid(results: Sequence[Result], *, title: str, subtitle: str | None = None) -> Chart:
    """Several KPIs on one card: each with its title, current value, change and a sparkline
    (two columns; at most ``MAX_SPARKLINES``, the rest named as left out)."""
    shown = list(results[:MAX_SPARKLINES])
    left_out = len(results) - len(shown)
    cols = 1 if len(shown) <= 1 else 2
    rows = max(1, math.ceil(len(shown) / cols))
    head_in, cell_in = (0.72 if subtitle else 0.5), 1.0
    foot_in = 0.3 if left_out or any(r.previous_series for r in shown) else 0.1
    height = head_in + rows * cell_in + foot_in
    fig = _figure(height)
    _header(fig, title, subtitle or "", layout=False)
    alt_parts: list[str] = []
    if not shown:
        _text(fig, 0.5, 0.4, "No data in this window", fontsize=14, color=MUTED, ha="center")
        return _chart(fig, f"{title}: no KPIs to show.", f"{_slug(title)}.png")
    margin, gap = 0.16, 0.25
    cell_w = (WIDTH_IN - 2 * margin - gap * (cols - 1)) / cols
    for i, result in enumerate(shown):
        r, c = divmod(i, cols)
        x0 = margin + c * (cell_w + gap)
        top = height - head_in - r * cell_in
        if r > 0:  # a hairline between rows
            fig.add_artist(
                Line2D(
                    [x0 / WIDTH_IN, (x0 + cell_w) / WIDTH_IN],
                    [top / height + 0.04 / height] * 2,
                    color=GRID,
                    linewidth=0.8,
                )
            )
        alt_parts.append(_sparkline_cell(fig, result, x0, top, cell_w, height))
    notes = []
    if any(r.previous_series for r in shown):
        notes.append("Grey lines: the previous period.")
    if left_out:
        notes.append(f"+{left_out} more KPIs not shown.")
    if notes:
        _text(
            fig,
            margin / WIDTH_IN,
            0.08 / height,
            "  ".join(notes),
            fontsize=NOTE_PT,
            color=MUTED,
            va="bottom",
        )
    alt = f"{title}. {len(shown)} KPIs: " + " ".join(alt_parts)
    if left_out:
        alt += f" {left_out} more not shown."
    return _chart(fig, alt, f"{_slug(title)}.png")


def _sparkline_cell(
    fig: Figure, result: Result, x0: float, top: float, width: float, fig_h: float
) -> str:
    """Draw one KPI cell with its top-left corner at (x0, top) inches; return its alt text."""
    W, H = WIDTH_IN, fig_h
    text_w = width * 0.46
    name = _text(
        fig, x0 / W, (top - 0.08) / H, result.title, fontsize=LABEL_PT, fontweight="bold", va="top"
    )
    _fit(fig, name, text_w * DPI, LABEL_PT)
    value = format_value(result.value, result.unit)
    _text(
        fig,
        x0 / W,
        (top - 0.34) / H,
        value if result.value is not None else "No data",
        fontsize=17 if result.value is not None else 12,
        color=INK if result.value is not None else MUTED,
        va="top",
    )
    change = _change(result)
    words = f"{result.title}: {value}"
    if change is not None:
        tone = _tone(result)
        label = f"{_format_change(change, result.unit, result.previous)} vs prev."
        t = _text(
            fig,
            x0 / W,
            (top - 0.72) / H,
            label,
            fontsize=NOTE_PT,
            color=TONE_COLOURS[tone],
            va="top",
        )
        _fit(fig, t, text_w * DPI, NOTE_PT)
        words += f", {_words_change(result)}"
        if tone is not Tone.NEUTRAL:
            words += f" ({tone.value})"
    tz = _zone(result.timezone)
    s = _series(result.series, tz)
    if s.is_time and s.valid.any():
        ax = fig.add_axes(((x0 + width * 0.5) / W, (top - 0.86) / H, width * 0.5 / W, 0.72 / H))
        ax.set_axis_off()
        ax.set_facecolor(CARD)
        prev = _previous_values(result, len(s.x))
        if prev is not None:
            ax.plot(s.x, prev, color=GREY, linewidth=1.0)
        ax.plot(s.x, s.y, color=BLUE, linewidth=1.6, solid_capstyle="round")
        ok = np.nonzero(s.valid)[0]
        ax.plot(s.x[ok[-1]], s.y[ok[-1]], "o", color=BLUE, markersize=3.5, clip_on=False)
        lonely = _marker_mask(s.y)
        if lonely.any():
            ax.plot(s.x[lonely], s.y[lonely], "o", color=BLUE, markersize=2.5)
        _y_limits(ax, [s.y] if prev is None else [s.y, prev], zero=False)
        if len(s.x) == 1:
            ax.set_xlim(s.x[0] - 1, s.x[0] + 1)
        else:  # room for the end dot
            ax.set_xlim(s.x.min(), s.x.max() + (s.x.max() - s.x.min()) * 0.02)
        trend = _trend(s.y)
        if trend:
            words += f", trend {trend}"
    return words + "."


_RENDERERS: Mapping[str, Callable[..., Chart]] = MappingProxyType(
    {
        "line": line_chart,
        "nps": nps_chart,
        "mrr": mrr_movements_chart,
        "volume": volume_chart,
        "backlog": backlog_chart,
        "duration": duration_chart,
        "bars": bar_chart,
        "health": health_chart,
    }
)

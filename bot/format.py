"""Figures in words: values by unit, changes with arrows and tone, windows, freshness.

Shared by ``/kpi`` answers, digests and alerts so that a figure reads the same everywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.replies import Tone
from metrics.result import Result

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "PLN": "zł "}


def duration(minutes: float) -> str:
    """45 → "45m", 135 → "2h 15m", 4560 → "3d 4h"."""
    sign = "-" if minutes < 0 else ""
    m = abs(minutes)
    if m < 1:
        return f"{sign}{m * 60:.0f}s"
    if m < 60:
        return f"{sign}{m:.0f}m"
    hours, mins = divmod(round(m), 60)
    if hours < 24:
        return f"{sign}{hours}h {mins:02d}m" if mins else f"{sign}{hours}h"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"


def money(amount: float, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    a = abs(amount)
    sign = "-" if amount < 0 else ""
    # Cents only where there are some: "$199 → $499", not "$199.00 → $499.00".
    whole = a >= 1000 or round(a, 2) == round(a)
    text = f"{a / 1e6:.2f}M" if a >= 1e6 else f"{a:,.0f}" if whole else f"{a:,.2f}"
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def value(v: float | None, unit: str) -> str:
    if v is None:
        return "no data"
    if unit == "minutes":
        return duration(v)
    if unit == "percent":
        return f"{v:.1f}%"
    if unit in ("count", "users"):
        return f"{v:,.0f}"
    if unit == "score":
        return f"{v:.1f}" if abs(v) < 10 else f"{v:.0f}"
    if unit == "ratio":
        return f"{v:.2f}"
    if len(unit) == 3 and unit.isalpha():
        return money(v, unit)
    return f"{v:,.2f}"


def change(delta: float, unit: str) -> str:
    """The size of a change, in the unit's own words ("5.2 pts" for percentages)."""
    mag = abs(delta)
    if unit == "percent":
        return f"{mag:.1f} pts"
    if unit == "score":
        return f"{mag:.1f}" if mag < 10 else f"{mag:.0f}"
    return value(mag, unit)


def unchanged(delta: float, unit: str) -> bool:
    """A change too small to show in the unit's own precision reads as no change."""
    return change(delta, unit) == change(0, unit)


def figure(result: Result, v: float | None) -> str:
    """A value of ``result``'s KPI as every reply shows it: NPS with its sign ("+21")."""
    text = value(v, result.unit)
    return "+" + text if result.kpi == "nps" and v is not None and v > 0 else text


def _score_digits(result: Result) -> int:
    # value() shows a score whole from 10 up, to one decimal below.
    pair = (result.value or 0.0, result.previous or 0.0)
    return 1 if min(abs(v) for v in pair) < 10 else 0


def shown_change(result: Result) -> float | None:
    """The change between the figures as they are shown: NPS "+21" after "+31" fell by 10,
    not by the 9.7 between the unrounded scores, which read as an arithmetic slip."""
    if result.value is None or result.previous is None:
        return None
    if result.unit != "score":
        return result.value - result.previous
    digits = _score_digits(result)
    return round(result.value, digits) - round(result.previous, digits)


def change_of(result: Result) -> str:
    """The size of :func:`shown_change`, in the precision of the figures beside it."""
    delta = shown_change(result) or 0.0
    if result.unit == "score" and _score_digits(result) == 0:
        return f"{abs(delta):.0f}"
    return change(delta, result.unit)


def tone(result: Result) -> Tone:
    delta = shown_change(result)
    if delta is None or result.higher_is_better is None or unchanged(delta, result.unit):
        return Tone.NEUTRAL
    return Tone.GOOD if (delta > 0) == result.higher_is_better else Tone.BAD


def comparison(result: Result) -> str | None:
    """ "▲ 4.1 pts vs previous period (76.0%)" or None when nothing was compared."""
    if result.comparison is None:
        return None
    against = "last year" if result.comparison == "last_year" else "previous period"
    if result.previous is None:
        return f"no data in the {against} to compare with"
    delta = shown_change(result)
    assert delta is not None
    before = figure(result, result.previous)
    if unchanged(delta, result.unit):
        return f"= unchanged vs {against} ({before})"
    arrow = "▲" if delta > 0 else "▼"
    return f"{arrow} {change_of(result)} vs {against} ({before})"


def window(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """ "3 Nov – 2 Dec 2026 (Europe/Warsaw)": the window as the team reads it."""
    a = start.astimezone(tz)
    b = (end - timedelta(microseconds=1)).astimezone(tz)
    if a.date() == b.date():
        text = f"{a:%-d %b %Y}, {a:%H:%M}–{(b + timedelta(microseconds=1)):%H:%M}"
    elif a.year == b.year:
        text = f"{a:%-d %b} – {b:%-d %b %Y}"
    else:
        text = f"{a:%-d %b %Y} – {b:%-d %b %Y}"
    return f"{text} ({tz.key})"


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < -90:  # figures pinned (--as-of) before the last sync
        return f"at {then:%Y-%m-%d %H:%M} UTC, after the time asked about"
    if seconds < 90:
        return "just now"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min ago"
    hours = minutes / 60
    if hours < 36:
        return f"{hours:.0f} h ago"
    return f"{hours / 24:.0f} days ago"

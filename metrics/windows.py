"""Time windows and buckets, resolved in the team's IANA time zone.

A :class:`WindowSpec` is what the user wrote (``last 30d``, ``this month``, ``since
2026-10-01``); :func:`resolve` turns it into a :class:`Window`: two aware UTC instants
``[start, end)`` that every SQL query binds through the column types.

Decisions (also in ``metrics/README.md``):

* ``last N h`` is rolling and ends at *now*: it starts N elapsed hours earlier (alerts:
  ``frt p90 last 24h``), whatever the clocks did in between.
* ``last N d|w|m|q|y`` is rolling and ends at *now*: its start is *now* moved back on the
  team's wall clock by N days, weeks, calendar months, quarters (3 months) or years
  (12 months). Months are calendar offsets clamped to the month's end (31 March − 1 month =
  28 February), so ``last 1m`` on 15 March 10:00 starts on 15 February 10:00 local.
  Moving on the wall clock keeps "the same time of day" across a DST change.
* ``today`` and ``this week|month|quarter|year`` start at local midnight of the period's
  first day (ISO weeks start on Monday) and end at *now*. ``yesterday`` and
  ``last week|month|quarter|year`` are complete calendar periods.
* ``since DATE`` starts at local midnight of DATE and ends at *now*; ``between A and B``
  covers the local days A to B inclusive. No window reaches past *now*.
* Buckets (``by day|week|month``) are local calendar days, ISO weeks or months, clipped to
  the window, so they partition it exactly: bucket counts add up to the window's count.
  A local day is 23 or 25 hours long on a DST change, and its bucket says so.
* ``vs previous``: a rolling window is compared with the same span just before it (``last
  30d`` with the 30 days before); a complete calendar period with the period before (last
  month with the month before); a period-to-date window with the same part of the period
  before (this month so far with last month up to the same day and time); ``since`` and
  ``between`` with a window of the same length just before. ``vs last year`` moves the
  window back 12 months on the wall clock.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from metrics.errors import WindowError

# The units of a rolling window and how they are spelled in the canonical text.
ROLLING_UNITS = ("h", "d", "w", "m", "q", "y")
# Calendar periods of ``this …`` and ``last …``.
PERIODS = ("week", "month", "quarter", "year")
GRAINS = ("day", "week", "month")
COMPARISONS = ("previous", "last_year")

MAX_WINDOW_DAYS = 5 * 366  # five years, leap days included
MAX_BUCKETS = 400
# The largest N per rolling unit that stays within MAX_WINDOW_DAYS.
MAX_ROLLING = {
    "h": MAX_WINDOW_DAYS * 24,
    "d": MAX_WINDOW_DAYS,
    "w": MAX_WINDOW_DAYS // 7,
    "m": 60,
    "q": 20,
    "y": 5,
}


@dataclass(frozen=True)
class WindowSpec:
    """A window as the user wrote it, before *now* and a time zone make it concrete.

    ``kind`` is one of ``rolling`` (``last 30d``), ``today``, ``yesterday``, ``this``
    (``this month``), ``last`` (``last month``), ``since`` and ``between``.
    """

    kind: str
    count: int | None = None  # rolling: N
    unit: str | None = None  # rolling: h|d|w|m|q|y; this/last: week|month|quarter|year
    first: date | None = None  # since, between
    last: date | None = None  # between (inclusive)

    def __str__(self) -> str:
        if self.kind == "rolling":
            return f"last {self.count}{self.unit}"
        if self.kind in ("this", "last"):
            return f"{self.kind} {self.unit}"
        if self.kind == "since":
            return f"since {_iso(self.first)}"
        if self.kind == "between":
            return f"between {_iso(self.first)} and {_iso(self.last)}"
        return self.kind

    @property
    def approx_days(self) -> int | None:
        """The window's length in days, where it does not depend on *now* (for bounds)."""
        if self.kind == "rolling":
            assert self.count is not None and self.unit is not None
            if self.unit == "h":
                return -(-self.count // 24)  # whole days, rounded up
            return self.count * {"d": 1, "w": 7, "m": 31, "q": 92, "y": 366}[self.unit]
        if self.kind in ("today", "yesterday"):
            return 1
        if self.kind in ("this", "last"):
            return {"week": 7, "month": 31, "quarter": 92, "year": 366}[str(self.unit)]
        if self.kind == "between":
            assert self.first is not None and self.last is not None
            return (self.last - self.first).days + 1
        return None


DEFAULT_WINDOW = WindowSpec("rolling", 30, "d")


@dataclass(frozen=True)
class Window:
    """A resolved window: ``[start, end)`` in UTC, and the zone its calendar was read in."""

    start: datetime
    end: datetime
    timezone: ZoneInfo
    spec: WindowSpec | None = None  # None for derived windows (the comparison)

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(self.timezone)

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(self.timezone)


@dataclass(frozen=True)
class Bucket:
    """One bucket of a series: ``key`` is the local date its calendar bucket starts on."""

    key: str
    start: datetime
    end: datetime


def resolve(spec: WindowSpec, tz: ZoneInfo, now: datetime) -> Window:
    """The UTC bounds of ``spec`` for a team in ``tz`` at the instant ``now``."""
    _require_aware(now)
    now = now.astimezone(UTC)
    today = now.astimezone(tz).date()
    if spec.kind == "rolling":
        assert spec.count is not None and spec.unit is not None
        start = shift(now, tz, -spec.count, spec.unit)
        end = now
    elif spec.kind == "today":
        start, end = local_midnight(today, tz), now
    elif spec.kind == "yesterday":
        start, end = local_midnight(today - timedelta(days=1), tz), local_midnight(today, tz)
    elif spec.kind == "this":
        start, end = local_midnight(period_start(today, str(spec.unit)), tz), now
    elif spec.kind == "last":
        first = period_start(today, str(spec.unit))
        previous = period_start(first - timedelta(days=1), str(spec.unit))
        start, end = local_midnight(previous, tz), local_midnight(first, tz)
    elif spec.kind == "since":
        assert spec.first is not None
        start, end = local_midnight(spec.first, tz), now
    elif spec.kind == "between":
        assert spec.first is not None and spec.last is not None
        start = local_midnight(spec.first, tz)
        end = min(local_midnight(spec.last + timedelta(days=1), tz), now)
    else:  # pragma: no cover - the parser only builds the kinds above
        raise ValueError(f"unknown window kind {spec.kind!r}")
    if start > now:
        raise WindowError(f"“{spec}” starts in the future (it is {today.isoformat()} now).")
    window = Window(start=start, end=max(start, end), timezone=tz, spec=spec)
    _check_length(window)
    return window


def previous(window: Window, comparison: str, now: datetime) -> Window:
    """The window ``window`` is compared with (``vs previous`` or ``vs last year``)."""
    tz = window.timezone
    spec = window.spec
    if comparison == "last_year":
        start, end = shift(window.start, tz, -12, "m"), shift(window.end, tz, -12, "m")
    elif spec is not None and spec.kind == "rolling":
        assert spec.count is not None and spec.unit is not None
        start, end = shift(window.start, tz, -spec.count, spec.unit), window.start
    elif spec is not None and spec.kind in ("today", "yesterday", "this", "last"):
        unit = "d" if spec.kind in ("today", "yesterday") else _PERIOD_UNIT[str(spec.unit)]
        step = 3 if unit == "q" else 1
        unit = "m" if unit == "q" else unit
        start = shift(window.start, tz, -step, unit)
        # A complete period ends where the current one starts; a period-to-date window ends
        # at the same point of the previous period as *now* is of this one.
        end = window.start if spec.kind in ("yesterday", "last") else shift(now, tz, -step, unit)
        end = min(end, window.start)
    elif spec is not None and spec.kind == "between":
        assert spec.first is not None and spec.last is not None
        days = (spec.last - spec.first).days + 1
        start, end = local_midnight(spec.first - timedelta(days=days), tz), window.start
    else:  # since, or a derived window: the same duration just before
        start, end = window.start - (window.end - window.start), window.start
    return Window(start=start, end=end, timezone=tz, spec=None)


_PERIOD_UNIT = {"week": "w", "month": "m", "quarter": "q", "year": "y"}


def buckets(window: Window, grain: str, *, limit: int = MAX_BUCKETS) -> tuple[Bucket, ...]:
    """The window cut into local calendar days, ISO weeks or months, clipped to the window.

    More than ``limit`` buckets is a WindowError: a chart nobody can read, and a query
    nobody should wait for (KPIs that average over days pass a larger limit).
    """
    tz = window.timezone
    out: list[Bucket] = []
    day = period_start(window.local_start.date(), grain)
    while True:
        nxt = _next_period(day, grain)
        lo, hi = local_midnight(day, tz), local_midnight(nxt, tz)
        if lo >= window.end:
            break
        if hi > window.start:
            out.append(Bucket(day.isoformat(), max(lo, window.start), min(hi, window.end)))
        if len(out) > limit:
            raise WindowError(
                f"“by {grain}” would draw more than {limit} points: "
                "use a coarser grain or a shorter window."
            )
        day = nxt
    return tuple(out)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local calendar day starts (the first instant, if midnight is skipped)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_start(day: date, period: str) -> date:
    """The first day of the day / ISO week / month / quarter / year that holds ``day``."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if period == "year":
        return date(day.year, 1, 1)
    raise ValueError(f"unknown period {period!r}")


def _next_period(day: date, period: str) -> date:
    if period == "day":
        return day + timedelta(days=1)
    if period == "week":
        return day + timedelta(days=7)
    return _add_months(day, {"month": 1, "quarter": 3, "year": 12}[period])


def shift(instant: datetime, tz: ZoneInfo, count: int, unit: str) -> datetime:
    """``instant`` moved by ``count`` units (d|w|m|q|y) on the team's wall clock, in UTC;
    hours (h) are elapsed time, not wall-clock time.

    A wall-clock time that a DST change skips maps to the first instant after the gap.
    """
    if unit == "h":
        return instant.astimezone(UTC) + timedelta(hours=count)
    local = instant.astimezone(tz).replace(tzinfo=None)
    if unit == "d":
        moved = local + timedelta(days=count)
    elif unit == "w":
        moved = local + timedelta(weeks=count)
    else:
        months = count * {"m": 1, "q": 3, "y": 12}[unit]
        moved = datetime.combine(_add_months(local.date(), months), local.time())
    return moved.replace(tzinfo=tz).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise WindowError("that window reaches outside the calendar.")
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _check_length(window: Window) -> None:
    if window.end - window.start > timedelta(days=MAX_WINDOW_DAYS):
        raise WindowError(
            f"“{window.spec}” is longer than five years: choose a shorter window.",
        )


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass an aware 'now'")


def _iso(day: date | None) -> str:
    assert day is not None
    return day.isoformat()

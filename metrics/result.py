"""What evaluating a KPI query returns: the contract between ``metrics`` and everything
that shows a figure (``/kpi`` replies, digests, alerts, charts, ``kpibot ask --json``).

``value`` is a number in ``unit``: durations in minutes, rates and shares in percent,
money in major units of the currency named by ``unit`` (an ISO 4217 code, "USD"), scores on
their own scale. ``None`` — never 0 — when the window holds no data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Units a Result may carry besides a currency code.
UNITS = ("minutes", "percent", "score", "count", "users", "ratio")


@dataclass(frozen=True)
class Point:
    """One bucket of a series: a time bucket ("2026-11-01") or a dimension value ("email")."""

    key: str
    value: float | None
    n: int
    start: datetime | None = None  # bucket bounds for time grains (UTC)
    end: datetime | None = None
    # Per-KPI detail a chart or digest can use: p90 beside the median, NPS promoter /
    # passive / detractor counts, MRR movement components, …
    extra: Mapping[str, float | None] = field(default_factory=dict)
    label: str | None = None  # a display name when the key is an id (a customer's name)


@dataclass(frozen=True)
class Result:
    kpi: str  # canonical KPI name, e.g. "nps"
    title: str  # "NPS", "First response time (p90)"
    unit: str  # one of UNITS or a currency code
    statistic: str | None  # "median", "p90", "mean", … where it applies
    start: datetime  # the window, UTC, [start, end)
    end: datetime
    timezone: str  # the team's time zone the window was resolved in
    value: float | None
    n: int  # observations behind the value
    higher_is_better: bool | None
    previous: float | None = None  # the comparison window's value, when compared
    previous_n: int | None = None
    previous_start: datetime | None = None
    previous_end: datetime | None = None
    comparison: str | None = None  # "previous", "last_year"
    grain: str | None = None  # "day", "week", "month"
    dimension: str | None = None  # "channel", "plan", …
    series: tuple[Point, ...] = ()
    previous_series: tuple[Point, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # margin_of_error, awaiting, …

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    def to_json(self) -> dict[str, Any]:
        """The ``kpibot ask --json`` object (DESIGN.md, Contracts)."""
        out: dict[str, Any] = {
            "kpi": self.kpi,
            "title": self.title,
            "statistic": self.statistic,
            "value": _clean(self.value),
            "unit": self.unit,
            "n": self.n,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
        }
        if self.comparison is not None:
            out["comparison"] = self.comparison
            out["previous"] = _clean(self.previous)
            out["previous_n"] = self.previous_n
            out["previous_start"] = _iso(self.previous_start)
            out["previous_end"] = _iso(self.previous_end)
            out["change"] = _clean(self.change)
        if self.grain is not None or self.dimension is not None:
            out["grain"] = self.grain
            out["dimension"] = self.dimension
            out["series"] = [_point_json(p) for p in self.series]
        elif self.series:  # a ranked list (health bottom 10) has neither
            out["series"] = [_point_json(p) for p in self.series]
        if self.extra:
            out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _clean(value: float | None) -> float | None:
    """Round away float noise (1537.894000000001 → 1537.894) without losing precision that
    matters: 9 significant digits is far finer than any KPI is read."""
    if value is None:
        return None
    return float(f"{value:.9g}")


def _point_json(point: Point) -> dict[str, Any]:
    out: dict[str, Any] = {"key": point.key, "value": _clean(point.value), "n": point.n}
    if point.label is not None:
        out["label"] = point.label
    return {**out, **dict(point.extra)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

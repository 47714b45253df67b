"""Hand-built Results for every chart kind, shared by the tests, the golden images and
``bench/bench_charts.py``. Deterministic: a fixed seed, a fixed "now"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from metrics.result import Point, Result

TZ = "Europe/Warsaw"
END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # local midnight, 1 Dec, in Warsaw

SHAPES = ("typical", "empty", "single", "long", "extreme")

KPIS = {
    # kpi: (title, unit, higher_is_better, grain)
    "csat": ("CSAT", "percent", True, "day"),
    "nps": ("NPS", "score", True, "day"),
    "mrr_movements": ("MRR movements", "USD", True, "month"),
    "tickets": ("Tickets created", "count", None, "day"),
    "backlog": ("Backlog", "count", False, "day"),
    "frt": ("First response time (median)", "minutes", False, "day"),
    "health": ("Customer health", "score", True, None),
}


def days(n: int, *, end: datetime = END, grain: str = "day") -> list[tuple[datetime, datetime]]:
    """Bucket bounds (UTC) for the ``n`` buckets before ``end``, at local midnights."""
    tz = ZoneInfo(TZ)
    local_end = end.astimezone(tz)
    out = []
    for i in range(n, 0, -1):
        if grain == "month":
            y, m = divmod(local_end.month - 1 - i, 12)
            s = local_end.replace(year=local_end.year + y, month=m + 1, day=1)
            y2, m2 = divmod(m + 1, 12)
            e = s.replace(year=s.year + y2, month=m2 + 1)
        else:
            s = (local_end - timedelta(days=i)).replace(hour=0)
            e = (local_end - timedelta(days=i - 1)).replace(hour=0)
        out.append((s.astimezone(UTC), e.astimezone(UTC)))
    return out


def _n(shape: str) -> int:
    return {"typical": 30, "empty": 0, "single": 1, "long": 5 * 365 + 1, "extreme": 90}[shape]


def result(kpi: str, shape: str = "typical", *, n: int | None = None, **overrides) -> Result:
    """A Result for ``kpi`` in one of ``SHAPES`` (or with ``n`` buckets)."""
    title, unit, hib, grain = KPIS.get(kpi, (kpi.upper(), "count", True, "day"))
    count = _n(shape) if n is None else n
    if kpi == "mrr_movements" and n is None and shape in ("typical", "extreme"):
        count = 12 if shape == "typical" else 36
    if kpi == "mrr_movements" and shape in ("long", "single"):
        grain = "day"  # 5 years of daily movements; one day
    if kpi == "health":
        count = 0  # health reads Result.extra["customers"], not a series
    rng = np.random.default_rng(7)
    make = _MAKERS.get(kpi, _plain)
    bounds = days(count, grain=grain or "day")
    series, previous, extra = make(rng, count, shape)
    points = tuple(
        Point(
            key=s.astimezone(ZoneInfo(TZ)).date().isoformat(), value=v, n=k, start=s, end=e, extra=x
        )
        for (s, e), (v, k, x) in zip(bounds, series, strict=True)
    )
    prev = tuple(Point(key=f"p{i}", value=v, n=k) for i, (v, k, _) in enumerate(previous))
    start = bounds[0][0] if bounds else END - timedelta(days=30)
    values = [p.value for p in points if p.value is not None and np.isfinite(p.value)]
    value = float(np.mean(values)) if values else None
    prev_values = [v for v, _, _ in previous if v is not None and np.isfinite(v)]
    fields = dict(
        kpi=kpi,
        title=title,
        unit=unit,
        statistic="median" if unit == "minutes" else None,
        start=start,
        end=END,
        timezone=TZ,
        value=value,
        n=sum(p.n for p in points),
        higher_is_better=hib,
        grain=grain,
        series=points,
        previous_series=prev,
        extra=extra,
        previous=float(np.mean(prev_values)) if prev_values else None,
        comparison="previous" if prev_values else None,
    )
    fields.update(overrides)
    return Result(**fields)


Row = tuple[float | None, int, dict]


def _wave(rng: np.random.Generator, count: int, base: float, amp: float, noise: float):
    t = np.arange(count)
    return base + amp * np.sin(t / 5) + rng.normal(0, noise, count) + t * amp / max(count, 1)


def _with_gaps(values: list[float | None], shape: str) -> list[float | None]:
    if shape == "typical" and len(values) > 12:
        values[9] = None
        values[11] = float("nan")
    return values


def _plain(rng, count, shape) -> tuple[list[Row], list[Row], dict]:
    if shape == "extreme":
        vals = [0.0] * (count // 3) + [1e9] * (count // 3) + [-5e8] * (count - 2 * (count // 3))
    else:
        vals = _with_gaps(list(_wave(rng, count, 92, 3, 1)), shape)
    series = [(v, 40, {}) for v in vals]
    prev = [(v - 2 if v is not None else None, 38, {}) for v in vals] if shape != "long" else []
    return series, prev, {}


def _nps(rng, count, shape):
    rows = []
    for i in range(count):
        total = int(rng.integers(20, 60)) if shape != "extreme" else (10**6 if i % 2 else 0)
        p = int(total * rng.uniform(0.45, 0.6))
        d = int(total * rng.uniform(0.1, 0.25))
        ps = total - p - d
        score = 100 * (p - d) / total if total else None
        rows.append((score, total, {"promoters": p, "passives": ps, "detractors": d}))
    if shape == "typical" and count > 12:
        rows[9] = (None, 0, {"promoters": 0, "passives": 0, "detractors": 0})
    prev = [(r[0] - 5 if r[0] is not None else None, r[1], {}) for r in rows]
    return rows, (prev if shape == "typical" else []), {"margin_of_error": 6.2}


def _mrr(rng, count, shape):
    rows = []
    for i in range(count):
        scale = 1e9 if shape == "extreme" else 1.0
        new = float(rng.uniform(8_000, 15_000)) * scale
        exp = float(rng.uniform(2_000, 6_000)) * scale
        rea = float(rng.uniform(0, 1_500)) * scale
        con = float(rng.uniform(1_000, 4_000)) * scale
        churn = float(rng.uniform(3_000, 12_000)) * scale
        if shape == "extreme" and i % 3 == 0:
            new = exp = rea = 0.0
        net = new + exp + rea - con - churn
        rows.append(
            (
                net,
                1,
                {
                    "new": new,
                    "expansion": exp,
                    "reactivation": rea,
                    "contraction": con,
                    "churn": churn,
                    "net_new": net,
                },
            )
        )
    return rows, [], {}


def _volume(rng, count, shape):
    if shape == "extreme":
        vals = [0] * count
        return [(float(v), int(v), {}) for v in vals], [], {}
    t = np.arange(count)
    weekly = np.where(t % 7 >= 5, 0.4, 1.0)
    vals = np.round(rng.poisson(120, count) * weekly)
    prev = [(float(v) * 0.9, int(v), {}) for v in vals] if shape == "typical" else []
    return [(float(v), int(v), {}) for v in vals], prev, {}


def _backlog(rng, count, shape):
    if shape == "extreme":
        return [(1e9, 1, {})] * count, [], {}
    vals = _with_gaps(list(np.round(np.abs(_wave(rng, count, 340, 40, 12)))), shape)
    return [(v, 1, {}) for v in vals], [], {}


def _duration(rng, count, shape):
    if shape == "extreme":
        vals = [5.0] * (count // 2) + [60 * 24 * 400.0] * (count - count // 2)
        return [(v, 10, {"p90": v * 3}) for v in vals], [], {}
    med = np.abs(_wave(rng, count, 95, 35, 15))
    rows: list[Row] = [(float(m), 50, {"p90": float(m * rng.uniform(2.5, 4))}) for m in med]
    if shape == "typical" and count > 12:
        rows[9] = (None, 0, {"p90": None})
    prev = [(float(m) * 1.2, 50, {}) for m in med] if shape == "typical" else []
    return rows, prev, {}


CUSTOMER_NAMES = [
    "Acme Logistics",
    "Borealis Health",
    "Cobalt & Sons",
    "Dunmore Retail Group",
    "Everglade Software GmbH",
    "Fjord Analytics",
    "Granite Insurance Partners",
    "Harbor Foods",
    "Iris Studio",
    "Juniper Learning",
]


def _health(rng, count, shape):
    """Health uses Result.extra["customers"], not the series."""
    if shape == "empty":
        customers = []
    elif shape == "single":
        customers = [{"name": "Acme Logistics", "score": 42.0}]
    elif shape == "extreme":
        customers = [{"name": f"Customer {i}", "score": 100.0} for i in range(500)]
        customers += [
            {"name": "Broken", "score": None},
            {"name": "Overflow", "score": 1e9},
            {"name": "Negative", "score": -20.0},
        ]
    else:
        size = 180 if shape == "typical" else 20_000
        scores = np.clip(rng.normal(70, 16, size), 0, 100)
        customers = [
            {"name": CUSTOMER_NAMES[i % 10] + ("" if i < 10 else f" {i}"), "score": float(s)}
            for i, s in enumerate(scores)
        ]
        customers.append({"name": "Unscored Ltd", "score": None})
    return [], [], {"customers": customers}


_MAKERS: dict[str, Callable] = {
    "nps": _nps,
    "mrr_movements": _mrr,
    "tickets": _volume,
    "backlog": _backlog,
    "frt": _duration,
    "health": _health,
}


def by_dimension(shape: str = "typical") -> Result:
    """Ticket volume by channel (bar chart)."""
    names = [
        "email",
        "web widget",
        "chat",
        "phone",
        "api",
        "facebook messenger",
        "twitter",
        "whatsapp",
        "slack connect",
        "voice mail",
        "sms",
        "mobile sdk",
        "closed tickets from the legacy helpdesk migration",
        "other",
    ]
    vals = {
        "typical": [812, 640, 422, 201, 98, 45, 31, 22, 12, 9, 5, 4, 2, 1],
        "empty": [],
        "single": [120],
        "long": list(range(200, 0, -1)),
        "extreme": [1e9, 0, 0, 5],
    }[shape]
    keys = (names * 20)[: len(vals)] if shape != "long" else [f"group {i}" for i in range(200)]
    pts = tuple(Point(key=k, value=float(v), n=int(v)) for k, v in zip(keys, vals, strict=True))
    prev = (
        tuple(Point(key=k, value=float(v) * 1.1, n=int(v)) for k, v in zip(keys, vals, strict=True))
        if shape == "typical"
        else ()
    )
    return Result(
        kpi="tickets",
        title="Tickets created",
        unit="count",
        statistic=None,
        start=END - timedelta(days=30),
        end=END,
        timezone=TZ,
        value=float(sum(vals)) if vals else None,
        n=int(sum(vals)),
        higher_is_better=None,
        dimension="channel",
        series=pts,
        previous_series=prev,
        comparison="previous" if prev else None,
        previous=float(sum(p.value for p in prev)) if prev else None,
    )

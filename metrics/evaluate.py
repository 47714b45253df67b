"""The public entry points: evaluate a parsed query, and the help generated from the catalogue."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import Connection

from metrics.context import MetricContext
from metrics.kpis.base import Cell, Computation, Request
from metrics.kpis.revenue import excluded_currencies
from metrics.query import Query, parse_query
from metrics.registry import KPI, KPIS, get_kpi
from metrics.result import Result
from metrics.windows import DEFAULT_WINDOW, buckets, previous, resolve


def evaluate(conn: Connection, query: Query, ctx: MetricContext, *, now: datetime) -> Result:
    """Answer ``query`` from the warehouse behind ``conn`` as of the instant ``now``.

    Raises :class:`~metrics.errors.QueryError` for a query the parser would refuse and
    for a window that cannot be evaluated (in the future, longer than five years, too many
    buckets). Reads only; commits nothing.
    """
    # A Query built in code (digests, alerts) gets the parser's checks too: a valid query
    # reads back as itself from its canonical text.
    query = parse_query(str(query))
    kpi = get_kpi(query.kpi)
    window = resolve(query.window or DEFAULT_WINDOW, ctx.timezone, now)
    grain = query.grain
    if grain is None and query.dimension is None and query.ranking is None:
        grain = kpi.default_grain
    statistic = query.statistic or kpi.default_statistic
    request = Request(
        kpi=kpi.name,
        statistic=statistic,
        window=window,
        buckets=buckets(window, grain) if grain else (),
        dimension=query.dimension,
        filters=query.filters,
        ranking=query.ranking,
        ctx=ctx,
        now=now,
    )
    current = _computed(kpi, conn, request)
    result = Result(
        kpi=kpi.name,
        title=title(kpi, statistic),
        unit=kpi.unit_for(ctx.currency, statistic),
        statistic=statistic,
        start=window.start,
        end=window.end,
        timezone=ctx.timezone.key,
        value=current.total.value,
        n=current.total.n,
        higher_is_better=kpi.higher_is_better,
        grain=grain,
        dimension=query.dimension,
        series=current.series,
        extra=dict(current.total.extra),
    )
    if kpi.currency_scoped:
        left_out = excluded_currencies(conn, request, at_end=kpi.snapshot)
        if left_out:
            result = replace(result, extra={**result.extra, "excluded_currencies": left_out})
    if query.comparison is None:
        return result
    before = previous(window, query.comparison, now)
    earlier = _computed(
        kpi, conn, replace(request, window=before, buckets=buckets(before, grain) if grain else ())
    )
    return replace(
        result,
        previous=earlier.total.value,
        previous_n=earlier.total.n,
        previous_start=before.start,
        previous_end=before.end,
        comparison=query.comparison,
        previous_series=earlier.series,
    )


def _computed(kpi: KPI, conn: Connection, request: Request) -> Computation:
    """``kpi`` over ``request``; a flow over a zero-length window (``today`` asked at local
    midnight) has no value, whatever its inputs give (a churn rate of 0 % of the customers
    at the start, a retention of 100 %): only a level at an instant (a snapshot KPI) does."""
    computed = kpi.compute(conn, request)
    if kpi.snapshot or request.window.end > request.window.start:
        return computed
    return Computation(total=Cell(None, 0, computed.total.extra))


def title(kpi: KPI, statistic: str | None) -> str:
    """``First response time (p90)``; KPIs with a single figure keep their plain title."""
    return f"{kpi.title} ({statistic})" if kpi.default_statistic else kpi.title


LANGUAGE = """\
/kpi <kpi> [statistic] [window] [by day|week|month|<dimension>] [vs previous|last year]
         [where <dimension>=<value> and …] [top|bottom N]
  windows: last 24h · last 30d · last 12w · last 6m · last 2q · last 1y · today · yesterday ·
           this week|month|quarter|year · last week|month|quarter|year ·
           since 2026-10-01 · between 2026-01-01 and 2026-03-31   (default: last 30d)
  statistics (durations): median · mean · count · p50 … p99
  e.g. nps last 30d · frt p90 this week by day · tickets yesterday by channel ·
       mrr vs previous · nps last quarter where plan=enterprise · health bottom 10"""


def kpi_list() -> str:
    """One line per KPI, for ``/kpi list``."""
    width = max(len(k.name) for k in KPIS)
    return "\n".join(f"{k.name:<{width}}  {k.description}" for k in KPIS)


def help_text(kpi: str | None = None) -> str:
    """The language and the KPI list, or everything about one KPI (``/kpi help nps``)."""
    if kpi is None:
        return f"{LANGUAGE}\n\nKPIs:\n{kpi_list()}"
    k = get_kpi(kpi)
    direction = {True: "higher is better", False: "lower is better", None: "neither"}
    lines = [
        f"{k.title} ({k.name}) — {k.description}",
        f"unit: {k.unit}; {direction[k.higher_is_better]}",
    ]
    if k.aliases:
        lines.append("also: " + ", ".join(k.aliases))
    if k.default_statistic:
        others = [s.replace("pNN", "p1…p99") for s in k.statistics if s != k.default_statistic]
        lines.append(f"statistic: {k.default_statistic} (or {', '.join(others)})")
    grains = ", ".join(k.grains) or "none"
    lines.append(f"by: {grains}" + (f"; {', '.join(k.dimensions)}" if k.dimensions else ""))
    if k.filter_keys:
        lines.append("where: " + ", ".join(f"{d}=…" for d in k.filter_keys))
    if k.rankable:
        lines.append("top N / bottom N: the customers with the highest / lowest value")
    lines.append("reads: " + ", ".join(k.sources))
    if k.example:
        lines.append(f"e.g. /kpi {k.example}")
    return "\n".join(lines)

"""The KPI engine: warehouse schema, KPI catalogue, time windows, the /kpi language, evaluation.

Plain synchronous functions over a SQLAlchemy connection; never imports ``bot`` or
``integrations``. The public surface::

    parse_query(text) -> Query                       raises QueryError
    evaluate(conn, query, ctx, *, now) -> Result     raises QueryError for bad windows
    help_text(kpi=None) -> str, kpi_list() -> str    generated from the KPI declarations
    get_kpi(name) -> KPI, KPIS                       the catalogue (sources: for freshness)
    refresh_derived(conn) -> int                     after a sync: keeps revenue KPIs fast
"""

from __future__ import annotations

from metrics.context import MetricContext, RetentionSpend
from metrics.derived import refresh_derived
from metrics.errors import (
    ContextError,
    DataError,
    MetricsError,
    QueryError,
    UnknownKPIError,
    WindowError,
)
from metrics.evaluate import evaluate, help_text, kpi_list
from metrics.query import Query, Ranking, parse_query
from metrics.registry import KPI, KPIS, get_kpi
from metrics.result import Point, Result
from metrics.windows import Window, WindowSpec

__all__ = [
    "KPI",
    "KPIS",
    "ContextError",
    "DataError",
    "MetricContext",
    "MetricsError",
    "Point",
    "Query",
    "QueryError",
    "Ranking",
    "Result",
    "RetentionSpend",
    "UnknownKPIError",
    "Window",
    "WindowError",
    "WindowSpec",
    "evaluate",
    "get_kpi",
    "help_text",
    "kpi_list",
    "parse_query",
    "refresh_derived",
]

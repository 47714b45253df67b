"""What every KPI implementation shares: the request it answers, what it returns, and the
few SQL shapes the catalogue is built from.

Every query binds the window's bounds as aware UTC datetimes through the column types
(``UTCDateTime``), so the same statement compares correctly on SQLite (naive UTC strings)
and PostgreSQL (``timestamptz``). Buckets travel as a small ``VALUES`` table
``b(idx, s, e)`` joined to the data on its time column, so one statement answers the whole
series with an index range scan per bucket, and no SQL is ever built from user text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    Select,
    case,
    cast,
    column,
    false,
    func,
    literal,
    null,
    select,
    values,
)
from sqlalchemy.orm import QueryableAttribute

from metrics.context import MetricContext
from metrics.result import Point
from metrics.schema import Customer, UTCDateTime
from metrics.windows import Bucket, Window

if TYPE_CHECKING:
    from metrics.query import Ranking

PAID_STATUSES = ("active", "past_due")  # Stripe statuses that count towards MRR
UNSOLVED_STATUSES = ("new", "open", "pending", "hold")
SOLVED_STATUSES = ("solved", "closed")
NONE_KEY = "(none)"  # the series key of rows whose dimension is NULL
MAX_SERIES = 50  # dimension values shown; the rest are summed into OTHER_KEY
OTHER_KEY = "(other)"

# Dimensions every customer-linked table can be split and filtered by, through customers.
CUSTOMER_DIMENSIONS: Mapping[str, Any] = {
    "plan": Customer.plan,
    "segment": Customer.segment,
    "country": Customer.country,
}


@dataclass(frozen=True)
class Request:
    """One evaluation: a KPI over one window (the current or the comparison one)."""

    kpi: str
    statistic: str | None
    window: Window
    buckets: tuple[Bucket, ...]  # empty unless the query has a grain
    dimension: str | None
    filters: tuple[tuple[str, str], ...]
    ranking: Ranking | None
    ctx: MetricContext
    now: datetime

    @property
    def intervals(self) -> tuple[tuple[datetime, datetime], ...]:
        """The buckets' bounds, or the whole window as one interval."""
        if self.buckets:
            return tuple((b.start, b.end) for b in self.buckets)
        return ((self.window.start, self.window.end),)


@dataclass(frozen=True)
class Cell:
    """A value with the number of observations behind it and per-KPI detail."""

    value: float | None
    n: int
    extra: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Computation:
    total: Cell
    series: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Source:
    """A warehouse table as KPIs read it: where its customer is and its own dimensions."""

    table: FromClause
    customer: Any  # the column holding the customer (account) id
    dimensions: Mapping[str, Any] = field(default_factory=dict)

    def dimension(self, name: str) -> Any:
        if name in self.dimensions:
            return self.dimensions[name]
        return CUSTOMER_DIMENSIONS[name]

    def needs_customers(self, names: Iterable[str]) -> bool:
        return any(n not in self.dimensions for n in names)


def intervals_table(intervals: Sequence[tuple[datetime, datetime]]) -> CTE:
    """The intervals as a ``VALUES`` table ``b(idx, s, e)``, bound through UTCDateTime.

    No intervals (the local days of a zero-length window) is a table without rows: SQL has
    no empty ``VALUES``, so it is a typed one-row select that keeps no row.
    """
    rows = [(i, s, e) for i, (s, e) in enumerate(intervals)]
    if not rows:
        return (
            select(
                literal(0, Integer).label("idx"),
                cast(null(), UTCDateTime()).label("s"),
                cast(null(), UTCDateTime()).label("e"),
            )
            .where(false())
            .cte("b")
        )
    return (
        values(
            column("idx", Integer),
            column("s", UTCDateTime()),
            column("e", UTCDateTime()),
            name="b",
        )
        .data(rows)
        .cte("b")
    )


def grouped(
    conn: Connection,
    req: Request,
    source: Source,
    *,
    on: Callable[[CTE], ColumnElement[bool]],
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]] = (),
    intervals: Sequence[tuple[datetime, datetime]] | None = None,
) -> list[tuple[int, str | None, tuple[Any, ...]]]:
    """Rows ``(interval index, dimension value, columns…)`` of ``source`` joined to intervals.

    ``on`` joins the intervals table to the source (an observation in an interval, a
    subscription alive at its end, …). The columns are aggregates: there is one row per
    (interval, dimension value).
    The query's filters and its dimension (joining customers when needed) are applied here,
    once, for every KPI.
    """
    b = intervals_table(intervals if intervals is not None else req.intervals)
    dim = source.dimension(req.dimension) if req.dimension else None
    head: list[ColumnElement[Any]] = [b.c.idx, (dim if dim is not None else literal(None))]
    stmt = scoped(
        select(*head, *columns).select_from(b).join(source.table, on(b)), req, source, where
    )
    stmt = stmt.group_by(b.c.idx, *([dim] if dim is not None else []))
    return [(row[0], _key(row[1], dim is not None), tuple(row[2:])) for row in conn.execute(stmt)]


def scoped(
    stmt: Select[Any], req: Request, source: Source, where: Sequence[ColumnElement[bool]] = ()
) -> Select[Any]:
    """``stmt`` over ``source`` narrowed by ``where`` and the query's filters, joining
    customers when a filter or the dimension lives there (plan, segment, country)."""
    names = [k for k, _ in req.filters] + ([req.dimension] if req.dimension else [])
    if source.needs_customers(names):
        stmt = stmt.outerjoin(Customer, Customer.id == source.customer)
    conditions = [*where, *filter_conditions(req, source)]
    return stmt.where(*conditions) if conditions else stmt


def filter_conditions(req: Request, source: Source) -> list[ColumnElement[bool]]:
    """The query's ``where k=v`` filters: case-insensitive, values bound as parameters."""
    return [func.lower(source.dimension(key)) == value for key, value in req.filters]


def _key(value: Any, has_dimension: bool) -> str | None:
    if not has_dimension:
        return None
    return NONE_KEY if value is None else str(value)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """``SUM(CASE WHEN condition THEN 1 ELSE 0 END)``: a count that is 0, never NULL."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def within(time_col: Any) -> Callable[[CTE], ColumnElement[bool]]:
    """Join condition: the row's time lies in the interval ``[s, e)``."""
    return lambda b: (time_col >= b.c.s) & (time_col < b.c.e)


# --- Assembling a Computation from per-interval or per-dimension partial results ---------


def additive(
    req: Request,
    rows: Sequence[tuple[int, str | None, tuple[Any, ...]]],
    width: int,
    finish: Callable[[tuple[float, ...]], Cell],
) -> Computation:
    """A KPI whose partial sums add up (counts, sums): the window is the sum of its buckets.

    ``finish`` turns summed columns into a Cell; a bucket or value without rows gets zeros,
    which ``finish`` reports as ``None``.
    """
    zero = (0.0,) * width
    total = _add(r[2] for r in rows)
    if req.dimension:
        per_key: dict[str, tuple[float, ...]] = {}
        for _, key, cols in rows:
            assert key is not None
            per_key[key] = _add([per_key.get(key, zero), cols])
        series = dimension_series({k: finish(v) for k, v in per_key.items()})
    elif req.buckets:
        per_idx = {idx: _add([cols]) for idx, _, cols in rows}
        series = bucket_series(
            req.buckets, [finish(per_idx.get(i, zero)) for i in range(len(req.buckets))]
        )
    else:
        series = ()
    return Computation(total=finish(total if rows else zero), series=series)


def _add(parts: Iterable[tuple[Any, ...]]) -> tuple[float, ...]:
    sums: list[float] | None = None
    for part in parts:
        nums = [float(x or 0) for x in part]
        sums = nums if sums is None else [a + b for a, b in zip(sums, nums, strict=True)]
    return tuple(sums or ())


def bucket_series(buckets: Sequence[Bucket], cells: Sequence[Cell]) -> tuple[Point, ...]:
    return tuple(
        Point(key=b.key, value=c.value, n=c.n, start=b.start, end=b.end, extra=c.extra)
        for b, c in zip(buckets, cells, strict=True)
    )


def dimension_series(cells: Mapping[str, Cell]) -> tuple[Point, ...]:
    """Dimension values by observations, largest first; beyond MAX_SERIES only the biggest."""
    ordered = sorted(cells.items(), key=lambda kv: (-kv[1].n, kv[0]))
    return tuple(Point(key=k, value=c.value, n=c.n, extra=c.extra) for k, c in ordered[:MAX_SERIES])


def window_and_buckets(req: Request) -> list[tuple[datetime, datetime]]:
    """The window as interval 0, then its buckets: for KPIs whose window is not the sum of
    its buckets (ratios of distinct counts, balances)."""
    return [(req.window.start, req.window.end)] + [(b.start, b.end) for b in req.buckets]


def headline_and_series(req: Request, cells: Sequence[Cell]) -> Computation:
    """The Computation for cells computed over ``window_and_buckets(req)``."""
    return Computation(total=cells[0], series=bucket_series(req.buckets, cells[1:]))


# --- Distributions (percentiles) ----------------------------------------------------------

PERCENTILE_PREFIX = "p"


def statistic_of(values: np.ndarray, statistic: str) -> float | None:
    """``median``, ``mean``, ``count`` or ``pNN`` of ``values``; None when there are none.

    Percentiles interpolate linearly between closest ranks (numpy's default, the same
    as PostgreSQL's ``percentile_cont``), computed here for both databases alike.
    """
    if values.size == 0:
        return None
    if statistic == "count":
        return float(values.size)
    if statistic == "mean":
        return float(np.mean(values))
    if statistic == "median":
        return float(np.percentile(values, 50))
    return float(np.percentile(values, int(statistic.removeprefix(PERCENTILE_PREFIX))))


def money(minor: float, currency: str) -> float:
    """Minor units (cents) of ``currency`` in major units, rid of float noise from sums."""
    exponent = 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else 2
    return round(round(minor, 4) / 10**exponent, 6)


# Currencies whose minor unit is the major unit (Stripe's zero-decimal currencies).
ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)


def observations(
    conn: Connection,
    req: Request,
    source: Source,
    *,
    on: Callable[[CTE], ColumnElement[bool]],
    value: ColumnElement[Any] | QueryableAttribute[Any],
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """One observation per row: interval indexes, values (NULL as NaN), dimension keys.

    Percentiles need every value, so this is the one place that pulls rows: two numeric
    columns straight from the DBAPI cursor into numpy (the values need no conversion),
    without a Python object per row on the way.
    """
    b = intervals_table(req.intervals)
    dim = source.dimension(req.dimension) if req.dimension else None
    columns = [b.c.idx, value] + ([dim] if dim is not None else [])
    stmt = scoped(select(*columns).select_from(b).join(source.table, on(b)), req, source, where)
    result = conn.execute(stmt)
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    if dim is None:
        data = np.array(rows, dtype=float).reshape(-1, 2)
        return data[:, 0].astype(np.int64), data[:, 1], None
    data = np.array([r[:2] for r in rows], dtype=float).reshape(-1, 2)
    keys = [NONE_KEY if r[2] is None else str(r[2]) for r in rows]
    return data[:, 0].astype(np.int64), data[:, 1], keys


def distributed(
    req: Request,
    observed: tuple[np.ndarray, np.ndarray, list[str] | None],
    summarize: Callable[[np.ndarray], Cell],
) -> Computation:
    """A KPI over a distribution (percentiles): the window's values are all its buckets'.

    NaN values stand for observations without a value, for KPIs that count them aside
    (tickets awaiting a first reply).
    """
    idx, vals, keys = observed
    total = summarize(vals)
    if keys is not None:
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        cells = {k: summarize(vals[np.asarray(ix, dtype=np.int64)]) for k, ix in groups.items()}
        return Computation(total=total, series=dimension_series(cells))
    if req.buckets:
        order = np.argsort(idx, kind="stable")
        idx, vals = idx[order], vals[order]
        edges = np.searchsorted(idx, np.arange(len(req.buckets) + 1))
        cells_by_bucket = [
            summarize(vals[edges[i] : edges[i + 1]]) for i in range(len(req.buckets))
        ]
        return Computation(total=total, series=bucket_series(req.buckets, cells_by_bucket))
    return Computation(total=total)

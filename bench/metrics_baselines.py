"""The benchmark's yardsticks: the same answers from pandas and from DuckDB.

Each baseline answers one KPI over a window cut into buckets, given the same UTC bounds our
engine resolves (``Span``), and returns ``(value, series values)``:

* **pandas** reads the columns it needs from the warehouse (SQLite or PostgreSQL) with the
  window pushed into ``WHERE``, then groups, counts and takes quantiles. Its time includes
  that read: the end-to-end cost of answering with pandas.
* **DuckDB** runs the equivalent SQL over the same tables, loaded into an in-memory DuckDB
  database once, before timing (its ``sqlite`` extension cannot be installed offline).

Definitions follow ``metrics/README.md``; the benchmark asserts that both give our numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

EPSILON = 0.005  # metrics.derived.EPSILON: an MRR below half a hundredth of a cent is 0
PAID = ("active", "past_due")
SOLVED = ("solved", "closed")
Answer = tuple[float | None, list[float | None]]


@dataclass(frozen=True)
class Span:
    """A window ``[start, end)`` in UTC and its bucket edges (start, …, end)."""

    start: datetime
    end: datetime
    edges: tuple[datetime, ...]

    @property
    def buckets(self) -> int:
        return len(self.edges) - 1


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _edges64(span: Span) -> np.ndarray:
    return np.array([_naive(t) for t in span.edges], dtype="datetime64[us]")


def _bucket(times: pd.Series, span: Span) -> np.ndarray:
    """The bucket index of each instant (all inside the window)."""
    values = times.to_numpy(dtype="datetime64[us]")
    return np.searchsorted(_edges64(span), values, side="right") - 1


def _none(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)


# --- pandas ---------------------------------------------------------------------------


class PandasReader:
    """``read(sql, **bounds)``: a DataFrame with the time columns as UTC datetimes."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.conn, self.sqlite = conn, dialect == "sqlite"

    def bind(self, t: datetime) -> Any:
        # SQLite stores UTC as text (UTCDateTime), compared as text; PostgreSQL timestamptz.
        return _naive(t).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else t

    def read(self, sql: str, times: Sequence[str], **bounds: datetime) -> pd.DataFrame:
        params = {k: self.bind(v) for k, v in bounds.items()}
        if self.sqlite:
            sql = sql.replace("%(", ":").replace(")s", "")
        df = pd.read_sql_query(sql, self.conn, params=params)
        for col in times:
            if self.sqlite:
                df[col] = pd.to_datetime(df[col], format="%Y-%m-%d %H:%M:%S.%f")
            else:
                df[col] = pd.to_datetime(df[col], utc=True).dt.tz_localize(None)
        return df


def pd_frt(rd: PandasReader, span: Span, q: float) -> Answer:
    df = rd.read(
        "SELECT created_at, first_reply_minutes FROM tickets WHERE created_at >= %(s)s "
        "AND created_at < %(e)s AND status != 'deleted' AND first_reply_minutes IS NOT NULL",
        ["created_at"], s=span.start, e=span.end,
    )  # fmt: skip
    total = df.first_reply_minutes.quantile(q) if len(df) else None
    per = df.groupby(_bucket(df.created_at, span)).first_reply_minutes.quantile(q)
    return _none(total), [_none(per.get(i)) for i in range(span.buckets)]


def _scores(rd: PandasReader, span: Span, where: str) -> pd.DataFrame:
    df = rd.read(
        "SELECT responded_at, score, scale_max FROM survey_responses WHERE "
        f"{where} AND responded_at >= %(s)s AND responded_at < %(e)s",
        ["responded_at"], s=span.start, e=span.end,
    )  # fmt: skip
    return df.assign(b=_bucket(df.responded_at, span))


def pd_nps(rd: PandasReader, span: Span) -> Answer:
    df = _scores(rd, span, "kind = 'nps' AND scale_max = 10")
    df = df.assign(p=df.score >= 9, d=df.score <= 6)

    def nps(n: int, p: int, d: int) -> float | None:
        return 100 * (p - d) / n if n else None

    g = df.groupby("b").agg(n=("p", "size"), p=("p", "sum"), d=("d", "sum"))
    series = [nps(*g.loc[i]) if i in g.index else None for i in range(span.buckets)]
    return nps(len(df), int(df.p.sum()), int(df.d.sum())), series


def pd_csat(rd: PandasReader, span: Span) -> Answer:
    df = _scores(rd, span, "kind = 'csat' AND scale_max IN (5, 1)")
    df = df.assign(
        ok=((df.scale_max == 5) & (df.score >= 4)) | ((df.scale_max == 1) & (df.score >= 1))
    )
    g = df.groupby("b").ok.agg(["size", "sum"])

    def share(n: int, ok: int) -> float | None:
        return 100 * ok / n if n else None

    series = [share(*g.loc[i]) if i in g.index else None for i in range(span.buckets)]
    return share(len(df), int(df.ok.sum())), series


def pd_tickets(rd: PandasReader, span: Span) -> Answer:
    df = rd.read(
        "SELECT created_at FROM tickets WHERE created_at >= %(s)s AND created_at < %(e)s "
        "AND status != 'deleted'",
        ["created_at"], s=span.start, e=span.end,
    )  # fmt: skip
    counts = np.bincount(_bucket(df.created_at, span), minlength=span.buckets)
    return (float(len(df)) or None), [float(c) or None for c in counts]


def pd_backlog(rd: PandasReader, span: Span) -> Answer:
    """Unsolved at each bucket's end: created before it, less solved before it."""
    df = rd.read(
        "SELECT created_at, status, solved_at FROM tickets WHERE created_at < %(e)s "
        "AND status != 'deleted'",
        ["created_at", "solved_at"], e=span.end,
    )  # fmt: skip
    created = np.sort(df.created_at.to_numpy(dtype="datetime64[us]"))
    solved = df[df.status.isin(SOLVED)]
    left = np.sort(solved.solved_at.fillna(solved.created_at).to_numpy(dtype="datetime64[us]"))
    ends = _edges64(span)[1:]
    seen = np.searchsorted(created, ends, side="left")
    level = seen - np.searchsorted(left, ends, side="left")
    series = [float(v) if s else None for v, s in zip(level, seen, strict=True)]
    return series[-1], series


def pd_mrr(rd: PandasReader, span: Span) -> Answer:
    """MRR at each bucket's end: paid periods started before it and not ended before it."""
    df = rd.read(
        "SELECT status, mrr, valid_from, valid_to FROM subscription_periods "
        "WHERE valid_from < %(e)s",
        ["valid_from", "valid_to"], e=span.end,
    )  # fmt: skip
    paid = df[df.status.isin(PAID)]
    out: list[float | None] = []
    for t in _edges64(span)[1:]:
        seen = bool((df.valid_from < t).any())
        alive = (paid.valid_from < t) & (paid.valid_to.isna() | (paid.valid_to >= t))
        minor = float(paid.mrr[alive].sum())
        out.append(round(round(minor, 4) / 100, 6) if seen else None)
    return out[-1], out


def pd_movements(rd: PandasReader, span: Span) -> Answer:
    """Net new MRR per bucket from every customer's MRR timeline, built from all periods."""
    p = rd.read(
        "SELECT customer_id, valid_from, valid_to, mrr FROM subscription_periods "
        f"WHERE status IN {PAID} AND mrr > {EPSILON}",
        ["valid_from", "valid_to"],
    )  # fmt: skip
    ends = p[p.valid_to.notna()]
    deltas = pd.concat(
        [
            pd.DataFrame({"c": p.customer_id, "t": p.valid_from, "d": p.mrr}),
            pd.DataFrame({"c": ends.customer_id, "t": ends.valid_to, "d": -ends.mrr}),
        ]
    )
    ch = deltas.groupby(["c", "t"], sort=True).d.sum().reset_index()
    after = ch.groupby("c").d.cumsum()
    nth = ch.groupby("c").cumcount() + 1
    before = after - ch.d
    d = ch.d
    was, now = before <= EPSILON, after <= EPSILON
    sign = np.select([was, now, d > 0], [1, -1, 1], -1)
    amount = np.select([was, now, d > 0], [after, before, d], -d)
    window = _edges64(span)
    t = ch.t.to_numpy(dtype="datetime64[us]")
    keep = (d.abs() > EPSILON) & ~(was & now) & (t >= window[0]) & (t < window[-1])
    moved = pd.DataFrame({"b": _bucket(ch.t[keep], span), "net": (sign * amount)[keep]})
    g = moved.groupby("b").net.agg(["sum", "size"])
    series = [float(g.loc[i, "sum"]) / 100 if i in g.index else None for i in range(span.buckets)]
    total = float(moved.net.sum()) / 100 if len(moved) else None
    del nth  # new vs reactivation does not change the net: both add
    return total, series


PANDAS: dict[str, Callable[[PandasReader, Span], Answer]] = {
    "frt p90": lambda rd, s: pd_frt(rd, s, 0.9),
    "frt": lambda rd, s: pd_frt(rd, s, 0.5),
    "nps": pd_nps,
    "csat": pd_csat,
    "tickets": pd_tickets,
    "backlog": pd_backlog,
    "mrr": pd_mrr,
    "mrr_movements": pd_movements,
}


# --- DuckDB ---------------------------------------------------------------------------

DUCKDB_TABLES = {
    "tickets": ("created_at", "first_reply_minutes", "status", "solved_at"),
    "survey_responses": ("responded_at", "kind", "score", "scale_max"),
    "subscription_periods": ("customer_id", "status", "mrr", "valid_from", "valid_to"),
}


def load_duckdb(sqlite_path: str) -> Any:
    """An in-memory DuckDB with the warehouse's columns the queries read, from SQLite."""
    import sqlite3

    import duckdb

    db = duckdb.connect()
    src = sqlite3.connect(sqlite_path)
    for table, columns in DUCKDB_TABLES.items():
        df = pd.read_sql_query(f"SELECT {', '.join(columns)} FROM {table}", src)
        for col in columns:
            if col.endswith(("_at", "_from", "_to")):
                df[col] = pd.to_datetime(df[col], format="%Y-%m-%d %H:%M:%S.%f")
        db.register("frame", df)
        db.execute(f"CREATE TABLE {table} AS SELECT * FROM frame")
        db.unregister("frame")
        del df
    src.close()
    return db


def _buckets_sql(span: Span) -> str:
    edges = [f"TIMESTAMP '{_naive(t).isoformat(sep=' ')}'" for t in span.edges]
    rows = ", ".join(f"({i}, {edges[i]}, {edges[i + 1]})" for i in range(span.buckets))
    return f"b(idx, s, e) AS (VALUES {rows})"


def _window(span: Span) -> tuple[str, str]:
    return (
        f"TIMESTAMP '{_naive(span.start).isoformat(sep=' ')}'",
        f"TIMESTAMP '{_naive(span.end).isoformat(sep=' ')}'",
    )


def _per_bucket(db: Any, span: Span, sql: str) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in db.execute(f"WITH {_buckets_sql(span)} {sql}").fetchall()}


def dk_frt(db: Any, span: Span, q: float) -> Answer:
    s, e = _window(span)
    src = (f"FROM tickets WHERE created_at >= {s} AND created_at < {e} AND status <> 'deleted' "
           "AND first_reply_minutes IS NOT NULL")  # fmt: skip
    (total,) = db.execute(f"SELECT quantile_cont(first_reply_minutes, {q}) {src}").fetchone()
    per = _per_bucket(
        db, span,
        f"SELECT idx, quantile_cont(first_reply_minutes, {q}) FROM b JOIN tickets "
        "ON created_at >= b.s AND created_at < b.e WHERE status <> 'deleted' "
        "AND first_reply_minutes IS NOT NULL GROUP BY idx",
    )  # fmt: skip
    return _none(total), [_none(per[i][0]) if i in per else None for i in range(span.buckets)]


def _shares(
    db: Any, span: Span, columns: str, where: str
) -> tuple[tuple[Any, ...], dict[int, tuple[Any, ...]]]:
    s, e = _window(span)
    total = db.execute(
        f"SELECT count(*), {columns} FROM survey_responses WHERE {where} "
        f"AND responded_at >= {s} AND responded_at < {e}"
    ).fetchone()
    per = _per_bucket(
        db, span,
        f"SELECT idx, count(*), {columns} FROM b JOIN survey_responses "
        f"ON responded_at >= b.s AND responded_at < b.e WHERE {where} GROUP BY idx",
    )  # fmt: skip
    return total, per


def dk_nps(db: Any, span: Span) -> Answer:
    cols = "count_if(score >= 9), count_if(score <= 6)"
    total, per = _shares(db, span, cols, "kind = 'nps' AND scale_max = 10")

    def nps(row: tuple[Any, ...] | None) -> float | None:
        return 100 * (row[1] - row[2]) / row[0] if row and row[0] else None

    return nps(total), [nps(per.get(i)) for i in range(span.buckets)]


def dk_csat(db: Any, span: Span) -> Answer:
    cols = "count_if((scale_max = 5 AND score >= 4) OR (scale_max = 1 AND score >= 1))"
    total, per = _shares(db, span, cols, "kind = 'csat' AND scale_max IN (5, 1)")

    def share(row: tuple[Any, ...] | None) -> float | None:
        return 100 * row[1] / row[0] if row and row[0] else None

    return share(total), [share(per.get(i)) for i in range(span.buckets)]


def dk_tickets(db: Any, span: Span) -> Answer:
    per = _per_bucket(
        db, span,
        "SELECT idx, count(*) FROM b JOIN tickets ON created_at >= b.s AND created_at < b.e "
        "WHERE status <> 'deleted' GROUP BY idx",
    )  # fmt: skip
    series = [float(per[i][0]) if i in per else None for i in range(span.buckets)]
    total = sum(v or 0 for v in series)
    return (total or None), series


def dk_backlog(db: Any, span: Span) -> Answer:
    per = _per_bucket(
        db, span,
        "SELECT idx, count(*), count_if(NOT (status IN ('solved', 'closed') "
        "AND coalesce(solved_at, created_at) < b.e)) FROM b JOIN tickets "
        "ON created_at < b.e WHERE status <> 'deleted' GROUP BY idx",
    )  # fmt: skip
    series = [float(per[i][1]) if i in per and per[i][0] else None for i in range(span.buckets)]
    return series[-1], series


def dk_mrr(db: Any, span: Span) -> Answer:
    per = _per_bucket(
        db, span,
        "SELECT idx, count(*), sum(CASE WHEN status IN ('active', 'past_due') "
        "AND (valid_to IS NULL OR valid_to >= b.e) THEN mrr ELSE 0 END) "
        "FROM b JOIN subscription_periods ON valid_from < b.e GROUP BY idx",
    )  # fmt: skip
    series = [
        round(round(float(per[i][1]), 4) / 100, 6) if i in per and per[i][0] else None
        for i in range(span.buckets)
    ]
    return series[-1], series


def dk_movements(db: Any, span: Span) -> Answer:
    s, e = _window(span)
    sql = f"""
    WITH {_buckets_sql(span)},
    paid AS (SELECT customer_id AS c, valid_from, valid_to, mrr FROM subscription_periods
             WHERE status IN ('active', 'past_due') AND mrr > {EPSILON}),
    deltas AS (SELECT c, valid_from AS t, mrr AS d FROM paid
               UNION ALL SELECT c, valid_to, -mrr FROM paid WHERE valid_to IS NOT NULL),
    changes AS (SELECT c, t, sum(d) AS d FROM deltas GROUP BY c, t),
    timeline AS (SELECT c, t, d, sum(d) OVER (PARTITION BY c ORDER BY t
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS after FROM changes),
    moves AS (SELECT t, CASE WHEN after - d <= {EPSILON} THEN after
                             WHEN after <= {EPSILON} THEN -(after - d) ELSE d END AS net
              FROM timeline WHERE abs(d) > {EPSILON}
              AND NOT (after - d <= {EPSILON} AND after <= {EPSILON})
              AND t >= {s} AND t < {e})
    SELECT idx, sum(net), count(*) FROM b JOIN moves ON t >= b.s AND t < b.e GROUP BY idx
    """
    per = {row[0]: row[1:] for row in db.execute(sql).fetchall()}
    series = [float(per[i][0]) / 100 if i in per else None for i in range(span.buckets)]
    known = [v for v in series if v is not None]
    return (sum(known) if known else None), series


DUCKDB: dict[str, Callable[[Any, Span], Answer]] = {
    "frt p90": lambda db, s: dk_frt(db, s, 0.9),
    "frt": lambda db, s: dk_frt(db, s, 0.5),
    "nps": dk_nps,
    "csat": dk_csat,
    "tickets": dk_tickets,
    "backlog": dk_backlog,
    "mrr": dk_mrr,
    "mrr_movements": dk_movements,
}

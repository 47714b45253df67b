"""Benchmark of the KPI engine on a warehouse of realistic size, against pandas and DuckDB.

    python bench/bench_metrics.py                  # build bench/out/metrics.db once, then time
    python bench/bench_metrics.py --rebuild        # regenerate the data first
    python bench/bench_metrics.py --postgres postgresql://postgres@127.0.0.1:5432/test
    python bench/bench_metrics.py --no-baselines   # our engine only (no pandas, DuckDB)

The generator is seeded: 1M tickets and 1M survey responses over two years, 100k
subscriptions (with their periods) for 60k customers; after loading, ``refresh_derived``
builds ``mrr_changes`` as the bot does after a sync. Timed: four queries, and the set of
queries a default digest asks (each KPI "last 7d by day vs previous"), one after the other.

Each engine runs in a fresh process (ours; pandas reading the same database; DuckDB over
the same tables loaded from the SQLite file before timing), once to warm the caches, then
``--repeat`` (ours) or ``--baseline-repeat`` times: medians, worst runs and each process's
peak RSS are reported, with the ratios ours/pandas and ours/DuckDB. The run fails if a
baseline's answer differs from ours (beyond float noise). Needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.db import make_engine
from bot.settings import DigestConfig
from metrics import MetricContext, Result, evaluate, get_kpi, parse_query, refresh_derived
from metrics.schema import Base
from metrics.windows import DEFAULT_WINDOW, buckets, previous, resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_baselines import DUCKDB, PANDAS, PandasReader, Span, load_duckdb

QUERIES = (
    "frt p90 last 30d by day",
    "nps last 30d",
    "nps last 12m by month",
    "mrr movements last 12m by month",
)
# What a default digest asks (bot/settings.py DigestConfig, bot/digests.py): each KPI over
# the digest's window, by day, against the window before.
_DIGEST = DigestConfig.model_fields["kpis"].default
DIGEST = tuple(f"{kpi} last 7d by day vs previous" for kpi in _DIGEST)
DIGEST_LABEL = f"digest ({', '.join(_DIGEST)})"
ZONE = "Europe/Warsaw"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
START = datetime(2024, 11, 24, 9, 0, tzinfo=UTC)
TICKETS, SURVEYS, SUBSCRIPTIONS, CUSTOMERS = 1_000_000, 1_000_000, 100_000, 60_000
DEFAULT_DB = Path(__file__).parent / "out" / "metrics.db"


def _times(rng: np.random.Generator, n: int, start: datetime = START) -> np.ndarray:
    """``n`` random instants from ``start`` to NOW, as epoch microseconds."""
    lo = int(start.timestamp() * 1e6)
    return rng.integers(lo, int(NOW.timestamp() * 1e6), size=n)


def _text(us: np.ndarray) -> list[str]:
    """Epoch microseconds as the naive UTC text UTCDateTime stores in SQLite."""
    iso = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return np.char.replace(iso, "T", " ").tolist()


CHUNK = 100_000
TICKET_COLUMNS = [
    "id", "source", "customer_id", "status", "channel", "group_name", "priority",
    "created_at", "first_reply_minutes", "first_reply_business_minutes", "solved_at",
    "full_resolution_minutes", "replies", "reopens", "updated_at",
]  # fmt: skip
SURVEY_COLUMNS = [
    "id", "source", "kind", "score", "scale_max", "customer_id", "responded_at", "updated_at",
]  # fmt: skip
PERIOD_COLUMNS = [
    "id", "source", "subscription_id", "customer_id", "status", "quantity", "mrr",
    "currency", "valid_from", "valid_to", "updated_at",
]  # fmt: skip
Chunk = tuple[str, list[str], list[tuple[object, ...]]]


def generate() -> Iterator[Chunk]:
    """The warehouse in chunks of rows (table, columns, rows), from one seed."""
    rng = np.random.default_rng(20261124)
    for first in range(0, TICKETS, CHUNK):
        yield "tickets", TICKET_COLUMNS, _tickets(rng, first, min(CHUNK, TICKETS - first))
    for first in range(0, SURVEYS, CHUNK):
        yield "survey_responses", SURVEY_COLUMNS, _surveys(rng, first, min(CHUNK, SURVEYS - first))
    yield "subscription_periods", PERIOD_COLUMNS, _periods(rng)


def _tickets(rng: np.random.Generator, first: int, n: int) -> list[tuple[object, ...]]:
    created = _times(rng, n)
    replied = rng.random(n) < 0.95
    frt = np.round(rng.lognormal(4.0, 1.2, n), 2)
    solved = rng.random(n) < 0.85
    ttr = np.round(rng.lognormal(7.0, 1.0, n), 2)
    status = np.where(solved, "solved", rng.choice(["new", "open", "pending", "hold"], n))
    channel = rng.choice(["email", "web", "chat", "phone"], n)
    created_s = _text(created)
    solved_s = _text(created + (ttr * 60e6).astype(np.int64))
    return [
        (f"t{first + i}", "bench", f"c{(first + i) % CUSTOMERS}", str(status[i]),
         str(channel[i]), "l1", "normal", created_s[i],
         float(frt[i]) if replied[i] else None, float(frt[i]) / 2 if replied[i] else None,
         solved_s[i] if solved[i] else None, float(ttr[i]) if solved[i] else None,
         1, 0, created_s[i])
        for i in range(n)
    ]  # fmt: skip


def _surveys(rng: np.random.Generator, first: int, n: int) -> list[tuple[object, ...]]:
    responded = _text(_times(rng, n))
    kinds = rng.choice(["nps", "csat", "ces"], n, p=[0.6, 0.3, 0.1])
    scales = np.select([kinds == "nps", kinds == "csat"], [10, 5], 7)
    scores = np.floor(rng.random(n) * (scales + 1)).astype(int)
    return [
        (f"s{first + i}", "bench", str(kinds[i]), float(scores[i]), int(scales[i]),
         f"c{(first + i) % CUSTOMERS}", responded[i], responded[i])
        for i in range(n)
    ]  # fmt: skip


def _periods(rng: np.random.Generator) -> list[tuple[object, ...]]:
    """Each subscription a chain of 1–4 periods (up- and downgrades); most end canceled."""
    day = 86_400_000_000
    stop = int(NOW.timestamp() * 1e6)
    begin = _times(rng, SUBSCRIPTIONS, datetime(2023, 1, 1, tzinfo=UTC))
    lengths = rng.integers(20, 400, size=(SUBSCRIPTIONS, 4)) * day
    prices = rng.choice([2900.0, 9900.0, 29900.0, 99900.0], SUBSCRIPTIONS)
    factors = rng.choice([0.5, 1.5, 2.0], size=(SUBSCRIPTIONS, 4))
    links = rng.integers(1, 5, SUBSCRIPTIONS)
    open_ended = rng.random(SUBSCRIPTIONS) < 0.4
    past_due = rng.random((SUBSCRIPTIONS, 4)) < 0.03
    out: list[tuple[object, ...]] = []
    for i in range(SUBSCRIPTIONS):
        t, mrr = int(begin[i]), float(prices[i])
        for j in range(int(links[i])):
            last = j == links[i] - 1
            end = None if last and open_ended[i] else t + int(lengths[i, j])
            start_s = _text(np.array([t]))[0]
            end_s = _text(np.array([end]))[0] if end is not None else None
            out.append((f"p{i}-{j}", "bench", f"sub{i}", f"c{i % CUSTOMERS}",
                        "past_due" if past_due[i, j] else "active", 1, round(mrr, 4), "USD",
                        start_s, end_s, start_s))  # fmt: skip
            if end is None or end > stop:
                break
            t, mrr = end, mrr * float(factors[i, j])
    return out


def build_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    import sqlite3

    conn = sqlite3.connect(path)
    for table, columns, rows in generate():
        marks = ", ".join("?" * len(columns))
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        conn.commit()
        print(f"  {table}: +{len(rows):,} rows", flush=True)
    conn.commit()
    conn.close()
    refresh(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def refresh(url: str) -> None:
    """What the bot does after a sync: fold the changed customers into mrr_changes."""
    engine = make_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        customers = refresh_derived(conn)
    print(f"  mrr_changes: {customers:,} customers in {time.perf_counter() - t0:.1f} s", flush=True)
    engine.dispose()


def build_postgres(url: str) -> None:
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, columns, rows in generate():
            stamped = [i for i, c in enumerate(columns) if c.endswith(("_at", "_from", "_to"))]
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    values = list(row)
                    for i in stamped:  # naive UTC text → timestamptz
                        if values[i] is not None:
                            values[i] = f"{values[i]}+00"
                    copy.write_row(values)
            raw.commit()
            print(f"  {table}: +{len(rows):,} rows", flush=True)
        raw.commit()
    finally:
        raw.close()
    refresh(url)
    # As autovacuum would: index-only scans need the visibility map.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


# --- timing ---------------------------------------------------------------------------


def plan(text: str) -> tuple[str, list[Span], bool]:
    """What a baseline must answer for ``text``: its key in the baselines' tables, the
    current window (and the previous one when compared), and whether it has a series."""
    query = parse_query(text)
    kpi = get_kpi(query.kpi)
    tz = ZoneInfo(ZONE)
    window = resolve(query.window or DEFAULT_WINDOW, tz, NOW)
    grain = query.grain or kpi.default_grain
    windows = [window]
    if query.comparison:
        windows.append(previous(window, query.comparison, NOW))
    spans = []
    for w in windows:
        cut = buckets(w, grain) if grain else ()
        edges = (w.start, *(b.end for b in cut)) if cut else (w.start, w.end)
        spans.append(Span(w.start, w.end, edges))
    key = f"{kpi.name} {query.statistic}" if query.statistic else kpi.name
    return key, spans, grain is not None


def _answer_ours(result: Result) -> dict[str, object]:
    return {
        "value": result.value,
        "series": [p.value for p in result.series],
        "previous": result.previous,
        "previous_series": [p.value for p in result.previous_series],
    }


def _answer_baseline(answers: list[tuple[float | None, list[float | None]]]) -> dict[str, object]:
    (value, series), *rest = answers
    out: dict[str, object] = {"value": value, "series": series}
    if rest:
        out["previous"], out["previous_series"] = rest[0]
    return out


def measure(url: str, repeat: int, engine_name: str, db_path: Path) -> dict[str, object]:
    """Run in a fresh process: time each query and the digest's set with one engine (ours,
    pandas or duckdb), then report the answers and the process's peak RSS."""
    setup_ms = 0.0
    closers = []
    if engine_name == "ours":
        engine = make_engine(url)
        conn = engine.connect()
        closers = [conn.close, engine.dispose]
        ctx = MetricContext(timezone=ZoneInfo(ZONE))

        def answer(text: str) -> dict[str, object]:
            return _answer_ours(evaluate(conn, parse_query(text), ctx, now=NOW))

    elif engine_name == "pandas":
        engine = make_engine(url)
        conn = engine.connect()
        closers = [conn.close, engine.dispose]
        reader = PandasReader(conn, engine.dialect.name)

        def answer(text: str) -> dict[str, object]:
            key, spans, _ = plan(text)
            return _answer_baseline([PANDAS[key](reader, s) for s in spans])

    else:
        t0 = time.perf_counter()
        db = load_duckdb(str(db_path))
        setup_ms = (time.perf_counter() - t0) * 1000
        closers = [db.close]

        def answer(text: str) -> dict[str, object]:
            key, spans, _ = plan(text)
            return _answer_baseline([DUCKDB[key](db, s) for s in spans])

    timings: dict[str, list[float]] = {}
    answers: dict[str, dict[str, object]] = {}
    for text in (*QUERIES, *DIGEST):
        answers[text] = answer(text)  # warm the caches and the plans
        timings[text] = []
    for _ in range(repeat):
        for text in QUERIES:
            t0 = time.perf_counter()
            answer(text)
            timings[text].append((time.perf_counter() - t0) * 1000)
        # The digest's set as the digest asks it: one KPI after the other.
        t0 = time.perf_counter()
        for text in DIGEST:
            t1 = time.perf_counter()
            answer(text)
            timings[text].append((time.perf_counter() - t1) * 1000)
        timings.setdefault(DIGEST_LABEL, []).append((time.perf_counter() - t0) * 1000)
    for close in closers:
        close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_ms": {q: statistics.median(r) for q, r in timings.items()},
            "max_ms": {q: max(r) for q, r in timings.items()}, "peak_rss_mb": peak_mb,
            "setup_ms": setup_ms, "answers": answers}  # fmt: skip


def _close(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is None and b is None
    assert isinstance(a, float | int) and isinstance(b, float | int)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def check_same(ours: dict[str, object], other: dict[str, object], name: str) -> None:
    """The baseline gives our numbers (within float tolerance), or the run fails."""
    for text in (*QUERIES, *DIGEST):
        _, spans, has_series = plan(text)
        mine, theirs = ours[text], other[text]  # type: ignore[index]
        fields = ["value"] + (["series"] if has_series else [])
        if len(spans) > 1:
            fields += ["previous"] + (["previous_series"] if has_series else [])
        for field in fields:
            a, b = mine[field], theirs[field]  # type: ignore[index]
            assert _close(a, b), f"{name} disagrees on {text!r} {field}: {a} vs {b}"


def _run(url: str, engine_name: str, repeat: int, db: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--measure", url, "--engine", engine_name,
           "--repeat", str(repeat), "--db", str(db)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--postgres", help="also build and time this PostgreSQL database")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline-repeat", type=int, default=3, help="runs of pandas, DuckDB")
    parser.add_argument("--no-baselines", action="store_true", help="time our engine only")
    # Internal: the building and timing processes. Each runs apart, because a child
    # inherits its parent's peak RSS across exec on Linux.
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, args.engine, args.db)))
        return
    if args.build:
        t0 = time.perf_counter()
        if args.build.startswith("sqlite"):
            build_sqlite(args.db)
        else:
            build_postgres(args.build)
        print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
        return
    targets = [("SQLite", f"sqlite:///{args.db}")]
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))
    for name, url in targets:
        if args.rebuild or (name == "SQLite" and not args.db.exists()):
            print(f"building {name} …", flush=True)
            build = [sys.executable, __file__, "--build", url, "--db", str(args.db)]
            subprocess.run(build, check=True)
    duck = None
    if not args.no_baselines:
        duck = _run(targets[0][1], "duckdb", args.baseline_repeat, args.db)
        print(f"DuckDB: tables loaded from SQLite in {duck['setup_ms'] / 1000:.1f} s "
              f"(not timed); peak RSS {duck['peak_rss_mb']:.0f} MB")  # fmt: skip
    for name, url in targets:
        ours = _run(url, "ours", args.repeat, args.db)
        print(f"\n{name}: peak RSS {ours['peak_rss_mb']:.0f} MB (ours)", end="")
        panda = None
        if duck is not None:
            panda = _run(url, "pandas", args.baseline_repeat, args.db)
            check_same(ours["answers"], panda["answers"], "pandas")
            check_same(ours["answers"], duck["answers"], "DuckDB")
            print(f", {panda['peak_rss_mb']:.0f} MB (pandas); every answer matches both", end="")
        print()
        print(f"  {'query':<40} {'ours median (max)':>20} {'pandas':>10} {'ours/pd':>8} "
              f"{'DuckDB':>10} {'ours/duck':>9}")  # fmt: skip
        for text in (*QUERIES, DIGEST_LABEL, *DIGEST):
            median, worst = ours["median_ms"][text], ours["max_ms"][text]
            line = f"  {text:<40} {median:9.1f} ms ({worst:6.1f})"
            if panda is not None and duck is not None:
                pd_ms, dk_ms = panda["median_ms"][text], duck["median_ms"][text]
                line += (f" {pd_ms:7.1f} ms {median / pd_ms:8.3f} {dk_ms:7.1f} ms "
                         f"{median / dk_ms:9.2f}")  # fmt: skip
            print(line, flush=True)


if __name__ == "__main__":
    main()

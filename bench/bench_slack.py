"""How fast /kpi answers on Slack: signed request → ack, and → the chart at Slack.

Runs the real SlackPlatform in HTTP mode (slack-bolt, slack-sdk, aiohttp) against the fake
Slack of the tests on 127.0.0.1, so the figures are the adapter's own cost plus loopback
HTTP, not Slack's. Two kinds of command handler:

``--handler stub`` (default) runs two stubs one after the other:

- ``prerendered``: returns a Reply with a PNG made once; measures the adapter alone.
- ``matplotlib``: renders a 30-point line chart per request with matplotlib's object API
  (Figure + Agg) in a worker thread, as the real charts do; no database query.

``--handler real --db PATH`` runs the real :class:`bot.commands.KpiService` on the SQLite
warehouse ``bench/bench_metrics.py`` builds (1M tickets, 1M surveys, 100k subscriptions;
``python bench/bench_metrics.py --rebuild`` once), its clock pinned to the end of that
data, answering a mix of realistic queries in turn (:data:`REAL_QUERIES`).

Each command goes to its own channel: posts to one channel are paced to one per second
on purpose, which is a cap, not a latency. ``--burst`` sends that many commands at once.

    python bench/bench_slack.py [--n 200] [--burst 20]
    python bench/bench_slack.py --handler real --db bench/out/metrics.db [--n 200] [--burst 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.platforms.base import CommandHandler, CommandRequest
from bot.platforms.slack import SlackPlatform
from bot.replies import Chart, Reply, Tone
from bot.settings import load_settings
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlackAPI,
    form_body,
    signed_headers,
    slash_command,
)


def render_png() -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(30), [50 - i * 0.3 + (i % 5) for i in range(30)])
    ax.set_title("NPS by day, last 30 days")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def reply_with(png: bytes) -> Reply:
    return Reply(
        title="NPS, last 30 days",
        headline="NPS 42 ±6 (n=318)",
        comparison="▼ 9 vs previous 30 days",
        tone=Tone.BAD,
        context=("1 Oct – 30 Oct 2026", "data as of 09:12 UTC"),
        chart=Chart(png=png, alt_text="NPS by day over the last 30 days"),
    )


def handler_for(kind: str) -> CommandHandler:
    if kind == "prerendered":
        reply = reply_with(render_png())

        async def prerendered(request: CommandRequest) -> Reply:
            return reply

        return prerendered

    async def matplotlib_chart(request: CommandRequest) -> Reply:
        return reply_with(await asyncio.to_thread(render_png))

    return matplotlib_chart


# What people ask, in turn: a single figure (charted over time by a second, grained query),
# a percentile series, a split by dimension, a weekly series, and revenue at an instant.
REAL_QUERIES = (
    "nps last 30d here",
    "frt p90 last 30d by day here",
    "tickets last 7d by channel here",
    "csat last 12w by week here",
    "mrr vs previous here",
)
# The bench warehouse's "now" (bench_metrics.NOW) and time zone, so windows hold data.
REAL_CONFIG = '[team]\ntimezone = "Europe/Warsaw"\n[permissions.default]\nallow = ["*"]\n'


def real_handler(db: Path) -> CommandHandler:
    """The real KpiService on the bench warehouse: what `kpibot serve` runs."""
    from bench.bench_metrics import NOW
    from bot.commands import KpiService
    from bot.db import make_engine
    from bot.sources import stream_tables

    config = Path(tempfile.mkdtemp(prefix="bench-slack-")) / "kpibot.toml"
    config.write_text(REAL_CONFIG)
    settings = load_settings({"KPIBOT_CONFIG": str(config)})
    engine = make_engine(f"sqlite:///{db}")
    service = KpiService(engine, settings, clock=lambda: NOW, stream_tables=stream_tables())
    return service.handle


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


async def one(
    session: aiohttp.ClientSession,
    url: str,
    fake: FakeSlackAPI,
    i: int,
    text: str = "nps last 30d here",
) -> tuple[float, float]:
    payload = slash_command(text, response_url=fake.response_url(f"r{i}"), channel_id=f"C{i:06d}")
    body = form_body(payload)
    start = time.perf_counter()
    async with session.post(url, data=body, headers=signed_headers(body)) as response:
        await response.read()
        acked = time.perf_counter()
        assert response.status == 200, response.status
    return start, acked


async def serve_bot(kind: str, api_url: str, db: Path | None) -> None:
    """The bot's side, in its own process: SlackPlatform in HTTP mode; prints its port."""
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": api_url,
        }
    )
    platform = SlackPlatform(settings, mode="http", host="127.0.0.1", port=0)
    if kind == "real":
        assert db is not None
        handler = real_handler(db)
    else:
        handler = handler_for(kind)
    await platform.start(handler)
    print(platform.port, flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
    await platform.stop()


async def run(
    kind: str,
    n: int,
    burst: int,
    *,
    queries: Sequence[str] = ("nps last 30d here",),
    db: Path | None = None,
    by_query: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Slack's side: the fake API and the signed requests, in this process.

    The bot runs in a child process so that its work (SQL, numpy, chart rendering) does
    not compete with the measuring client for this interpreter's GIL; both processes
    read the same monotonic clock (``time.perf_counter`` is CLOCK_MONOTONIC on Linux).
    Command ``i`` asks ``queries[i % len(queries)]``; every query must answer with a chart.
    ``by_query``, when given, collects the full-answer times (seconds) of each query.
    """
    fake = await FakeSlackAPI().start()
    extra = ["--db", str(db)] if db is not None else []
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--bot",
        kind,
        "--api-url",
        fake.api_url,
        *extra,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert bot.stdout is not None and bot.stdin is not None
    port = int(await bot.stdout.readline())
    url = f"http://127.0.0.1:{port}/slack/events"
    acks: list[float] = []
    charts: list[float] = []
    burst_acks: list[float] = []
    burst_all = 0.0  # from the first of the burst sent to the last chart uploaded
    try:
        async with aiohttp.ClientSession() as session:
            # Warm-up, one of each query: Bolt's first auth.test, imports, the page cache.
            for w, text in enumerate(queries):
                await one(session, url, fake, -1 - w, text)
                await fake.wait_for("upload", w + 1, timeout=60)
            warm = len(queries)
            for i in range(n):
                text = queries[i % len(queries)]
                start, acked = await one(session, url, fake, i, text)
                (*_, upload) = await fake.wait_for("upload", warm + i + 1, timeout=30)
                acks.append(acked - start)
                charts.append(upload.at - start)
                if by_query is not None:
                    by_query.setdefault(text, []).append(upload.at - start)
            if burst:
                done = len(fake.of("upload"))
                results = await asyncio.gather(
                    *(
                        one(session, url, fake, n + j, queries[j % len(queries)])
                        for j in range(burst)
                    )
                )
                burst_acks = [acked - start for start, acked in results]
                *_, last = await fake.wait_for("upload", done + burst, timeout=120)
                burst_all = last.at - min(start for start, _ in results)
    finally:
        bot.stdin.close()
        await bot.wait()
        await fake.close()
    figures = {
        "ack p50": pct(acks, 50),
        "ack p99": pct(acks, 99),
        "chart p50": pct(charts, 50),
        "chart p95": pct(charts, 95),
    }
    if burst_acks:
        figures[f"ack p99, {burst} at once"] = pct(burst_acks, 99)
        figures["burst answered"] = burst_all * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="sequential commands per handler")
    parser.add_argument("--burst", type=int, default=20, help="commands sent at once, after")
    parser.add_argument("--handler", choices=("stub", "real"), default="stub")
    parser.add_argument("--db", type=Path, help="the bench_metrics SQLite file (--handler real)")
    parser.add_argument("--bot", help=argparse.SUPPRESS)  # internal: the bot's process
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.bot:
        asyncio.run(serve_bot(args.bot, args.api_url, args.db))
        return
    if args.handler == "real":
        if args.db is None or not args.db.exists():
            parser.error("--handler real needs --db: run `python bench/bench_metrics.py` first")
        run_real(args.db.resolve(), args.n, args.burst)
        return
    print(f"| handler (stub) | n | {' | '.join(k + ' (ms)' for k in figure_keys(args.burst))} |")
    print("|---|---|" + "---|" * len(figure_keys(args.burst)))
    for kind in ("prerendered", "matplotlib"):
        figures = asyncio.run(run(kind, args.n, args.burst))
        cells = " | ".join(f"{figures[k]:.1f}" for k in figure_keys(args.burst))
        print(f"| {kind} | {args.n} | {cells} |")


def run_real(db: Path, n: int, burst: int) -> None:
    by_query: dict[str, list[float]] = {}
    figures = asyncio.run(run("real", n, burst, queries=REAL_QUERIES, db=db, by_query=by_query))
    keys = figure_keys(burst)
    print(f"| handler | n | {' | '.join(k + ' (ms)' for k in keys)} |")
    print("|---|---|" + "---|" * len(keys))
    print(f"| real KpiService, {len(REAL_QUERIES)}-query mix | {n} | "
          + " | ".join(f"{figures[k]:.0f}" for k in keys) + " |")  # fmt: skip
    if burst:
        print(f"\nall {burst} of the burst answered, charts uploaded: "
              f"{figures['burst answered']:.0f} ms")  # fmt: skip
    print("\n| query | n | chart p50 (ms) | chart p95 (ms) | max (ms) |")
    print("|---|---|---|---|---|")
    for text, times in by_query.items():
        print(f"| `{text}` | {len(times)} | {pct(times, 50):.0f} | {pct(times, 95):.0f} | "
              f"{max(times) * 1000:.0f} |")  # fmt: skip


def figure_keys(burst: int) -> list[str]:
    keys = ["ack p50", "ack p99", "chart p50", "chart p95"]
    return [*keys, f"ack p99, {burst} at once"] if burst else keys


if __name__ == "__main__":
    main()

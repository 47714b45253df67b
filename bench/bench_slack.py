"""How fast /kpi answers on Slack: signed request → ack, and → the chart at Slack.

Runs the real SlackPlatform in HTTP mode (slack-bolt, slack-sdk, aiohttp) against the fake
Slack of the tests on 127.0.0.1, so the figures are the adapter's own cost plus loopback
HTTP, not Slack's. The command handler is a STUB (the real one is wired in elsewhere):

- ``prerendered``: returns a Reply with a PNG made once; measures the adapter alone.
- ``matplotlib``: renders a 30-point line chart per request with matplotlib's object API
  (Figure + Agg) in a worker thread, as the real charts do; no database query.

Each command goes to its own channel: posts to one channel are paced to one per second
on purpose, which is a cap, not a latency. ``--burst`` sends that many commands at once.

    python bench/bench_slack.py [--n 200] [--burst 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys
import time
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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


async def one(
    session: aiohttp.ClientSession, url: str, fake: FakeSlackAPI, i: int
) -> tuple[float, float]:
    payload = slash_command(
        "nps last 30d here", response_url=fake.response_url(f"r{i}"), channel_id=f"C{i:06d}"
    )
    body = form_body(payload)
    start = time.perf_counter()
    async with session.post(url, data=body, headers=signed_headers(body)) as response:
        await response.read()
        acked = time.perf_counter()
        assert response.status == 200, response.status
    return start, acked


async def serve_bot(kind: str, api_url: str) -> None:
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
    await platform.start(handler_for(kind))
    print(platform.port, flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
    await platform.stop()


async def run(kind: str, n: int, burst: int) -> dict[str, float]:
    """Slack's side: the fake API and the signed requests, in this process.

    The bot runs in a child process so that its work (chart rendering above all) does
    not compete with the measuring client for this interpreter's GIL; both processes
    read the same monotonic clock (``time.perf_counter`` is CLOCK_MONOTONIC on Linux).
    """
    fake = await FakeSlackAPI().start()
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--bot",
        kind,
        "--api-url",
        fake.api_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert bot.stdout is not None and bot.stdin is not None
    port = int(await bot.stdout.readline())
    url = f"http://127.0.0.1:{port}/slack/events"
    acks: list[float] = []
    charts: list[float] = []
    burst_acks: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            await one(session, url, fake, -1)  # warm-up: Bolt's first auth.test, imports
            await fake.wait_for("upload", 1, timeout=30)
            for i in range(n):
                start, acked = await one(session, url, fake, i)
                (*_, upload) = await fake.wait_for("upload", i + 2)
                acks.append(acked - start)
                charts.append(upload.at - start)
            if burst:
                done = len(fake.of("upload"))
                results = await asyncio.gather(
                    *(one(session, url, fake, n + j) for j in range(burst))
                )
                burst_acks = [acked - start for start, acked in results]
                await fake.wait_for("upload", done + burst, timeout=60)
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
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="sequential commands per handler")
    parser.add_argument("--burst", type=int, default=20, help="commands sent at once, after")
    parser.add_argument("--bot", help=argparse.SUPPRESS)  # internal: the bot's process
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.bot:
        asyncio.run(serve_bot(args.bot, args.api_url))
        return
    print(f"| handler (stub) | n | {' | '.join(k + ' (ms)' for k in figure_keys(args.burst))} |")
    print("|---|---|" + "---|" * len(figure_keys(args.burst)))
    for kind in ("prerendered", "matplotlib"):
        figures = asyncio.run(run(kind, args.n, args.burst))
        cells = " | ".join(f"{figures[k]:.1f}" for k in figure_keys(args.burst))
        print(f"| {kind} | {args.n} | {cells} |")


def figure_keys(burst: int) -> list[str]:
    keys = ["ack p50", "ack p99", "chart p50", "chart p95"]
    return [*keys, f"ack p99, {burst} at once"] if burst else keys


if __name__ == "__main__":
    main()

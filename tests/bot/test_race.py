"""Four kpibot processes on one PostgreSQL database reach the same digest and alert instant:
each message reaches the (fake) Slack exactly once. Then the schedule holder is killed: a
stand-by takes over within seconds, and still nothing is posted twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import make_engine
from bot.settings import parse_instant
from bot.state import Delivery
from metrics.schema import Base
from tests.bot.helpers import add_tickets, mark_synced
from tests.bot.test_cli import ROOT
from tests.conftest import _PG_SKIP, POSTGRES_URL, postgres_schema_url
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlackAPI

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL or bool(_PG_SKIP), reason=_PG_SKIP or "needs PostgreSQL"
)

AS_OF = "2026-11-24T08:00:00Z"  # Tuesday 09:00 in Warsaw: the digest and an alert check
WORKERS = 4
CONFIG = """
[team]
timezone = "Europe/Warsaw"

[sources.demo]
enabled = false

[[digests]]
name = "morning"
channel = "slack:C0SUPPORT"
schedule = "0 9 * * mon-fri"
kpis = ["tickets", "frt"]

[[alerts]]
name = "tickets-high"
query = "tickets last 1d"
channel = "slack:C0SUPPORT"
above = 3

[[alerts]]
name = "frt-by-channel"
query = "frt p90 last 1d"
channel = "slack:C0ALERTS"
above = 60
by = "channel"
"""
EXPECTED = 4  # the digest, tickets-high, frt-by-channel for email and for chat


class SlackInAThread:
    """The fake Slack Web API on its own event loop, so the test can block and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api = asyncio.run_coroutine_threadsafe(FakeSlackAPI().start(), self.loop).result(10)

    def posts(self) -> list[tuple[str, str]]:
        return [
            (c.params.get("channel", ""), str(c.params.get("text", "")).split("\n")[0])
            for c in list(self.api.calls)
            if c.method == "chat.postMessage"
        ]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def slack() -> Iterator[SlackInAThread]:
    fake = SlackInAThread()
    yield fake
    fake.close()


@pytest.fixture
def race_db() -> Iterator[str]:
    for url in postgres_schema_url():
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        now = parse_instant(AS_OF)
        add_tickets(engine, at=now - timedelta(hours=3), count=5, channel="email", first_reply=120)
        add_tickets(engine, at=now - timedelta(hours=2), count=3, channel="chat", first_reply=90)
        mark_synced(engine, now - timedelta(minutes=10))
        engine.dispose()
        yield url


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_four_instances_post_each_message_once_and_a_standby_takes_over(
    race_db: str, slack: SlackInAThread, tmp_path: Path
) -> None:
    config = tmp_path / "kpibot.toml"
    config.write_text(CONFIG)
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KPIBOT_", "SLACK_", "DISCORD_", "ZENDESK_", "STRIPE_", "DELIGHTED_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack.api.api_url,
        MPLBACKEND="Agg",
    )
    logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
    files = [log.open("w") for log in logs]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bot.race_worker",
                race_db,
                str(config),
                AS_OF,
                str(rendezvous),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=file,
        )
        for file in files
    ]

    def said(i: int, text: str) -> bool:
        return text in logs[i].read_text()

    try:
        wait_for(lambda: len(list(rendezvous.glob("ready-*"))) == WORKERS, 60, "4 workers")
        (rendezvous / "go").touch()  # all reach 09:00 Warsaw together
        wait_for(lambda: all(said(i, "one-shot done") for i in range(WORKERS)), 60, "one-shots")
        wait_for(lambda: sum(said(i, "catch-up done") for i in range(WORKERS)) == 1, 30, "a holder")
        holder = next(i for i in range(WORKERS) if said(i, "catch-up done"))
        others = [i for i in range(WORKERS) if i != holder]
        wait_for(
            lambda: all(said(i, "another instance holds the schedule lock") for i in others),
            30,
            "the stand-bys",
        )
        posts = slack.posts()
        assert len(posts) == EXPECTED, posts
        assert max(Counter(posts).values()) == 1
        assert {channel for channel, _ in posts} == {"C0SUPPORT", "C0ALERTS"}

        procs[holder].send_signal(signal.SIGKILL)  # no goodbye: its session just dies
        procs[holder].wait(10)
        killed_at = time.monotonic()
        wait_for(
            lambda: any(said(i, "took over the schedule lock") for i in others), 15, "a take-over"
        )
        took_over_in = time.monotonic() - killed_at
        successor = next(i for i in others if said(i, "took over the schedule lock"))
        wait_for(lambda: said(successor, "catch-up done"), 30, "the new holder's catch-up")
        assert took_over_in < 10
        assert sum(said(i, "took over the schedule lock") for i in others) == 1
        assert slack.posts() == posts  # the new holder sent nothing twice
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for file in files:
            file.close()

    engine = make_engine(race_db)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.what, Delivery.status, Delivery.claimed_by)).all()
    engine.dispose()
    assert sorted(r.what for r in rows) == [
        "alert:frt-by-channel:chat",
        "alert:frt-by-channel:email",
        "alert:tickets-high",
        "digest:morning",
    ]
    assert {r.status for r in rows} == {"posted"}
    for i, log in enumerate(logs):
        text = log.read_text()
        assert "Traceback" not in text, f"worker {i}:\n{text}"

"""One schedule per database: the PostgreSQL advisory lock, take-over, and SQLite's refusal."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.db import make_engine
from bot.leader import ScheduleLock, lock_key
from bot.runtime import BotApp
from metrics.schema import Base
from tests.bot.helpers import Clock, RecordingPlatform, settings_with
from tests.conftest import _PG_SKIP, POSTGRES_URL, postgres_schema_url

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


_ENGINES: list[Engine] = []


def engine_for(url: str) -> Engine:
    """An engine disposed of after the test (an open connection left behind is an error)."""
    engine = make_engine(url)
    _ENGINES.append(engine)
    return engine


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema: the advisory lock is PostgreSQL's."""
    if not POSTGRES_URL or _PG_SKIP:
        pytest.skip(_PG_SKIP or "PostgreSQL not configured")
    for url in postgres_schema_url():
        Base.metadata.create_all(engine_for(url))
        yield url
        while _ENGINES:
            _ENGINES.pop().dispose()


def quiet_app(url: str, **kw: object) -> BotApp:
    settings = settings_with(digests=[], sources={"demo": {"enabled": False}})
    return BotApp(
        settings,
        engine_for(url),
        clock=Clock(NOW),
        platforms={"slack": RecordingPlatform()},
        **kw,  # type: ignore[arg-type]
    )


def test_lock_keys_differ_by_database_and_schema() -> None:
    assert lock_key("test", "a") != lock_key("test", "b") != lock_key("prod", "a")
    assert -(2**63) <= lock_key("test", "a") < 2**63


def test_one_holder_at_a_time_and_holding_twice_does_not_stack(pg_url: str) -> None:
    a, b = ScheduleLock(engine_for(pg_url)), ScheduleLock(engine_for(pg_url))
    assert a.acquire() and a.acquire()  # again: still one lock
    assert not b.acquire()
    assert a.still_held() and not b.still_held()
    a.release()  # one release frees it (a stacked lock would still be held)
    assert b.acquire() and b.still_held()
    b.release()


def test_a_dead_session_loses_the_lock_and_another_takes_it(pg_url: str) -> None:
    holder, other = ScheduleLock(engine_for(pg_url)), ScheduleLock(engine_for(pg_url))
    assert holder.acquire()
    pid = holder._conn.execute(text("select pg_backend_pid()")).scalar()
    holder._conn.commit()
    with engine_for(pg_url).begin() as conn:
        conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid})
    assert not holder.still_held()
    assert other.acquire()
    other.release()


async def test_a_standby_polls_at_its_interval_and_takes_over_when_the_holder_stops(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    polls: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        polls.append(seconds)
        await asyncio.sleep(0)

    holder = quiet_app(pg_url)
    standby = quiet_app(pg_url, lock_poll_seconds=2.5, sleep=fake_sleep)
    stop_holder, stop_standby = asyncio.Event(), asyncio.Event()
    with caplog.at_level(logging.INFO, logger="bot.runtime"):
        running = asyncio.create_task(holder.run(stop_holder))
        while holder.scheduler is None:
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(standby.run(stop_standby))
        while not polls:
            await asyncio.sleep(0.01)
        assert standby.scheduler is None
        stop_holder.set()
        await running
        async with asyncio.timeout(10):
            while standby.scheduler is None:
                await asyncio.sleep(0.01)
    assert set(polls) == {2.5}
    assert "took over the schedule lock" in caplog.text
    stop_standby.set()
    await waiting


async def test_a_holder_whose_lock_died_stops_its_schedule_and_stands_by(pg_url: str) -> None:
    app = quiet_app(pg_url, lock_poll_seconds=0.01)
    stop = asyncio.Event()
    running = asyncio.create_task(app.run(stop))
    while app.scheduler is None:
        await asyncio.sleep(0.01)
    ran: list[str] = []

    async def job() -> None:
        ran.append("ran")

    await app._guarded(job)()
    assert ran == ["ran"]
    pid = app.lock._conn.execute(text("select pg_backend_pid()")).scalar()
    app.lock._conn.commit()
    thief = ScheduleLock(engine_for(pg_url))
    with engine_for(pg_url).begin() as conn:
        conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid})
    assert thief.acquire()
    await app._guarded(job)()
    assert ran == ["ran"] and app.scheduler is None  # not run, schedule stopped
    thief.release()
    async with asyncio.timeout(10):  # ... and it takes the lock back once it is free
        while app.scheduler is None:
            await asyncio.sleep(0.01)
    stop.set()
    await running


def _try_lock(path: str, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(f"sqlite:///{path}")
    result.put(ScheduleLock(engine).acquire())
    engine.dispose()


def test_on_sqlite_a_second_process_cannot_take_the_schedule(tmp_path: Path) -> None:
    db = tmp_path / "kpibot.db"
    engine = make_engine(f"sqlite:///{db}")
    holder = ScheduleLock(engine)
    assert holder.acquire()
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    child = ctx.Process(target=_try_lock, args=(str(db), result))
    child.start()
    child.join(30)
    assert result.get(timeout=5) is False
    holder.release()
    engine.dispose()


async def test_on_sqlite_a_second_bot_refuses_its_scheduler_with_a_clear_message(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    holder = ScheduleLock(sqlite_engine)
    assert holder.acquire()
    app = BotApp(
        settings_with(digests=[]),
        sqlite_engine,
        clock=Clock(NOW),
        platforms={"slack": RecordingPlatform()},
    )
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR):
        running = asyncio.create_task(app.run(stop))
        await asyncio.sleep(0.05)
        stop.set()
        await running
    assert app.scheduler is None and app._standby is None
    message = caplog.text
    assert "not running the schedule" in message and "SQLite" in message
    assert "PostgreSQL" in message and "process" in message
    holder.release()

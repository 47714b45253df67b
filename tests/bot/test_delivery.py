"""The delivery ledger: once per (what, where, period); a failed post retried, never doubled."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from bot.delivery import Deliverer, RetryPolicy, decode_reply, encode_reply
from bot.replies import Chart, Field, Reply, Tone
from bot.state import Delivery
from tests.bot.helpers import Clock, RecordingPlatform

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
REPLY = Reply(
    title="Morning digest",
    kind="digest",
    fields=(Field("NPS", "+21  ▼ 9", Tone.BAD),),
    text="hello",
    context=("Demo synced just now",),
    chart=Chart(b"\x89PNG-bytes", "alt", "digest.png"),
)


def deliverer(
    engine: Engine, clock: Clock, **policy: object
) -> tuple[Deliverer, RecordingPlatform]:
    platform = RecordingPlatform()
    return (
        Deliverer(
            engine,
            {"slack": platform},
            clock=clock,
            policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        ),
        platform,
    )


async def send(d: Deliverer, period: str = "2026-11-24T09:00", **kw: object):  # type: ignore[no-untyped-def]
    return await d.deliver(
        what="digest:morning", target="slack:C1", period=period, reply=REPLY, **kw
    )  # type: ignore[arg-type]


def row(engine: Engine, period: str = "2026-11-24T09:00"):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(Delivery).where(Delivery.period == period)).mappings().one()


def test_a_reply_survives_the_ledger_round_trip() -> None:
    assert decode_reply(encode_reply(REPLY)) == REPLY


async def test_only_the_first_claim_posts(engine: Engine) -> None:
    clock = Clock(NOW)
    a, pa = deliverer(engine, clock)
    b, pb = deliverer(engine, clock)
    first, second = await send(a), await send(b)
    assert first.posted and first.message_ref == "ts-1"
    assert not second.claimed
    assert len(pa.posts) + len(pb.posts) == 1
    stored = row(engine)
    assert stored["status"] == "posted" and stored["message_ref"] == "ts-1"
    assert stored["payload"] is None  # kept only until posted


async def test_a_failed_post_is_retried_after_its_backoff_exactly_once(engine: Engine) -> None:
    clock = Clock(NOW)
    a, pa = deliverer(engine, clock, backoff=timedelta(minutes=5))
    b, pb = deliverer(engine, clock, backoff=timedelta(minutes=5))
    pa.fail_next()
    failed = await send(a)
    assert failed.claimed and failed.status == "failed"
    assert row(engine)["error"].endswith("(channel_not_found)")
    await a.retry_due()
    assert pa.posts == []  # not before the backoff
    clock.advance(minutes=5)
    results = await asyncio.gather(a.retry_due(), b.retry_due())
    assert sum(len(r) for r in results) == 1  # one process took it over
    assert len(pa.posts) + len(pb.posts) == 1
    posted = (pa.posts + pb.posts)[0]
    assert posted.reply == REPLY  # what was decided then, from the ledger
    assert row(engine)["status"] == "posted" and row(engine)["attempts"] == 2
    clock.advance(hours=1)
    await a.retry_due()
    assert len(pa.posts) + len(pb.posts) == 1


async def test_the_backoff_doubles_and_the_ledger_gives_up_loudly(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(NOW)
    d, platform = deliverer(engine, clock, attempts=3, backoff=timedelta(minutes=5))
    platform.fail_next(3)
    await send(d, expires_at=NOW + timedelta(hours=6))
    assert row(engine)["retry_at"] == NOW + timedelta(minutes=5)
    clock.advance(minutes=5)
    await d.retry_due()
    assert row(engine)["retry_at"] == clock.now + timedelta(minutes=10)
    clock.advance(minutes=10)
    with caplog.at_level(logging.ERROR):
        await d.retry_due()
    assert row(engine)["status"] == "abandoned" and row(engine)["attempts"] == 3
    assert "was not delivered after 3 attempt(s)" in caplog.text
    clock.advance(hours=1)
    await d.retry_due()
    assert platform.posts == []


async def test_a_post_past_its_usefulness_is_not_retried(engine: Engine) -> None:
    clock = Clock(NOW)
    d, platform = deliverer(engine, clock, backoff=timedelta(minutes=30))
    platform.fail_next()
    await send(d, expires_at=NOW + timedelta(minutes=20))
    assert row(engine)["status"] == "abandoned"  # the retry would come too late


async def test_a_claim_whose_process_died_is_retried_after_the_claim_timeout(
    engine: Engine,
) -> None:
    clock = Clock(NOW)
    dead, _ = deliverer(engine, clock, claim_timeout=timedelta(minutes=10))
    with engine.begin() as conn:  # claimed, then the process was killed before posting
        assert dead.claim(
            conn, what="digest:morning", target="slack:C1", period="p", reply=REPLY, now=NOW
        )
    alive, platform = deliverer(engine, clock, claim_timeout=timedelta(minutes=10))
    clock.advance(minutes=9)
    await alive.retry_due()
    assert platform.posts == []  # the claimer may still be posting
    clock.advance(minutes=1)
    await alive.retry_due()
    assert platform.titles() == ["Morning digest"]
    assert row(engine, "p")["claimed_by"] == alive.instance


async def test_nothing_is_claimed_for_a_target_no_platform_here_can_post_to(
    engine: Engine,
) -> None:
    d, _ = deliverer(engine, Clock(NOW))
    posted = await d.deliver(what="digest:x", target="discord:123", period="p", reply=REPLY)
    assert not posted.claimed
    with engine.connect() as conn:
        assert conn.execute(select(Delivery)).first() is None  # left for an instance that can


def test_many_threads_claiming_at_once_post_once(engine: Engine) -> None:
    clock = Clock(NOW)
    platforms = []

    def attempt(_: int) -> bool:
        d, platform = deliverer(engine, clock)
        platforms.append(platform)
        return asyncio.run(send(d)).claimed

    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(attempt, range(16)))
    assert claimed.count(True) == 1
    assert sum(len(p.posts) for p in platforms) == 1

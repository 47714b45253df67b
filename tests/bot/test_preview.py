"""A Slack digest shown on the console (no Slack token yet) must never count as posted."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from bot.delivery import Deliverer
from bot.replies import Reply
from bot.state import Delivery
from tests.bot.helpers import RecordingPlatform

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
DIGEST = Reply(title="Morning digest", kind="digest")


async def test_a_console_preview_is_shown_once_and_leaves_the_real_post_to_do(
    engine: Engine,
) -> None:
    console = RecordingPlatform()
    console.name = "console"  # type: ignore[misc]
    local = Deliverer(engine, {"console": console}, clock=lambda: NOW)
    for _ in range(2):
        await local.deliver(what="digest:morning", target="slack:C1", period="p1", reply=DIGEST)
    assert [p.channel for p in console.posts] == [
        "slack:C1"
    ]  # the console says where it was meant to go

    slack = RecordingPlatform()
    real = Deliverer(engine, {"slack": slack}, clock=lambda: NOW)
    assert real.status("digest:morning", "slack:C1", "p1") is None
    posted = await real.deliver(what="digest:morning", target="slack:C1", period="p1", reply=DIGEST)
    assert posted.claimed and [p.channel for p in slack.posts] == ["C1"]
    with engine.connect() as conn:
        targets = sorted(conn.execute(select(Delivery.target, Delivery.status)).all())
    assert targets == [("console-preview:slack:C1", "posted"), ("slack:C1", "posted")]


async def test_a_failed_slack_post_is_never_retried_onto_the_console(engine: Engine) -> None:
    slack = RecordingPlatform()
    slack.fail_next()
    await Deliverer(engine, {"slack": slack}, clock=lambda: NOW).deliver(
        what="digest:morning", target="slack:C1", period="p1", reply=DIGEST
    )
    console = RecordingPlatform()
    console.name = "console"  # type: ignore[misc]
    later = datetime(2026, 11, 24, 12, tzinfo=UTC)
    await Deliverer(engine, {"console": console}, clock=lambda: later).retry_due()
    assert console.posts == []

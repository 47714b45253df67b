"""One kpibot instance for the race test, as a real OS process.

``python -m tests.bot.race_worker <database url> <config> <as-of> <rendezvous dir>``

It posts to Slack through the real adapter (``SLACK_API_URL`` points at the test's fake),
waits at the rendezvous until every instance is ready, then, at the same instant as the
others, does what an operator running ``kpibot digest --post`` and ``kpibot alerts --post``
on each instance would; then it runs the bot (``BotApp.run``): one instance gets the
schedule lock, the others stand by, polling every 0.2 s. Its clock starts at ``as-of`` and
runs at the speed of real time. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from bot.db import make_engine
from bot.logs import setup_logging
from bot.platforms.base import CommandHandler
from bot.platforms.slack import SlackPlatform
from bot.replies import Reply
from bot.runtime import BotApp
from bot.settings import load_settings, parse_instant

log = logging.getLogger("race_worker")


class PostOnly:
    """The Slack adapter for posting only: no Socket Mode connection in this test."""

    name: ClassVar[str] = "slack"

    def __init__(self, slack: SlackPlatform) -> None:
        self.slack = slack

    async def start(self, handler: CommandHandler) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        return await self.slack.post(target, reply, thread_ref=thread_ref)


async def main(url: str, config: str, as_of: str, rendezvous: Path) -> None:
    settings = load_settings({**os.environ, "KPIBOT_DATABASE_URL": url}, config_path=config)
    setup_logging("INFO")
    start = parse_instant(as_of)
    began = time.monotonic()

    def clock():  # type: ignore[no-untyped-def]
        return start + timedelta(seconds=time.monotonic() - began)

    app = BotApp(
        settings,
        make_engine(url),
        clock=clock,
        platforms={"slack": PostOnly(SlackPlatform(settings))},  # type: ignore[dict-item]
        lock_poll_seconds=0.2,
        instance=f"worker-{os.getpid()}",
    )
    (rendezvous / f"ready-{os.getpid()}").touch()
    while not (rendezvous / "go").exists():
        await asyncio.sleep(0.01)
    for digest in settings.config.digests:
        await app.send_digest_if_due(digest, start)
    await app.alerts.run_once(app.deliverer, start)
    log.info("one-shot done")
    await app.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))

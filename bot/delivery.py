"""Posting through the delivery ledger: exactly once per (what, where, period).

A target is ``"<platform>:<channel>"`` — ``slack:C0123ABC``, ``discord:1234…``,
``console:main``. A target whose platform is not running (no token configured) is shown on
the console instead when the console is the running platform, so a config written for Slack
can be tried locally first.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update

from bot.platforms.base import Platform
from bot.replies import Reply
from bot.state import Delivery, claim_delivery

log = logging.getLogger(__name__)

INSTANCE_ID = f"{socket.gethostname()}:{os.getpid()}"


def split_target(target: str) -> tuple[str, str]:
    platform, _, channel = target.partition(":")
    if not channel:
        return "console", platform
    return platform, channel


@dataclass(frozen=True)
class Posted:
    claimed: bool  # False: another process (or an earlier run) already delivered it
    message_ref: str | None = None


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        platforms: Mapping[str, Platform],
        *,
        clock: Callable[[], datetime],
        instance: str = INSTANCE_ID,
    ) -> None:
        self.engine = engine
        self.platforms = dict(platforms)
        self.clock = clock
        self.instance = instance

    def platform_for(self, target: str) -> tuple[Platform | None, str]:
        name, channel = split_target(target)
        platform = self.platforms.get(name)
        if platform is None and "console" in self.platforms:
            return self.platforms["console"], target
        return platform, channel

    async def deliver(
        self,
        *,
        what: str,
        target: str,
        period: str,
        reply: Reply,
        thread_ref: str | None = None,
    ) -> Posted:
        """Claim (what, target, period) in the ledger, and post only if the claim landed."""
        platform, channel = self.platform_for(target)
        if platform is None:
            log.error("no running platform can post to %s (%s %s skipped)", target, what, period)
            return Posted(claimed=False)
        with self.engine.begin() as conn:
            claimed = claim_delivery(
                conn,
                what=what,
                target=target,
                period=period,
                now=self.clock(),
                claimed_by=self.instance,
            )
        if not claimed:
            log.info("%s for %s %s already delivered: skipped", what, target, period)
            return Posted(claimed=False)
        try:
            ref = await platform.post(channel, reply, thread_ref=thread_ref)
        except Exception as exc:
            # The claim stays: a failed post is logged and recorded, not retried into a
            # duplicate. An operator can delete the ledger row to force a resend.
            log.exception("posting %s to %s failed", what, target)
            self._record(what, target, period, error=f"{type(exc).__name__}: {exc}"[:500])
            return Posted(claimed=True)
        self._record(what, target, period, ref=ref)
        return Posted(claimed=True, message_ref=ref)

    def _record(
        self,
        what: str,
        target: str,
        period: str,
        *,
        ref: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(Delivery.what == what, Delivery.target == target, Delivery.period == period)
                .values(posted_at=None if error else self.clock(), message_ref=ref, error=error)
            )

"""Posting through the delivery ledger: exactly once per (what, where, period).

A target is ``"<platform>:<channel>"`` — ``slack:C0123ABC``, ``discord:1234…``,
``console:main``. A target whose platform is not running (no token configured) is shown on
the console instead when the console is the running platform, so a config written for Slack
can be tried locally first. Such a preview has its own ledger target
(``console-preview:slack:C0123ABC``): it is shown once, and never counts as the real post.

What happens to a post, in order:

1. **Claim.** ``INSERT … ON CONFLICT DO NOTHING`` of (what, target, period) with the
   rendered reply; the claim is committed before anything is posted. Only the process whose
   row landed goes on; everyone else stops here. The claim carries a lease
   (``retry_at = now + claim_timeout``).
2. **Post.** Success records ``posted`` with the platform's message reference (replies in a
   thread find their parent's reference here) and drops the payload.
3. **A failed post** (the platform raised: a refusal, an outage, a 429 past its retries) is
   recorded as ``failed`` with the error and a backoff (``retry_at``). A later
   :meth:`Deliverer.retry_due` — run every minute by the schedule holder, whichever instance
   that is by then — re-claims the row with a conditional ``UPDATE`` that only one process
   can win, and posts the stored payload again. After ``attempts`` tries, or once the
   message is pointless (``expires_at``: a digest past its grace), the row is ``abandoned``
   and the loss is logged as an error. Nothing is ever dropped silently.
4. **A claimer that died** between claim and record leaves a ``claimed`` row whose lease
   runs out; it is retried like a failure. This is the one place a duplicate is possible:
   a process killed in the instant after the platform accepted a message and before the
   ledger recorded it. We prefer that rare duplicate to a silent loss.

Slack and Discord raise only when the message itself was refused or never reached them (a
refused chart upload is logged, not raised), so retrying a ``failed`` row does not
duplicate a message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from bot.platforms.base import Platform
from bot.replies import Chart, Field, Reply, Tone
from bot.state import (
    ABANDONED,
    CLAIMED,
    FAILED,
    POSTED,
    RETRYABLE,
    SKIPPED,
    Delivery,
    claim_delivery,
)

log = logging.getLogger(__name__)

INSTANCE_ID = f"{socket.gethostname()}:{os.getpid()}"


PREVIEW = "console-preview"  # ledger targets of posts shown on the console in place of another


def split_target(target: str) -> tuple[str, str]:
    platform, _, channel = target.partition(":")
    if not channel:
        return "console", platform
    return platform, channel


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the ledger tries before it gives a post up (``[bot]`` in the config)."""

    attempts: int = 3  # posts tried in all, the first one included
    backoff: timedelta = timedelta(minutes=5)  # before the 2nd attempt; doubles after
    claim_timeout: timedelta = timedelta(minutes=10)  # a claimer silent this long has died

    def delay(self, attempts: int) -> timedelta:
        return self.backoff * 2 ** max(0, attempts - 1)


@dataclass(frozen=True)
class Posted:
    claimed: bool  # False: another process (or an earlier run) already has it
    message_ref: str | None = None
    status: str | None = None  # the ledger status after this attempt

    @property
    def posted(self) -> bool:
        return self.status == POSTED


@dataclass(frozen=True)
class Key:
    what: str
    target: str
    period: str

    def where(self) -> Any:
        return (
            (Delivery.what == self.what)
            & (Delivery.target == self.target)
            & (Delivery.period == self.period)
        )

    def __str__(self) -> str:
        return f"{self.what} to {self.target} for {self.period}"


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        platforms: Mapping[str, Platform],
        *,
        clock: Callable[[], datetime],
        instance: str = INSTANCE_ID,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.platforms = dict(platforms)
        self.clock = clock
        self.instance = instance
        self.policy = policy or RetryPolicy()

    def route(self, target: str) -> str:
        """The ledger's target for ``target``: itself when its platform runs here; when only
        the console runs, a separate preview target, so that showing a Slack digest on the
        console never marks the real Slack post as done."""
        name, _ = split_target(target)
        if name in self.platforms or name == PREVIEW or "console" not in self.platforms:
            return target
        return f"{PREVIEW}:{target}"

    def platform_for(self, target: str) -> tuple[Platform | None, str]:
        name, channel = split_target(target)
        if name == PREVIEW:
            return self.platforms.get("console"), channel
        return self.platforms.get(name), channel

    def can_post(self, target: str) -> bool:
        return self.platform_for(self.route(target))[0] is not None

    # -- the ledger --------------------------------------------------------------------------

    def claim(
        self,
        conn: Connection,
        *,
        what: str,
        target: str,
        period: str,
        reply: Reply,
        now: datetime,
        thread_of: str | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        """Claim in the caller's transaction (an alert's state change and its notice commit
        together); post with :meth:`post_claimed` after the commit."""
        return claim_delivery(
            conn,
            what=what,
            target=self.route(target),
            period=period,
            now=now,
            claimed_by=self.instance,
            retry_at=now + self.policy.claim_timeout,
            expires_at=expires_at,
            thread_of=thread_of,
            payload=encode_reply(reply),
        )

    def status(self, what: str, target: str, period: str) -> str | None:
        target = self.route(target)
        with self.engine.connect() as conn:
            return conn.execute(
                select(Delivery.status).where(Key(what, target, period).where())
            ).scalar_one_or_none()

    def record_skipped(self, *, what: str, target: str, period: str, reason: str) -> bool:
        """Note that a post was deliberately not made (once: True only the first time)."""
        target = self.route(target)
        with self.engine.begin() as conn:
            landed = claim_delivery(
                conn,
                what=what,
                target=target,
                period=period,
                now=self.clock(),
                claimed_by=self.instance,
                status=SKIPPED,
            )
            if landed:
                conn.execute(
                    update(Delivery).where(Key(what, target, period).where()).values(error=reason)
                )
        return landed

    def forget_skipped(self, what: str, target: str, period: str) -> None:
        target = self.route(target)
        with self.engine.begin() as conn:
            conn.execute(
                delete(Delivery).where(
                    Key(what, target, period).where(), Delivery.status == SKIPPED
                )
            )

    # -- posting -----------------------------------------------------------------------------

    async def deliver(
        self,
        *,
        what: str,
        target: str,
        period: str,
        reply: Reply,
        thread_ref: str | None = None,
        thread_of: str | None = None,
        expires_at: datetime | None = None,
    ) -> Posted:
        """Claim (what, target, period) in the ledger, and post only if the claim landed."""
        target = self.route(target)
        if not self.can_post(target):
            log.error("no running platform can post to %s (%s %s skipped)", target, what, period)
            return Posted(claimed=False)
        with self.engine.begin() as conn:
            claimed = self.claim(
                conn,
                what=what,
                target=target,
                period=period,
                reply=reply,
                now=self.clock(),
                thread_of=thread_of,
                expires_at=expires_at,
            )
        if not claimed:
            log.info("%s for %s %s already claimed: skipped", what, target, period)
            return Posted(claimed=False)
        return await self.post_claimed(
            Key(what, target, period), reply, thread_ref=thread_ref, thread_of=thread_of
        )

    async def post_claimed(
        self,
        key: Key,
        reply: Reply,
        *,
        thread_ref: str | None = None,
        thread_of: str | None = None,
    ) -> Posted:
        """Post a row this process holds the claim of, and record how it went."""
        platform, channel = self.platform_for(key.target)
        if platform is None:
            return self._failed(key, "no running platform can post there")
        if thread_ref is None and thread_of is not None:
            parent_status, thread_ref = self._parent(key, thread_of)
            if parent_status in RETRYABLE:
                # The first message is still on its way: a reply waits for it, uncounted.
                return self._wait_for_parent(key)
        try:
            ref = await platform.post(channel, reply, thread_ref=thread_ref)
        except Exception as exc:
            log.warning("posting %s failed: %s: %s", key, type(exc).__name__, exc)
            return self._failed(key, f"{type(exc).__name__}: {exc}"[:500])
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(key.where())
                .values(
                    status=POSTED,
                    posted_at=self.clock(),
                    message_ref=ref,
                    error=None,
                    retry_at=None,
                    payload=None,
                )
            )
        return Posted(claimed=True, message_ref=ref, status=POSTED)

    async def retry_due(self) -> list[Posted]:
        """Retry every failed post whose backoff has passed, and every claim whose claimer
        went silent; each row is taken over by exactly one process."""
        now = self.clock()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(
                    Delivery.what,
                    Delivery.target,
                    Delivery.period,
                    Delivery.status,
                    Delivery.attempts,
                    Delivery.expires_at,
                    Delivery.thread_of,
                    Delivery.payload,
                )
                .where(Delivery.status.in_(RETRYABLE), Delivery.retry_at <= now)
                .order_by(Delivery.claimed_at, Delivery.period)
            ).all()
        results: list[Posted] = []
        for what, target, period, status, attempts, expires_at, thread_of, payload in due:
            key = Key(what, target, period)
            # Ledger targets are already routed: a Slack row waits for an instance that
            # runs Slack, never becomes a console preview.
            if self.platform_for(target)[0] is None:
                continue
            seen = (Delivery.status == status) & (Delivery.attempts == attempts)
            if (
                payload is None
                or attempts >= self.policy.attempts
                or (expires_at is not None and now >= expires_at)
            ):
                reason = (
                    "nothing stored to post"
                    if payload is None
                    else f"gave up after {attempts} attempt(s)"
                    if attempts >= self.policy.attempts
                    else "too late to be useful"
                )
                with self.engine.begin() as conn:
                    gave_up = conn.execute(
                        update(Delivery)
                        .where(key.where() & seen)
                        .values(status=ABANDONED, retry_at=None, payload=None)
                        .returning(Delivery.what)
                    ).first()
                if gave_up:
                    log.error("%s was not delivered: %s", key, reason)
                    results.append(Posted(claimed=True, status=ABANDONED))
                continue
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(Delivery)
                    .where(key.where() & seen)
                    .values(
                        status=CLAIMED,
                        claimed_by=self.instance,
                        attempts=attempts + 1,
                        retry_at=now + self.policy.claim_timeout,
                    )
                    .returning(Delivery.what)
                ).first()
            if not taken:
                continue  # another process took it first
            log.info("retrying %s (attempt %d)", key, attempts + 1)
            results.append(await self.post_claimed(key, decode_reply(payload), thread_of=thread_of))
        return results

    # -- helpers -----------------------------------------------------------------------------

    def _parent(self, key: Key, thread_of: str) -> tuple[str | None, str | None]:
        parent = Key(key.what, key.target, thread_of)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(Delivery.status, Delivery.message_ref).where(parent.where())
            ).first()
        return (row[0], row[1]) if row else (None, None)

    def _wait_for_parent(self, key: Key) -> Posted:
        with self.engine.begin() as conn:
            conn.execute(
                update(Delivery)
                .where(key.where())
                .values(
                    status=FAILED,
                    attempts=Delivery.attempts - 1,
                    error="waiting for the message it replies to",
                    retry_at=self.clock() + timedelta(minutes=1),
                )
            )
        return Posted(claimed=True, status=FAILED)

    def _failed(self, key: Key, error: str) -> Posted:
        now = self.clock()
        with self.engine.begin() as conn:
            attempts, expires_at = conn.execute(
                select(Delivery.attempts, Delivery.expires_at).where(key.where())
            ).one()
            final = attempts >= self.policy.attempts or (
                expires_at is not None and now + self.policy.delay(attempts) >= expires_at
            )
            conn.execute(
                update(Delivery)
                .where(key.where())
                .values(
                    status=ABANDONED if final else FAILED,
                    error=error,
                    retry_at=None if final else now + self.policy.delay(attempts),
                    payload=None if final else Delivery.payload,
                )
            )
        if final:
            log.error("%s was not delivered after %d attempt(s): %s", key, attempts, error)
        else:
            log.warning("%s will be retried in %s", key, _minutes(self.policy.delay(attempts)))
        return Posted(claimed=True, status=ABANDONED if final else FAILED)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


# -- the stored reply -------------------------------------------------------------------------


def encode_reply(reply: Reply) -> str:
    data = asdict(reply)
    data["tone"] = reply.tone.value
    data["fields"] = [
        {"label": f.label, "value": f.value, "tone": f.tone.value} for f in reply.fields
    ]
    if reply.chart is not None:
        data["chart"] = {
            "png": base64.b64encode(reply.chart.png).decode("ascii"),
            "alt_text": reply.chart.alt_text,
            "filename": reply.chart.filename,
        }
    return json.dumps(data, ensure_ascii=False)


def decode_reply(text: str) -> Reply:
    data = json.loads(text)
    chart = data.pop("chart", None)
    fields = tuple(Field(f["label"], f["value"], Tone(f["tone"])) for f in data.pop("fields"))
    return Reply(
        **{k: v for k, v in data.items() if k not in ("tone", "context")},
        tone=Tone(data["tone"]),
        context=tuple(data["context"]),
        fields=fields,
        chart=Chart(base64.b64decode(chart["png"]), chart["alt_text"], chart["filename"])
        if chart
        else None,
    )

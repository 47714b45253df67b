"""Shared pieces for the schedule, digest, alert and delivery tests: settings built in code,
a chat platform that records what it was asked to post, a clock the test moves, and
warehouse rows for the KPIs those tests read."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Engine, insert

from bot.errors import PlatformError
from bot.platforms.base import CommandHandler
from bot.replies import Reply
from bot.settings import FileConfig, Settings
from bot.sources import stream_tables
from metrics.schema import SyncCursor, Ticket

_ids = itertools.count(1)


def settings_with(**config: Any) -> Settings:
    """Settings from a config given as keyword arguments, as the TOML would hold it."""
    return Settings(
        database_url="sqlite://",
        config_path=None,
        config=FileConfig.model_validate(config),
        sources={},
        platforms={},
    )


@dataclass
class Clock:
    """The time every job reads; tests move it, nothing sleeps."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Post:
    channel: str
    reply: Reply
    thread_ref: str | None
    ref: str


@dataclass
class RecordingPlatform:
    """A chat platform that records posts; ``fail_next`` makes the next posts raise, as
    Slack's refusal or an outage would."""

    name: ClassVar[str] = "slack"
    posts: list[Post] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    async def start(self, handler: CommandHandler) -> None:
        return None

    async def stop(self) -> None:
        return None

    def fail_next(self, times: int = 1, code: str = "channel_not_found") -> None:
        self.failures.extend(
            PlatformError(f"Slack refused the post ({code})", code=code) for _ in range(times)
        )

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        ref = f"ts-{len(self.posts) + 1}"
        self.posts.append(Post(target, reply, thread_ref, ref))
        return ref

    def titles(self) -> list[str]:
        return [p.reply.title for p in self.posts]


def mark_synced(engine: Engine, at: datetime, source: str = "demo") -> None:
    """Record every stream of ``source`` as synced at ``at`` (what freshness reads)."""
    with engine.begin() as conn:
        conn.execute(SyncCursor.__table__.delete().where(SyncCursor.source == source))
        for (src, stream), _table in stream_tables().items():
            if src == source:
                conn.execute(
                    insert(SyncCursor).values(
                        source=src, stream=stream, last_success_at=at, updated_at=at
                    )
                )


def add_tickets(
    engine: Engine, *, at: datetime, count: int, channel: str = "email", first_reply: float = 30
) -> None:
    """``count`` tickets created at ``at`` with a first reply after ``first_reply`` minutes."""
    with engine.begin() as conn:
        rows = []
        for i in range(count):
            created = at + timedelta(seconds=i)
            rows.append(
                {
                    "id": f"t-{next(_ids)}",
                    "source": "demo",
                    "status": "open",
                    "channel": channel,
                    "created_at": created,
                    "first_reply_at": created + timedelta(minutes=first_reply),
                    "first_reply_minutes": first_reply,
                    "updated_at": created,
                    "replies": 1,
                    "reopens": 0,
                }
            )
        conn.execute(insert(Ticket), rows)

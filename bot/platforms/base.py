"""What a chat platform adapter is: start, receive commands, post a reply to a target.

Adapters live in ``bot/platforms/<name>.py`` and are the only modules that import a chat
SDK. They are listed in ``bot.platforms.PLATFORMS``. The 3-second acknowledgement Slack and
Discord demand is the adapter's job: it acks (or defers) at once, then awaits the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from bot.replies import Reply


@dataclass(frozen=True)
class CommandRequest:
    """A ``/kpi …`` typed by someone, as every platform reports it."""

    text: str  # what follows "/kpi", e.g. "nps last 30d"
    platform: str  # "slack", "discord", "console"
    channel_id: str
    user_id: str = ""
    user_name: str = ""


CommandHandler = Callable[[CommandRequest], Awaitable[Reply]]


class Platform(Protocol):
    name: ClassVar[str]

    async def start(self, handler: CommandHandler) -> None:
        """Connect and begin dispatching commands to ``handler``; return once running."""
        ...

    async def stop(self) -> None: ...

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        """Post ``reply`` to ``target`` (a channel id); return a reference to thread under."""
        ...

"""The console platform: replies as readable terminal text, charts written as PNG files.

``kpibot run`` uses it when no Slack or Discord token is set: lines typed on stdin
(``/kpi csat last 7d`` or just ``csat last 7d``) are answered in the terminal, and
digests and alerts are printed as they would be posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TextIO

from rich.console import Console
from rich.markup import escape

from bot.platforms.base import CommandHandler, CommandRequest
from bot.replies import Reply, Tone
from bot.settings import Settings

log = logging.getLogger(__name__)

_TONE_STYLE = {Tone.GOOD: "green", Tone.BAD: "red", Tone.NEUTRAL: "default"}


class ConsolePlatform:
    name: ClassVar[str] = "console"

    def __init__(
        self,
        *,
        chart_dir: str | Path = "kpibot-charts",
        out: TextIO | None = None,
        stdin: TextIO | None = None,
        color: bool | None = None,
    ) -> None:
        self.chart_dir = Path(chart_dir)
        self.console = Console(
            file=out or sys.stdout,
            highlight=False,
            soft_wrap=True,
            force_terminal=color,
            no_color=color is False,
        )
        self.stdin = stdin if stdin is not None else sys.stdin
        self._reader: asyncio.Task[None] | None = None
        self._counter = 0

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ConsolePlatform:
        return cls(chart_dir=settings.config.bot.chart_dir, **kwargs)

    async def start(self, handler: CommandHandler) -> None:
        self._reader = asyncio.create_task(self._read_commands(handler), name="console-stdin")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def post(self, target: str, reply: Reply, *, thread_ref: str | None = None) -> str | None:
        self._counter += 1
        ref = f"console-{self._counter}"
        where = f"in reply to {thread_ref}" if thread_ref else f"to {target}"
        self.console.rule(f"[dim]{escape(reply.kind)} {escape(where)}[/dim]", style="dim")
        self.show(reply)
        return ref

    async def _read_commands(self, handler: CommandHandler) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:  # a daemon thread: a blocked readline never holds up Ctrl-C
            while True:
                line = self.stdin.readline()
                loop.call_soon_threadsafe(lines.put_nowait, line)
                if line == "":
                    return

        threading.Thread(target=read, name="console-stdin", daemon=True).start()
        self.console.print(
            "[dim]Type a query like [bold]/kpi csat last 7d[/bold] (or `help`).[/dim]"
        )
        while True:
            line = await lines.get()
            if line == "":  # end of input: keep running the schedule, stop reading
                log.info("console: end of input, no more commands will be read")
                return
            text = line.strip()
            if not text:
                continue
            text = re.sub(r"^/kpi\b\s*", "", text)
            request = CommandRequest(
                text=text, platform="console", channel_id="main", user_id="you"
            )
            reply = await handler(request)
            self.show(reply)

    def show(self, reply: Reply) -> None:
        """Print a reply and write its chart, if any, to the chart directory."""
        c = self.console
        c.print(f"[bold]{escape(reply.title)}[/bold]")
        if reply.headline:
            c.print(f"  [bold]{escape(reply.headline)}[/bold]")
        if reply.comparison:
            c.print(f"  [{_TONE_STYLE[reply.tone]}]{escape(reply.comparison)}[/]")
        for f in reply.fields:
            c.print(f"  {escape(f.label)}: [{_TONE_STYLE[f.tone]}]{escape(f.value)}[/]")
        if reply.text:
            for line in reply.text.splitlines():
                c.print(f"  {escape(line)}")
        for line in reply.context:
            c.print(f"  [dim]{escape(line)}[/dim]")
        if reply.chart is not None:
            path = self.write_chart(reply)
            c.print(f"  [dim]chart:[/dim] {escape(str(path))}")
        c.print()

    def write_chart(self, reply: Reply) -> Path:
        assert reply.chart is not None
        self.chart_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self._counter += 1
        stem = re.sub(r"[^a-z0-9]+", "-", reply.title.lower()).strip("-")[:40] or "chart"
        path = self.chart_dir / f"{stamp}-{self._counter:03d}-{stem}.png"
        path.write_bytes(reply.chart.png)
        return path

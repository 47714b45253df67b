"""``kpibot run``: one asyncio loop hosting the chat platforms and the schedule.

Blocking work (SQL, numpy, matplotlib, a sync) runs off the loop with ``asyncio.to_thread``.
The schedule (APScheduler 3.x ``AsyncIOScheduler``) runs each source's sync on its interval,
each digest at its cron time in the team's time zone, and the alert checks every few
minutes — in exactly one process per database (:mod:`bot.leader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from bot.alerts import AlertEngine
from bot.commands import KpiService
from bot.delivery import Deliverer
from bot.digests import build_digest
from bot.errors import ConfigError
from bot.leader import ScheduleLock
from bot.platforms.base import Platform
from bot.platforms.console import ConsolePlatform
from bot.settings import DigestConfig, Settings
from bot.sources import stream_tables
from integrations.registry import enabled_sources, sync_sources
from integrations.runner import StreamReport

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class BotApp:
    """Everything a running bot holds; also what the CLI's one-shot commands use."""

    settings: Settings
    engine: Engine
    clock: Clock = utcnow
    platforms: dict[str, Platform] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.service = KpiService(
            self.engine, self.settings, clock=self.clock, stream_tables=stream_tables()
        )
        self.alerts = AlertEngine(self.service, self.settings.config.alerts)
        self.service.mute_handler = lambda rule, d, by: self.alerts.mute(rule, d, by, self.clock())
        self.deliverer = Deliverer(self.engine, self.platforms, clock=self.clock)
        self.scheduler: AsyncIOScheduler | None = None
        self.lock = ScheduleLock(self.engine)
        self._standby: asyncio.Task[None] | None = None

    # -- jobs (each also callable on its own) ---------------------------------------------

    def sync(self, source: str | None = None, *, full: bool = False) -> list[StreamReport]:
        return sync_sources(
            self.engine,
            self.settings,
            sources=[source] if source else None,
            full=full,
            clock=self.clock,
        )

    async def send_digest(
        self, digest: DigestConfig, *, scheduled: datetime, now: datetime | None = None
    ) -> bool:
        now = now or self.clock()
        late = now - scheduled
        reply = await asyncio.to_thread(
            build_digest,
            self.service,
            digest,
            now=now,
            late_by=late if late > timedelta(minutes=1) else None,
        )
        period = scheduled.astimezone(self.settings.tz).isoformat(timespec="minutes")
        posted = await self.deliverer.deliver(
            what=f"digest:{digest.name}", target=digest.channel, period=period, reply=reply
        )
        return posted.claimed

    async def check_alerts(self) -> None:
        await self.alerts.run_once(self.deliverer, self.clock())

    async def catch_up(self) -> None:
        """A digest missed by a short outage is sent late, once, saying so; one missed by
        more than its grace is skipped and logged. The ledger makes this safe to repeat."""
        now = self.clock()
        for digest in self.settings.config.digests:
            last = last_fire_time(digest, self.settings.tz, now)
            if last is None:
                continue
            grace = timedelta(minutes=digest.grace_minutes)
            if now - last <= grace:
                await self.send_digest(digest, scheduled=last, now=now)
            else:
                log.info(
                    "digest %s scheduled at %s was missed by more than its grace (%s): skipped",
                    digest.name,
                    last.isoformat(),
                    grace,
                )

    # -- the schedule --------------------------------------------------------------------

    def build_scheduler(self) -> AsyncIOScheduler:
        cfg = self.settings.config
        tz = self.settings.tz
        sched = AsyncIOScheduler(timezone=tz, job_defaults={"coalesce": True, "max_instances": 1})
        for name in enabled_sources(self.settings):
            interval = getattr(cfg.sources, name).interval_minutes
            sched.add_job(
                self._guarded(self._sync_job, name),
                IntervalTrigger(minutes=interval, timezone=tz),
                id=f"sync:{name}",
                next_run_time=datetime.now(tz),
                misfire_grace_time=interval * 60,
            )
        if "stripe" in enabled_sources(self.settings):
            # Between full runs Stripe syncs from its events, which Stripe keeps 30 days:
            # a nightly full reconciliation catches anything an event did not say.
            sched.add_job(
                self._guarded(self._sync_job, "stripe", True),
                CronTrigger(hour=3, minute=17, timezone=tz),
                id="sync:stripe:full",
                misfire_grace_time=6 * 3600,
            )
        for digest in cfg.digests:
            sched.add_job(
                self._guarded(self._digest_job, digest),
                CronTrigger.from_crontab(digest.schedule, timezone=tz),
                id=f"digest:{digest.name}",
                misfire_grace_time=digest.grace_minutes * 60 or None,
            )
        if cfg.alerts:
            sched.add_job(
                self._guarded(self.check_alerts),
                IntervalTrigger(minutes=cfg.bot.alert_check_minutes, timezone=tz),
                id="alerts",
                misfire_grace_time=cfg.bot.alert_check_minutes * 60,
            )
        return sched

    def _guarded(self, job: Callable[..., object], *args: object) -> Callable[[], object]:
        async def run() -> None:
            if not self.lock.still_held():
                log.warning("schedule lock lost: skipping %s", getattr(job, "__name__", job))
                return
            try:
                result = job(*args)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("scheduled job %s failed", getattr(job, "__name__", job))

        return run

    async def _sync_job(self, name: str, full: bool = False) -> None:
        await asyncio.to_thread(self.sync, name, full=full)

    async def _digest_job(self, digest: DigestConfig) -> None:
        now = self.clock()
        scheduled = last_fire_time(digest, self.settings.tz, now + timedelta(seconds=1)) or now
        await self.send_digest(digest, scheduled=scheduled, now=now)

    # -- run -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Not available off the main thread (tests run the app in one).
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        for platform in self.platforms.values():
            if receives_commands(platform, self.settings):
                await platform.start(self.service.handle)
                log.info("platform %s started", platform.name)
        if self.lock.acquire():
            self.scheduler = self.build_scheduler()
            self.scheduler.start()
            log.info("schedule running: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))
            await self.catch_up()
        elif self.lock.backend == "sqlite":
            log.error(
                "another kpibot process already runs the schedule on this SQLite database; "
                "this one only answers commands. Use PostgreSQL to run several instances."
            )
        else:
            log.info("another instance holds the schedule lock; this one answers commands")
            self._standby = asyncio.create_task(self._wait_for_lock(stop))
        try:
            await stop.wait()
        finally:
            log.info("stopping")
            if self._standby is not None:
                self._standby.cancel()
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)
            for platform in self.platforms.values():
                await platform.stop()
            self.lock.release()

    async def _wait_for_lock(self, stop: asyncio.Event, every: float = 5.0) -> None:
        """Stand-by instances take over the schedule within seconds of the holder dying."""
        while not stop.is_set():
            await asyncio.sleep(every)
            if self.lock.acquire():
                log.info("took over the schedule lock")
                self.scheduler = self.build_scheduler()
                self.scheduler.start()
                await self.catch_up()
                return


def last_fire_time(digest: DigestConfig, tz: object, now: datetime) -> datetime | None:
    """The latest scheduled time of ``digest`` at or before ``now`` (within 8 days)."""
    trigger = CronTrigger.from_crontab(digest.schedule, timezone=tz)
    probe = now - timedelta(days=8)
    last = None
    previous = None
    while True:
        fire = trigger.get_next_fire_time(previous, probe)
        if fire is None or fire > now:
            return last
        last = fire
        previous = fire
        probe = fire + timedelta(seconds=1)


def _kpi_names() -> list[str]:
    from metrics import KPIS

    return sorted({k.name for k in KPIS} | {a for k in KPIS for a in k.aliases})


def receives_commands(platform: Platform, settings: Settings) -> bool:
    """A Discord set-up with only a webhook URL posts digests and alerts but has no gateway."""
    return not (platform.name == "discord" and not settings.env("DISCORD_BOT_TOKEN"))


def build_platforms(settings: Settings) -> dict[str, Platform]:
    """The chat platforms to start: by config, or whichever have tokens, else the console."""
    from bot.platforms import PLATFORMS, platform_class

    wanted = settings.config.bot.platform
    if wanted == "auto":
        names = [n for n in PLATFORMS if n in settings.platforms]
    else:
        if wanted != "console" and wanted not in settings.platforms:
            raise ConfigError(
                "bot.platform",
                f"{wanted} is selected but its credentials are not set",
                f"set the {wanted.upper()}_* environment variables (README) or use 'auto'",
            )
        names = [wanted]
    platforms: dict[str, Platform] = {}
    for name in names:
        if name == "console":
            continue
        cls = platform_class(name)
        kwargs = {"kpi_names": _kpi_names} if name == "discord" else {}
        platforms[name] = cls.from_settings(settings, **kwargs)  # type: ignore[attr-defined]
    if not platforms:
        platforms["console"] = ConsolePlatform(chart_dir=settings.config.bot.chart_dir)
    return platforms

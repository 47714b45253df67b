"""``kpibot run``: one asyncio loop hosting the chat platforms and the schedule.

Blocking work (SQL, numpy, matplotlib, a sync) runs off the loop with ``asyncio.to_thread``.
The schedule (APScheduler 3.x ``AsyncIOScheduler``, coalescing, one instance of a job at a
time) runs each source's sync on its interval, each digest at its cron time in the team's
time zone (:mod:`bot.schedule`, right across DST), the alert checks every few minutes, and
every minute a sweep that sends digests the scheduler missed (within their grace) and
retries failed posts — in exactly one process per database (:mod:`bot.leader`).

Missed digests, across restarts: the scheduler's memory does not survive a restart, the
delivery ledger does. At start (and every minute) the latest scheduled time of each digest
is looked up in the ledger: if nothing was sent for it and it is at most ``grace_minutes``
old, it is sent now, saying how late; if it is older, it is recorded as skipped and logged,
once. Time comes from ``clock``, so all of this is tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from bot import format as fmt
from bot.alerts import AlertEngine
from bot.commands import KpiService
from bot.delivery import INSTANCE_ID, Deliverer, Posted, RetryPolicy
from bot.digests import build_digest
from bot.errors import ConfigError
from bot.leader import ScheduleLock
from bot.platforms.base import Platform
from bot.platforms.console import ConsolePlatform
from bot.schedule import LocalCronTrigger, Occurrence
from bot.settings import DigestConfig, Settings
from bot.sources import active_sources, stream_tables, sync_and_refresh
from bot.state import SKIPPED
from integrations.runner import StreamReport

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
SWEEP_MINUTES = 1  # missed digests and due retries are looked for this often
# Missed runs collapse into one, and a job never overlaps itself.
ONE_AT_A_TIME = {"coalesce": True, "max_instances": 1}


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class BotApp:
    """Everything a running bot holds; also what the CLI's one-shot commands use.

    ``clock`` is the time every job reads; ``lock_poll_seconds`` (default: the config's
    ``bot.lock_poll_seconds``) and ``sleep`` drive a stand-by instance's polling for the
    schedule lock."""

    settings: Settings
    engine: Engine
    clock: Clock = utcnow
    platforms: dict[str, Platform] = field(default_factory=dict)
    lock_poll_seconds: float | None = None
    sleep: Sleep = asyncio.sleep
    instance: str = INSTANCE_ID

    def __post_init__(self) -> None:
        bot = self.settings.config.bot
        if self.lock_poll_seconds is None:
            self.lock_poll_seconds = bot.lock_poll_seconds
        self.service = KpiService(
            self.engine, self.settings, clock=self.clock, stream_tables=stream_tables()
        )
        self.alerts = AlertEngine(
            self.service,
            self.settings.config.alerts,
            min_gap=timedelta(minutes=bot.alert_check_minutes) / 2,
        )
        self.service.mute_handler = lambda rule, d, by: self.alerts.mute(rule, d, by, self.clock())
        self.service.alerts_handler = lambda: self.alerts.status_lines(self.clock())
        self.deliverer = Deliverer(
            self.engine,
            self.platforms,
            clock=self.clock,
            instance=self.instance,
            policy=RetryPolicy(
                attempts=bot.post_attempts,
                backoff=timedelta(minutes=bot.retry_after_minutes),
                claim_timeout=timedelta(minutes=bot.claim_timeout_minutes),
            ),
        )
        tz = self.settings.tz
        self.triggers = {
            d.name: LocalCronTrigger(d.schedule, tz) for d in self.settings.config.digests
        }
        self.scheduler: AsyncIOScheduler | None = None
        self.lock = ScheduleLock(self.engine)
        self._standby: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    # -- jobs (each also callable on its own) ---------------------------------------------

    def sync(self, source: str | None = None, *, full: bool = False) -> list[StreamReport]:
        return sync_and_refresh(
            self.engine,
            self.settings,
            sources=[source] if source else None,
            full=full,
            clock=self.clock,
        )

    async def send_digest(
        self,
        digest: DigestConfig,
        *,
        occurrence: Occurrence,
        now: datetime | None = None,
        manual: bool = False,
    ) -> Posted:
        """Build and post ``digest`` for one scheduled occurrence, once (the ledger's period
        is the occurrence's local wall time). Sent late, it says how late."""
        now = now or self.clock()
        what = f"digest:{digest.name}"
        status = self.deliverer.status(what, digest.channel, occurrence.period)
        if status == SKIPPED and manual:
            # Skipped as too late by the schedule; someone asks for it now: send it.
            self.deliverer.forget_skipped(what, digest.channel, occurrence.period)
        elif status is not None:
            return Posted(claimed=False, status=status)  # sent or on its way: don't build it
        late = now - occurrence.instant
        reply = await asyncio.to_thread(
            build_digest,
            self.service,
            digest,
            now=now,
            late_by=late if late > timedelta(minutes=1) and not manual else None,
            scheduled=None if manual else occurrence.instant,
        )
        grace = timedelta(minutes=digest.grace_minutes)
        return await self.deliverer.deliver(
            what=what,
            target=digest.channel,
            period=occurrence.period,
            reply=reply,
            # A failed post is retried while it is still this morning's news.
            expires_at=max(occurrence.instant + grace, now + timedelta(hours=1)),
        )

    async def post_digest_now(self, digest: DigestConfig) -> Posted:
        """``kpibot digest --post``: the digest of the current period (the latest scheduled
        time), unless that one was already sent."""
        now = self.clock()
        trigger = self.triggers[digest.name]
        occurrence = trigger.last_fire(now) or Occurrence(
            now, now.astimezone(self.settings.tz).replace(tzinfo=None)
        )
        return await self.send_digest(digest, occurrence=occurrence, now=now, manual=True)

    async def send_digest_if_due(self, digest: DigestConfig, now: datetime | None = None) -> str:
        """Send the digest's latest occurrence if nothing was sent for it yet and it is
        within its grace; skip (and log, once) one missed by more. Returns what happened:
        sent, failed, done (already in the ledger), skipped or none (never scheduled)."""
        now = now or self.clock()
        occurrence = self.triggers[digest.name].last_fire(now)
        if occurrence is None:
            return "none"
        what = f"digest:{digest.name}"
        if self.deliverer.status(what, digest.channel, occurrence.period) is not None:
            return "done"
        late = now - occurrence.instant
        if late <= timedelta(minutes=digest.grace_minutes):
            posted = await self.send_digest(digest, occurrence=occurrence, now=now)
            return "sent" if posted.posted else "failed" if posted.claimed else "done"
        reason = (
            f"missed by {fmt.duration(late.total_seconds() / 60)}, more than its grace of "
            f"{fmt.duration(digest.grace_minutes)}"
        )
        if self.deliverer.record_skipped(
            what=what, target=digest.channel, period=occurrence.period, reason=reason
        ):
            log.warning(
                "digest %s scheduled at %s (%s) was %s: skipped",
                digest.name,
                occurrence.period,
                self.settings.tz.key,
                reason,
            )
        return "skipped"

    async def check_alerts(self) -> None:
        await self.alerts.run_once(self.deliverer, self.clock())

    async def catch_up(self) -> None:
        """Send digests missed within their grace, skip older ones, retry failed posts.
        The ledger makes this safe to repeat, in any number of processes."""
        now = self.clock()
        for digest in self.settings.config.digests:
            try:
                await self.send_digest_if_due(digest, now)
            except Exception:
                log.exception("catching up digest %s failed", digest.name)
        await self.deliverer.retry_due()

    # -- the schedule --------------------------------------------------------------------

    def build_scheduler(self) -> AsyncIOScheduler:
        cfg = self.settings.config
        tz = self.settings.tz
        sched = AsyncIOScheduler(timezone=tz, job_defaults=ONE_AT_A_TIME)
        sources = active_sources(self.engine, self.settings)
        for name in sources:
            interval = getattr(cfg.sources, name).interval_minutes
            sched.add_job(
                self._guarded(self._sync_job, name),
                IntervalTrigger(minutes=interval, timezone=tz),
                id=f"sync:{name}",
                next_run_time=datetime.now(tz),
                misfire_grace_time=interval * 60,
                **ONE_AT_A_TIME,
            )
        if "stripe" in sources:
            # Between full runs Stripe syncs from its events, which Stripe keeps 30 days:
            # a nightly full reconciliation catches anything an event did not say.
            sched.add_job(
                self._guarded(self._sync_job, "stripe", True),
                CronTrigger(hour=3, minute=17, timezone=tz),
                id="sync:stripe:full",
                misfire_grace_time=6 * 3600,
                **ONE_AT_A_TIME,
            )
        for digest in cfg.digests:
            sched.add_job(
                self._guarded(self._digest_job, digest),
                self.triggers[digest.name],
                id=f"digest:{digest.name}",
                # APScheduler's None would mean "however late": grace 0 means on time only.
                misfire_grace_time=max(1, digest.grace_minutes * 60),
                **ONE_AT_A_TIME,
            )
        if cfg.alerts:
            minutes = cfg.bot.alert_check_minutes
            sched.add_job(
                self._guarded(self.check_alerts),
                IntervalTrigger(minutes=minutes, timezone=tz),
                id="alerts",
                next_run_time=datetime.now(tz),
                misfire_grace_time=minutes * 60,
                **ONE_AT_A_TIME,
            )
        sched.add_job(
            self._guarded(self.catch_up),
            IntervalTrigger(minutes=SWEEP_MINUTES, timezone=tz),
            id="catch-up",
            misfire_grace_time=SWEEP_MINUTES * 60,
            **ONE_AT_A_TIME,
        )
        return sched

    def _guarded(self, job: Callable[..., object], *args: object) -> Callable[[], Awaitable[None]]:
        name = getattr(job, "__name__", str(job))

        async def run() -> None:
            if not self.lock.still_held():
                log.warning("schedule lock lost: %s not run; standing by", name)
                self._demote()
                return
            try:
                result = job(*args)
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                # Shutting down mid-job: what it claimed but did not post is retried by
                # whichever instance holds the schedule next (the ledger's lease).
                log.info("scheduled job %s interrupted by shutdown", name)
            except Exception:
                log.exception("scheduled job %s failed", name)

        run.__name__ = name
        return run

    async def _sync_job(self, name: str, full: bool = False) -> None:
        await asyncio.to_thread(self.sync, name, full=full)

    async def _digest_job(self, digest: DigestConfig) -> None:
        # A second of slack: the scheduler wakes at the fire time, the clock may lag it.
        await self.send_digest_if_due(digest, self.clock() + timedelta(seconds=1))

    # -- run -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = self._stop = stop or asyncio.Event()
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
            await self._promote()
        elif self.lock.backend == "sqlite":
            log.error(
                "not running the schedule: another kpibot process already runs it on this "
                "SQLite database (%s). One process per SQLite database is the supported "
                "set-up: this one only answers commands. Use PostgreSQL to run several "
                "instances.",
                self.lock.describe_holder(),
            )
        else:
            log.info("another instance holds the schedule lock; this one answers commands")
            self._standby = asyncio.create_task(self._wait_for_lock())
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

    async def _promote(self) -> None:
        self.scheduler = self.build_scheduler()
        self.scheduler.start()
        log.info("schedule running: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))
        try:
            await self.catch_up()
        except Exception:  # the database may be down: the sweep tries again every minute
            log.exception("catching up at start failed")
        log.info("catch-up done")

    def _demote(self) -> None:
        """The lock is gone (its connection died): stop the schedule and stand by."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        waiting = self._standby is not None and not self._standby.done()
        if self.lock.backend == "postgresql" and not waiting:
            self._standby = asyncio.create_task(self._wait_for_lock())

    async def _wait_for_lock(self) -> None:
        """Stand-by instances take over the schedule within seconds of the holder dying."""
        assert self._stop is not None and self.lock_poll_seconds is not None
        while not self._stop.is_set():
            await self.sleep(self.lock_poll_seconds)
            if self.lock.acquire():
                log.info("took over the schedule lock")
                await self._promote()
                return


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

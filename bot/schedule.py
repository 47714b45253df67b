"""When digests are due: five-field cron in the team's time zone, right across DST.

A digest's schedule is read as local wall-clock time ("09:00 on weekdays in Warsaw"), so it
fires at 07:00 UTC in summer and 08:00 UTC in winter. APScheduler's own ``CronTrigger``
gets the two DST edges wrong for times inside the shifted hour — it skips a 02:30 digest on
the spring-forward day and fires it again and again on the fall-back day — so wall times are
computed here and mapped to instants once:

* a wall time that does not exist (spring forward) fires at the same distance after the
  change, like cron: 02:30 becomes 03:30 summer time;
* a wall time that happens twice (fall back) fires once, at its first occurrence.

Each scheduled occurrence is named by its local wall time (``2026-10-26T09:00``): the
period under which the delivery ledger records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger


@dataclass(frozen=True)
class Occurrence:
    """One scheduled firing: the instant (UTC) and the wall time it was scheduled for."""

    instant: datetime
    wall: datetime  # naive local time, e.g. 2026-10-26 09:00

    @property
    def period(self) -> str:
        """Its name in the delivery ledger: ``2026-10-26T09:00``."""
        return self.wall.strftime("%Y-%m-%dT%H:%M")


class LocalCronTrigger(BaseTrigger):
    """An APScheduler trigger: ``crontab`` in wall-clock time of ``tz``."""

    def __init__(self, crontab: str, tz: tzinfo) -> None:
        self.crontab = crontab
        self.tz = tz
        # UTC has no DST: iterating it is iterating naive wall-clock time.
        self._wall = CronTrigger.from_crontab(crontab, timezone=UTC)

    def __repr__(self) -> str:
        return f"LocalCronTrigger({self.crontab!r}, {self.tz})"

    def next_fire(self, after: datetime) -> Occurrence | None:
        """The first occurrence at or after the instant ``after``."""
        wall = after.astimezone(self.tz).replace(tzinfo=UTC, fold=0)
        # The wall clock runs backwards at fall back: start early, skip what is past.
        probe = wall - timedelta(hours=3)
        for _ in range(10_000):
            fire_wall = self._wall.get_next_fire_time(None, probe)
            if fire_wall is None:
                return None
            occurrence = Occurrence(self.instant(fire_wall), fire_wall.replace(tzinfo=None))
            if occurrence.instant >= after:
                return occurrence
            probe = fire_wall + timedelta(seconds=1)
        raise RuntimeError(f"no fire time found for {self.crontab!r}")  # pragma: no cover

    def last_fire(
        self, now: datetime, *, horizon: timedelta = timedelta(days=8)
    ) -> Occurrence | None:
        """The latest occurrence at or before ``now`` within ``horizon``."""
        last = None
        fire = self.next_fire(now - horizon)
        while fire is not None and fire.instant <= now:
            last = fire
            fire = self.next_fire(fire.instant + timedelta(seconds=1))
        return last

    def instant(self, wall: datetime) -> datetime:
        """A wall-clock time as an instant (UTC). ``fold=0``: a time that happens twice is
        its first occurrence; a time in the spring-forward gap is read with the offset
        before the change, which lands as far after it (02:30 → 03:30 summer time)."""
        return wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)

    # -- APScheduler's interface -------------------------------------------------------------

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        start = now if previous_fire_time is None else previous_fire_time + timedelta(seconds=1)
        fire = self.next_fire(start)
        return fire.instant.astimezone(self.tz) if fire is not None else None

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

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")  # cron: 0 and 7 = Sunday


def standard_crontab(crontab: str) -> str:
    """``crontab`` with its day-of-week field in names, read the way cron reads numbers.

    APScheduler's ``from_crontab`` counts weekdays from Monday = 0, so ``1-5`` would mean
    Tuesday to Saturday and ``0`` Monday. Cron (and everyone writing a crontab) means
    Monday to Friday and Sunday. Names (``mon-fri``) pass through unchanged.
    Raises ValueError for a field that is not a valid cron field.
    """
    fields = crontab.split()
    if len(fields) != 5:
        raise ValueError(
            f"{crontab!r} has {len(fields)} fields, not 5 (minute hour day month weekday)"
        )
    fields[4] = ",".join(_weekday_part(part) for part in fields[4].lower().split(","))
    normal = " ".join(fields)
    CronTrigger.from_crontab(normal, timezone=UTC)  # raises ValueError when invalid
    return normal


def _weekday_part(part: str) -> str:
    # "1-5", "0", "7", "*/2", "1-5/2", "mon-fri", "*": numbers become explicit day names.
    body, _, step_text = part.partition("/")
    if not any(ch.isdigit() for ch in body) and not step_text:
        return part
    step = int(step_text) if step_text else 1
    if body == "*":
        low, high = 0, 6
    elif "-" in body:
        a, b = body.split("-", 1)
        low, high = _cron_day(a), _cron_day(b)
    else:
        low = high = _cron_day(body)
    if high < low:
        raise ValueError(f"weekday range {part!r} runs backwards")
    return ",".join(dict.fromkeys(_CRON_DAYS[d] for d in range(low, high + 1, step)))


def _cron_day(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    raise ValueError(f"{text!r} is not a weekday (0–7 or sun…sat)")


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
        self._wall = CronTrigger.from_crontab(standard_crontab(crontab), timezone=UTC)

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

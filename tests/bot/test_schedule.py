"""Digests on time, across DST, once; missed ones sent late within their grace or skipped.

Time is a clock the test sets: the scheduler's trigger is asked for fire times, and the
jobs it would run are called at those instants.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select

from bot.runtime import BotApp
from bot.schedule import LocalCronTrigger
from bot.state import Delivery
from tests.bot.helpers import Clock, RecordingPlatform, mark_synced, settings_with

WARSAW = ZoneInfo("Europe/Warsaw")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(crontab: str, start: datetime, count: int, tz: ZoneInfo = WARSAW) -> list[datetime]:
    """The next ``count`` fire times as the scheduler computes them, in UTC."""
    trigger = LocalCronTrigger(crontab, tz)
    out: list[datetime] = []
    previous = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, start)
        assert fire is not None
        out.append(fire.astimezone(UTC))
        previous = fire
    return out


def test_a_warsaw_weekday_digest_moves_to_07_utc_in_the_week_of_the_spring_change() -> None:
    # 2026-03-29 (Sunday): clocks go from 02:00 CET to 03:00 CEST.
    assert fires("0 9 * * mon-fri", utc(2026, 3, 23), 10) == [
        utc(2026, 3, 23, 8),
        utc(2026, 3, 24, 8),
        utc(2026, 3, 25, 8),
        utc(2026, 3, 26, 8),
        utc(2026, 3, 27, 8),
        utc(2026, 3, 30, 7),  # Monday after the change: still 09:00 in Warsaw
        utc(2026, 3, 31, 7),
        utc(2026, 4, 1, 7),
        utc(2026, 4, 2, 7),
        utc(2026, 4, 3, 7),
    ]


def test_a_warsaw_weekday_digest_moves_to_08_utc_in_the_week_of_the_autumn_change() -> None:
    # 2026-10-25 (Sunday): clocks go from 03:00 CEST back to 02:00 CET.
    assert fires("0 9 * * mon-fri", utc(2026, 10, 19), 10) == [
        utc(2026, 10, 19, 7),
        utc(2026, 10, 20, 7),
        utc(2026, 10, 21, 7),
        utc(2026, 10, 22, 7),
        utc(2026, 10, 23, 7),
        utc(2026, 10, 26, 8),
        utc(2026, 10, 27, 8),
        utc(2026, 10, 28, 8),
        utc(2026, 10, 29, 8),
        utc(2026, 10, 30, 8),
    ]


def test_a_time_in_the_skipped_hour_fires_once_an_hour_later_and_a_repeated_one_fires_once() -> (
    None
):
    spring = fires("30 2 * * *", utc(2026, 3, 28), 3)
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    assert spring[1].astimezone(WARSAW).strftime("%H:%M %Z") == "03:30 CEST"
    autumn = fires("30 2 * * *", utc(2026, 10, 24), 3)
    # 02:30 happens twice on 25 October: it fires at the first, and not again.
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_the_ledger_period_is_the_local_wall_time_of_the_occurrence() -> None:
    trigger = LocalCronTrigger("0 9 * * mon-fri", WARSAW)
    summer = trigger.last_fire(utc(2026, 10, 23, 7, 30))
    winter = trigger.last_fire(utc(2026, 10, 26, 8, 0))
    assert summer is not None and summer.period == "2026-10-23T09:00"
    assert winter is not None and winter.period == "2026-10-26T09:00"
    assert trigger.last_fire(utc(2026, 10, 26, 7, 59)) == summer  # Monday's is not due yet


# -- the jobs, at the instants the scheduler fires them ------------------------------------


def make_app(engine: Engine, clock: Clock, **digest: object) -> tuple[BotApp, RecordingPlatform]:
    settings = settings_with(
        team={"timezone": "Europe/Warsaw", "name": "Acme"},
        digests=[
            {
                "name": "morning",
                "channel": "slack:C1",
                "kpis": ["tickets", "frt"],
                "schedule": "0 9 * * mon-fri",
                **digest,
            }
        ],
        sources={"demo": {"enabled": False}},
    )
    platform = RecordingPlatform()
    app = BotApp(settings, engine, clock=clock, platforms={"slack": platform})
    return app, platform


@pytest.mark.parametrize("week", [utc(2026, 3, 23), utc(2026, 10, 19)])
async def test_the_digest_job_posts_each_weekday_once_at_0900_warsaw(
    engine: Engine, week: datetime
) -> None:
    clock = Clock(week)
    app, platform = make_app(engine, clock)
    mark_synced(engine, week)
    digest = app.settings.config.digests[0]
    sent_at = []
    for fire in fires(digest.schedule, week, 10):
        clock.now = fire
        await app._digest_job(digest)
        await app._digest_job(digest)  # a second run at the same instant changes nothing
        sent_at.append(fire.astimezone(WARSAW).strftime("%a %H:%M"))
    assert len(platform.posts) == 10
    assert set(sent_at) >= {"Mon 09:00", "Fri 09:00"} and all("09:00" in s for s in sent_at)
    assert not any("late" in (p.reply.text or "") for p in platform.posts)
    with engine.connect() as conn:
        periods = conn.execute(select(Delivery.period).order_by(Delivery.period)).scalars().all()
    assert len(periods) == 10 and all(p.endswith("T09:00") for p in periods)


async def test_a_digest_missed_by_a_short_outage_is_sent_late_once_saying_so(
    engine: Engine,
) -> None:
    clock = Clock(utc(2026, 11, 24, 8, 35))  # Tuesday 09:35 Warsaw; down since 08:50
    app, platform = make_app(engine, clock, grace_minutes=120)
    mark_synced(engine, clock.now)
    await app.catch_up()  # what a (re)started instance does first
    await app.catch_up()
    clock.advance(minutes=1)
    await app.catch_up()  # and the sweep every minute after
    assert len(platform.posts) == 1
    assert "Sent 35m late" in (platform.posts[0].reply.text or "")
    assert "09:00" in (platform.posts[0].reply.text or "")
    assert app.deliverer.status("digest:morning", "slack:C1", "2026-11-24T09:00") == "posted"


async def test_a_restart_after_the_digest_went_out_sends_nothing_and_logs_no_skip(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(utc(2026, 11, 24, 8, 0))
    app, platform = make_app(engine, clock, grace_minutes=60)
    mark_synced(engine, clock.now)
    await app._digest_job(app.settings.config.digests[0])
    clock.advance(hours=5)  # restarted long after, past the grace
    restarted, again = make_app(engine, clock, grace_minutes=60)
    with caplog.at_level(logging.WARNING):
        await restarted.catch_up()
    assert len(platform.posts) == 1 and again.posts == []
    assert "skipped" not in caplog.text


async def test_a_digest_missed_by_more_than_its_grace_is_skipped_and_logged_once(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(utc(2026, 11, 24, 11, 0))  # 12:00 Warsaw: 3 h after the 09:00 digest
    app, platform = make_app(engine, clock, grace_minutes=120)
    with caplog.at_level(logging.WARNING, logger="bot.runtime"):
        await app.catch_up()
        await app.catch_up()
    assert platform.posts == []
    skips = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) == 1
    assert "2026-11-24T09:00" in skips[0].getMessage() and "3h" in skips[0].getMessage()
    assert app.deliverer.status("digest:morning", "slack:C1", "2026-11-24T09:00") == "skipped"


async def test_a_grace_of_zero_means_on_time_or_not_at_all(engine: Engine) -> None:
    clock = Clock(utc(2026, 11, 24, 8, 0, 30))
    app, platform = make_app(engine, clock, grace_minutes=0)
    await app.catch_up()
    assert platform.posts == []
    job = app.build_scheduler().get_job("digest:morning")
    assert job.misfire_grace_time == 1  # APScheduler's None would mean "however late"


async def test_kpibot_digest_post_sends_the_current_period_once(engine: Engine) -> None:
    clock = Clock(utc(2026, 11, 24, 12, 0))
    app, platform = make_app(engine, clock)
    mark_synced(engine, clock.now)
    digest = app.settings.config.digests[0]
    first = await app.post_digest_now(digest)
    second = await app.post_digest_now(digest)
    assert first.posted and not second.claimed
    assert len(platform.posts) == 1 and "late" not in (platform.posts[0].reply.text or "")
    # ... and the scheduled sweep knows this period is done.
    await app.catch_up()
    assert len(platform.posts) == 1


def test_the_scheduler_coalesces_runs_one_instance_and_has_every_job(engine: Engine) -> None:
    clock = Clock(utc(2026, 11, 24, 12, 0))
    settings = settings_with(
        team={"timezone": "Europe/Warsaw"},
        bot={"alert_check_minutes": 5},
        digests=[{"name": "morning", "channel": "slack:C1", "grace_minutes": 90}],
        alerts=[{"name": "a", "query": "tickets last 1d", "channel": "slack:C1", "above": 1}],
        sources={"demo": {"enabled": True, "interval_minutes": 30}},
    )
    app = BotApp(settings, engine, clock=clock, platforms={"slack": RecordingPlatform()})
    sched = app.build_scheduler()
    jobs = {j.id: j for j in sched.get_jobs()}
    assert set(jobs) == {"sync:demo", "digest:morning", "alerts", "catch-up"}
    assert all(j.coalesce and j.max_instances == 1 for j in jobs.values())
    digest = jobs["digest:morning"]
    assert isinstance(digest.trigger, LocalCronTrigger) and digest.misfire_grace_time == 90 * 60
    assert isinstance(jobs["alerts"].trigger, IntervalTrigger)
    assert jobs["alerts"].trigger.interval == timedelta(minutes=5)


async def test_a_skipped_digest_can_still_be_posted_by_hand(engine: Engine) -> None:
    clock = Clock(utc(2026, 11, 24, 12, 0))  # 13:00 Warsaw: the 09:00 digest is past its grace
    app, platform = make_app(engine, clock, grace_minutes=60)
    await app.catch_up()
    assert platform.posts == []
    posted = await app.post_digest_now(app.settings.config.digests[0])
    assert posted.posted and len(platform.posts) == 1
    await app.catch_up()
    assert len(platform.posts) == 1


@pytest.mark.parametrize(
    ("crontab", "weekdays"),
    [
        ("0 9 * * 1-5", [0, 1, 2, 3, 4]),  # cron's 1-5 is Monday to Friday
        ("0 9 * * mon-fri", [0, 1, 2, 3, 4]),
        ("0 9 * * 0", [6]),  # 0 is Sunday in cron
        ("0 9 * * 7", [6]),  # and so is 7
        ("0 9 * * 5-7", [4, 5, 6]),
    ],
)
def test_numeric_weekdays_mean_what_they_mean_in_cron(crontab: str, weekdays: list[int]) -> None:
    from bot.schedule import LocalCronTrigger

    trigger = LocalCronTrigger(crontab, ZoneInfo("Europe/Warsaw"))
    fired = []
    fire = trigger.next_fire(datetime(2026, 11, 23, tzinfo=UTC))  # a Monday
    while fire is not None and fire.instant < datetime(2026, 11, 30, tzinfo=UTC):
        fired.append(fire.wall.weekday())
        fire = trigger.next_fire(fire.instant + timedelta(seconds=1))
    assert fired == weekdays


def test_an_invalid_cron_schedule_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    from bot.errors import ConfigError
    from bot.settings import load_settings

    config = tmp_path / "kpibot.toml"
    config.write_text(
        '[[digests]]\nname = "m"\nchannel = "console:main"\nschedule = "99 9 * * mon"\n'
    )
    with pytest.raises(ConfigError, match=r"digests\[0\]\.schedule.*99"):
        load_settings({}, config_path=config)

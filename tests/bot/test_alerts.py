"""Alerts a team can trust: fire once, remind sparingly, resolve once, in one thread.

Most tests script the observed values (an injected observer) and move a clock five minutes
per check; the last ones read real tickets through the KPI service.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.alerts import FIRING, NO_DATA, OK, PENDING, STALE, AlertEngine, Observation
from bot.commands import KpiService
from bot.delivery import Deliverer
from bot.platforms.base import CommandRequest
from bot.settings import AlertConfig
from bot.sources import stream_tables
from bot.state import AlertState, Delivery
from tests.bot.helpers import Clock, RecordingPlatform, add_tickets, mark_synced, settings_with

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday, 11:00 in Warsaw


class Script:
    """Observed values per check: a number, None (no data), or "stale"."""

    def __init__(self, values: Iterable[Any] = (), n: int = 50) -> None:
        self.values = list(values)
        self.n = n
        self.current: Any = None

    def __call__(self, rule: AlertConfig, now: datetime) -> list[Observation]:
        v = self.current
        if v == "stale":
            return [Observation("", 999.0, self.n, stale=True)]
        if isinstance(v, dict):  # split by a dimension: {key: value}
            return [Observation(k, x, self.n) for k, x in v.items()]
        if isinstance(v, tuple):  # relative: (value, previous)
            return [Observation("", v[0], self.n, v[1])]
        return [Observation("", v, self.n if v is not None else 0)]


class Harness:
    """One rule, a recording platform, and a clock five minutes per check."""

    def __init__(self, engine: Engine, rule: dict[str, Any], team: dict[str, Any] | None = None):
        self.engine = engine
        self.rule = AlertConfig(
            name="frt-high", query="frt p90 last 1d", channel="slack:C1", **rule
        )
        self.settings = settings_with(team=team or {"timezone": "Europe/Warsaw"})
        self.clock = Clock(START)
        self.platform = RecordingPlatform()
        self.script = Script()
        self.alerts = self.new_engine()
        self.deliverer = Deliverer(engine, {"slack": self.platform}, clock=self.clock)

    def new_engine(self) -> AlertEngine:
        """What a restarted process builds: fresh objects over the same database."""
        service = KpiService(self.engine, self.settings, clock=self.clock, charts=False)
        return AlertEngine(
            service, [self.rule], observe=self.script, min_gap=timedelta(minutes=2, seconds=30)
        )

    async def check(self, value: Any) -> str:
        self.script.current = value
        outcomes = await self.alerts.run_once(self.deliverer, self.clock())
        self.clock.advance(minutes=5)
        return outcomes[0].status if outcomes else "none"

    async def run(self, values: Iterable[Any]) -> list[str]:
        return [await self.check(v) for v in values]

    @property
    def kinds(self) -> list[str]:
        return [p.reply.title.split(":")[0] for p in self.platform.posts]


async def test_fires_after_the_pending_period_and_not_before(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "for_checks": 3})
    assert await h.run([250, 250]) == [PENDING, PENDING]
    assert h.platform.posts == []
    assert await h.check(250) == FIRING
    assert h.kinds == ["🚨 Alert"]
    alert = h.platform.posts[0].reply
    assert "4h 10m" in (alert.text or "") and "above 4h" in (alert.text or "")
    assert "breaching for 10m" in (alert.text or "")  # since the first breaching check
    assert {"Current", "Threshold", "Breaching for"} <= {f.label for f in alert.fields}


async def test_a_breach_that_ends_during_the_pending_period_never_fires(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "for_checks": 3})
    assert await h.run([250, 250, 200, 250, 250]) == [PENDING, PENDING, OK, PENDING, PENDING]
    assert h.platform.posts == []


async def test_hysteresis_holds_the_alert_until_the_resolve_level(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "resolve_at": 180})
    statuses = await h.run([250, 230, 200, 181, 170])
    assert statuses == [FIRING, FIRING, FIRING, FIRING, OK]
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]
    resolved = h.platform.posts[1]
    assert resolved.thread_ref == h.platform.posts[0].ref
    assert "back at 2h 50m" in (resolved.reply.text or "")


async def test_flapping_input_fires_once_and_resolves_once(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "resolve_at": 180, "repeat_every": "0"})
    await h.run([250, 235, 245, 238, 260, 239, 241, 170, 175, 179])
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]


async def test_resolve_checks_keep_a_flapping_alert_open_without_hysteresis(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "resolve_checks": 3, "repeat_every": "0"})
    await h.run([250, 230, 250, 230, 230, 250, 230, 230, 230])
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]


async def test_reminders_follow_the_repeat_interval_in_the_thread(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "repeat_every": "30m"})
    await h.run([250] * 13)  # an hour of checks
    assert h.kinds == ["🚨 Alert", "🔔 Still firing", "🔔 Still firing"]
    first = h.platform.posts[0].ref
    assert [p.thread_ref for p in h.platform.posts] == [None, first, first]
    assert "breaching for 30m" in (h.platform.posts[1].reply.text or "")


async def test_a_mute_command_holds_the_alert_and_it_is_announced_when_the_mute_ends(
    engine: Engine,
) -> None:
    h = Harness(engine, {"above": 240})
    service = h.alerts.service
    service.mute_handler = lambda rule, d, by: h.alerts.mute(rule, d, by, h.clock())
    said = service.reply_for(
        CommandRequest(text="mute frt-high 30m", platform="slack", channel_id="C1", user_id="U1")
    )
    assert said.title == "Alert muted" and "11:30 Europe/Warsaw" in (said.text or "")
    assert await h.run([250] * 6) == [FIRING] * 6  # 25 minutes: the state moves, quietly
    assert h.platform.posts == []
    await h.check(250)  # 30 minutes: the mute is over
    assert h.kinds == ["🚨 Alert"]
    assert "breaching for 30m" in (h.platform.posts[0].reply.text or "")
    unknown = service.reply_for(
        CommandRequest(text="mute nope 2h", platform="slack", channel_id="C1")
    )
    assert unknown.kind == "error" and "frt-high" in (unknown.text or "")


async def test_unmute_lifts_a_mute_at_once(engine: Engine) -> None:
    h = Harness(engine, {"above": 240})
    h.alerts.mute("frt-high", timedelta(hours=2), "ann", h.clock())
    await h.check(250)
    assert h.platform.posts == []
    h.alerts.mute("frt-high", None, "ann", h.clock())
    await h.check(250)
    assert h.kinds == ["🚨 Alert"]


async def test_mute_windows_hold_alerts_at_night_and_weekends_in_local_time(
    engine: Engine,
) -> None:
    h = Harness(engine, {"above": 240, "mute": ["sat-sun", "mon-fri 20:00-08:00"]})
    h.clock.now = datetime(2026, 11, 24, 19, 30, tzinfo=UTC)  # Tuesday 20:30 in Warsaw
    await h.check(250)
    h.clock.now = datetime(2026, 11, 25, 6, 55, tzinfo=UTC)  # Wednesday 07:55
    await h.check(250)
    assert h.platform.posts == []
    h.clock.now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 08:00: the window is over
    await h.check(250)
    assert h.kinds == ["🚨 Alert"]
    h.clock.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # Saturday: resolution is posted
    await h.check(100)  # in the thread of the announced alert, even in a mute window
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]


async def test_a_muted_alert_that_resolves_before_being_announced_posts_nothing(
    engine: Engine,
) -> None:
    h = Harness(engine, {"above": 240})
    h.alerts.mute("frt-high", timedelta(hours=1), "ann", h.clock())
    await h.run([250, 250, 100])
    h.clock.advance(hours=1)
    await h.run([100, 100])
    assert h.platform.posts == []


async def test_no_data_is_neither_firing_nor_resolved(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "min_n": 10})
    assert await h.run([250, None, None]) == [FIRING, NO_DATA, NO_DATA]
    assert await h.check(250) == FIRING
    assert h.kinds == ["🚨 Alert"]  # no resolution on missing data, no second alert
    h.script.n = 5  # too few observations is no data too
    assert await h.check(100) == NO_DATA
    h.script.n = 50
    assert await h.check(100) == OK
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]


async def test_no_data_pauses_the_pending_period(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "for_checks": 2})
    assert await h.run([250, None, 250]) == [PENDING, NO_DATA, FIRING]


async def test_a_stale_source_neither_fires_nor_resolves(engine: Engine) -> None:
    h = Harness(engine, {"above": 240})
    assert await h.run(["stale", "stale"]) == [STALE, STALE]
    assert h.platform.posts == []
    assert await h.check(250) == FIRING
    assert await h.run(["stale", "stale"]) == [STALE, STALE]
    assert h.kinds == ["🚨 Alert"]
    with engine.connect() as conn:
        state = conn.execute(select(AlertState)).mappings().one()
    assert state["status"] == STALE and state["fired_at"] is not None  # still open underneath


async def test_a_relative_rule_compares_with_the_previous_window(engine: Engine) -> None:
    h = Harness(engine, {"drops_by": 10, "resolve_at": 5})
    assert await h.run([(30.0, 35.0), (20.0, 35.0), (28.0, 35.0), (31.0, 35.0)]) == [
        OK,
        FIRING,
        FIRING,
        OK,
    ]
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]
    assert "down 10" in (h.platform.posts[0].reply.text or "")
    assert await h.check((20.0, None)) == NO_DATA  # nothing to compare with


async def test_a_restart_mid_breach_neither_refires_nor_forgets_the_thread(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "repeat_every": "1h"})
    await h.run([250, 250])
    assert h.kinds == ["🚨 Alert"]
    first = h.platform.posts[0].ref
    # The process restarts: new engine, new deliverer, new platform connection, same DB.
    h.alerts = h.new_engine()
    h.platform = RecordingPlatform(posts=[])
    h.deliverer = Deliverer(engine, {"slack": h.platform}, clock=h.clock)
    await h.run([250] * 3)
    assert h.platform.posts == []  # no re-fire
    await h.check(100)
    assert h.kinds == ["✅ Resolved"]
    assert h.platform.posts[0].thread_ref == first


async def test_a_failed_alert_post_is_retried_and_the_reply_waits_for_it(engine: Engine) -> None:
    h = Harness(engine, {"above": 240})
    h.platform.fail_next()
    await h.check(250)
    assert h.platform.posts == []
    await h.check(100)  # resolved before the alert got out: the reply waits for it
    assert h.platform.posts == []
    h.clock.advance(minutes=5)  # the backoff has passed: one sweep posts both, in order
    await h.deliverer.retry_due()
    await h.deliverer.retry_due()
    assert h.kinds == ["🚨 Alert", "✅ Resolved"]
    assert h.platform.posts[1].thread_ref == h.platform.posts[0].ref


async def test_two_instances_checking_at_the_same_instant_count_and_notify_once(
    engine: Engine,
) -> None:
    h = Harness(engine, {"above": 240, "for_checks": 2})
    other = h.new_engine()
    other_platform = RecordingPlatform()
    other_deliverer = Deliverer(engine, {"slack": other_platform}, clock=h.clock)
    for _ in range(2):
        h.script.current = 250
        await h.alerts.run_once(h.deliverer, h.clock())
        await other.run_once(other_deliverer, h.clock())
        h.clock.advance(minutes=5)
    assert len(h.platform.posts) + len(other_platform.posts) == 1


async def test_a_split_rule_keeps_one_state_per_value(engine: Engine) -> None:
    h = Harness(engine, {"above": 240, "by": "channel"})
    h.script.current = {"email": 250, "chat": 100}
    await h.alerts.run_once(h.deliverer, h.clock())
    h.clock.advance(minutes=5)
    h.script.current = {"email": 250}  # chat had no tickets: no data, not resolved
    outcomes = await h.alerts.run_once(h.deliverer, h.clock())
    assert {(o.key, o.status) for o in outcomes} == {("email", FIRING), ("chat", NO_DATA)}
    assert h.kinds == ["🚨 Alert"]
    assert "channel=email" in h.platform.posts[0].reply.title
    with engine.connect() as conn:
        whats = conn.execute(select(Delivery.what)).scalars().all()
    assert whats == ["alert:frt-high:email"]


async def test_a_dry_run_changes_nothing(engine: Engine) -> None:
    h = Harness(engine, {"above": 240})
    h.script.current = 250
    outcomes = h.alerts.check(h.clock(), persist=False)
    assert outcomes[0].status == FIRING and outcomes[0].notices
    with engine.connect() as conn:
        assert conn.execute(select(AlertState)).first() is None
        assert conn.execute(select(Delivery)).first() is None


# -- through the KPI service, on real rows ---------------------------------------------------


def real_engine(engine: Engine, rule: dict[str, Any]) -> tuple[AlertEngine, Clock]:
    clock = Clock(START)
    settings = settings_with(team={"timezone": "Europe/Warsaw"})
    service = KpiService(engine, settings, clock=clock, charts=False, stream_tables=stream_tables())
    return AlertEngine(service, [AlertConfig(name="r", channel="slack:C1", **rule)]), clock


async def test_a_real_threshold_fires_with_value_threshold_and_chart(engine: Engine) -> None:
    alerts, clock = real_engine(engine, {"query": "frt p90 last 1d", "above": 240, "min_n": 5})
    add_tickets(engine, at=START - timedelta(hours=3), count=8, first_reply=300)
    mark_synced(engine, START)
    platform = RecordingPlatform()
    outcomes = await alerts.run_once(Deliverer(engine, {"slack": platform}, clock=clock), START)
    assert outcomes[0].status == FIRING
    reply = platform.posts[0].reply
    assert "5h" in (reply.text or "") and "above 4h" in (reply.text or "")
    assert reply.chart is not None and reply.chart.png.startswith(b"\x89PNG")


async def test_a_stale_source_behind_a_real_rule_is_stale(engine: Engine) -> None:
    alerts, _ = real_engine(engine, {"query": "frt p90 last 1d", "above": 240})
    add_tickets(engine, at=START - timedelta(hours=3), count=8, first_reply=300)
    mark_synced(engine, START - timedelta(hours=6))  # demo's stale_after is 3 h
    outcomes = alerts.check(START, persist=False)
    assert outcomes[0].status == STALE and outcomes[0].notices == []


@pytest.mark.parametrize("count, status", [(0, NO_DATA), (3, NO_DATA), (12, FIRING)])
def test_min_n_on_real_rows(engine: Engine, count: int, status: str) -> None:
    alerts, _ = real_engine(engine, {"query": "frt p90 last 1d", "above": 240, "min_n": 10})
    if count:
        add_tickets(engine, at=START - timedelta(hours=3), count=count, first_reply=300)
    mark_synced(engine, START)
    assert alerts.check(START, persist=False)[0].status == status


async def test_kpi_alerts_lists_every_rule_with_its_state(engine: Engine) -> None:
    h = Harness(engine, {"above": 240})
    service = h.alerts.service
    service.alerts_handler = lambda: h.alerts.status_lines(h.clock())
    request = CommandRequest(text="alerts", platform="slack", channel_id="C1")
    assert "frt-high: not checked yet" in (service.reply_for(request).text or "")
    await h.run([250, 250])
    board = service.reply_for(request)
    assert board.ephemeral and board.title == "Alert rules"
    assert "🔴 frt-high: firing, 4h 10m, firing for" in (board.text or "")

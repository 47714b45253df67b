"""Threshold alerts with Alertmanager-like semantics, persisted so restarts forget nothing.

Per rule (and per dimension value when a rule is split ``by`` one), each check moves a
small state machine::

    ok ──breach──► pending ──N consecutive breaches──► firing ──resolve──► ok
     ▲                │                                   │ repeat_every: reminder
     └──no breach─────┘                                   └─(no data / stale: paused)

* ``for_checks``: fire after N consecutive breaching checks (the pending period).
* ``resolve_at``: hysteresis. Once firing, the alert resolves only when the value is past
  this level (default: the threshold itself).
* ``min_n``: fewer observations than this is "no data", neither firing nor resolved.
* A source that is stale makes the rule "stale": nothing fires or resolves on old data.
* ``repeat_every``: a reminder while it keeps firing; reminders and the resolution are
  threaded under the first message.
* Mutes (``/kpi mute <rule> 2h`` and configured windows like ``sat-sun`` or
  ``mon-fri 20:00-08:00``) hold notifications back; the state still moves, and a firing
  alert whose first message was held is announced when the mute ends.

Every notification goes through the delivery ledger, so it is sent once even with several
bot processes or a restart in between.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from bot import format as fmt
from bot.commands import KpiService, parse_duration
from bot.delivery import Deliverer
from bot.replies import Field, Reply, Tone
from bot.settings import AlertConfig
from bot.state import AlertState, Mute
from metrics import QueryError, get_kpi, parse_query

log = logging.getLogger(__name__)

OK, PENDING, FIRING, NO_DATA, STALE = "ok", "pending", "firing", "no_data", "stale"


@dataclass(frozen=True)
class Observation:
    key: str  # dimension value, "" for an unsplit rule
    value: float | None
    n: int
    previous: float | None = None
    stale: bool = False


@dataclass(frozen=True)
class Notice:
    """A message an alert check decided to send."""

    rule: str
    key: str
    kind: str  # firing, reminder, resolved
    period: str  # the ledger period: unique per notice
    reply: Reply
    thread_ref: str | None


@dataclass
class CheckOutcome:
    rule: str
    key: str
    status: str
    value: float | None
    notices: list[Notice]


class AlertEngine:
    def __init__(self, service: KpiService, rules: Sequence[AlertConfig]) -> None:
        self.service = service
        self.engine: Engine = service.engine
        self.rules = {r.name: r for r in rules}
        for rule in rules:  # fail at start-up, naming the rule, rather than at 3 a.m.
            try:
                parse_query(rule.query)
            except QueryError as exc:
                from bot.errors import ConfigError

                raise ConfigError(f"alerts.{rule.name}.query", str(exc), "fix the query") from None

    # -- checking ------------------------------------------------------------------------

    def observe(self, rule: AlertConfig, now: datetime) -> list[Observation]:
        """The rule's current value(s): one per dimension value when split."""
        query = rule.query
        relative = rule.drops_by is not None or rule.rises_by is not None
        if relative and " vs " not in f" {query} ":
            query += " vs previous"
        if rule.by:
            query += f" by {rule.by}"
        answer = self.service.ask(query, now=now, chart=False)
        with self.engine.connect() as conn:
            stale = any(f.stale for f in self.service.freshness_for(conn, answer.kpi, now))
        result = answer.result
        if rule.by:
            prev = {p.key: p.value for p in result.previous_series}
            return [Observation(p.key, p.value, p.n, prev.get(p.key), stale) for p in result.series]
        return [Observation("", result.value, result.n, result.previous, stale)]

    def check(self, now: datetime) -> list[CheckOutcome]:
        """Check every rule once; returns what changed and the notices to deliver."""
        outcomes: list[CheckOutcome] = []
        for rule in self.rules.values():
            try:
                observations = self.observe(rule, now)
            except Exception:
                log.exception("alert %s: could not evaluate %r", rule.name, rule.query)
                continue
            for obs in observations:
                outcomes.append(self._advance(rule, obs, now))
        return outcomes

    def _advance(self, rule: AlertConfig, obs: Observation, now: datetime) -> CheckOutcome:
        with self.engine.begin() as conn:
            state = conn.execute(
                select(AlertState).where(
                    AlertState.rule == rule.name, AlertState.dimension_value == obs.key
                )
            ).scalar_one_or_none()
            row = _StateRow.of(state, rule.name, obs.key)
            notices = self._transition(rule, row, obs, now)
            row.last_value = obs.value if obs.value is not None else row.last_value
            row.last_checked_at = now
            values = row.values(now)
            if state is None:
                conn.execute(AlertState.__table__.insert().values(**values))
            else:
                conn.execute(
                    AlertState.__table__.update()
                    .where(AlertState.rule == rule.name, AlertState.dimension_value == obs.key)
                    .values(**values)
                )
        return CheckOutcome(rule.name, obs.key, row.status, obs.value, notices)

    def _transition(
        self, rule: AlertConfig, row: _StateRow, obs: Observation, now: datetime
    ) -> list[Notice]:
        if obs.stale:
            row.status = STALE
            return []
        if obs.value is None or obs.n < rule.min_n:
            row.status = NO_DATA
            return []
        firing = row.fired_at is not None
        breaching = _breaches(rule, obs, firing=firing)
        muted = self.muted(rule, now)
        notices: list[Notice] = []
        if breaching:
            row.breaching_checks += 1
            row.breaching_since = row.breaching_since or now
            if not firing and row.breaching_checks >= rule.for_checks:
                row.fired_at = now
                row.status = FIRING
                if not muted:
                    notices.append(self._notice(rule, row, obs, "firing", now))
                    row.last_notified_at = now
            elif firing:
                row.status = FIRING
                if not muted:
                    if row.last_notified_at is None:  # first message was held by a mute
                        notices.append(self._notice(rule, row, obs, "firing", now))
                        row.last_notified_at = now
                    else:
                        repeat = (
                            parse_duration(rule.repeat_every) if rule.repeat_every != "0" else None
                        )
                        if repeat is not None and now - row.last_notified_at >= repeat:
                            notices.append(self._notice(rule, row, obs, "reminder", now))
                            row.last_notified_at = now
            else:
                row.status = PENDING
        else:
            if firing and row.last_notified_at is not None and not muted:
                notices.append(self._notice(rule, row, obs, "resolved", now))
            row.status = OK
            row.fired_at = None
            row.breaching_checks = 0
            row.breaching_since = None
            row.last_notified_at = None
            row.thread_ref = None
        return notices

    # -- notices -------------------------------------------------------------------------

    def _notice(
        self, rule: AlertConfig, row: _StateRow, obs: Observation, kind: str, now: datetime
    ) -> Notice:
        assert row.fired_at is not None
        kpi = get_kpi(parse_query(rule.query).kpi)
        unit = kpi.unit_for(self.service.ctx.currency)
        current = fmt.value(obs.value, unit)
        label = rule.name + (f" ({rule.by}={obs.key})" if obs.key else "")
        since = row.breaching_since or now
        how_long = fmt.duration((now - since).total_seconds() / 60) if now > since else "just now"
        condition = describe_condition(rule, unit)
        if kind == "resolved":
            title = f"✅ Resolved: {label}"
            text = f"{kpi.title} is back at {current} ({condition} no longer holds)."
            tone = Tone.GOOD
        else:
            prefix = "🔔 Reminder" if kind == "reminder" else "🚨 Alert"
            title = f"{prefix}: {label}"
            text = f"{kpi.title} is {current}: {condition}, breaching for {how_long}."
            tone = Tone.BAD
        fields = [Field("Current", current, tone), Field("Condition", condition)]
        if obs.previous is not None:
            fields.append(Field("Previous period", fmt.value(obs.previous, unit)))
        fields.append(Field("Observations", f"{obs.n:,}"))
        chart = self._chart(rule, now) if kind != "resolved" else None
        fired = row.fired_at.isoformat()
        period = {
            "firing": f"fire@{fired}",
            "reminder": f"remind@{fired}@{now.isoformat()}",
            "resolved": f"resolve@{fired}",
        }[kind]
        reply = Reply(
            title=title,
            kind="alert",
            text=text,
            tone=tone,
            fields=tuple(fields),
            context=(f"Rule `{rule.name}`: {rule.query} · mute with /kpi mute {rule.name} 2h",),
            chart=chart,
        )
        thread = row.thread_ref if kind != "firing" else None
        return Notice(rule.name, obs.key, kind, period, reply, thread)

    def _chart(self, rule: AlertConfig, now: datetime):  # type: ignore[no-untyped-def]
        threshold = rule.above if rule.above is not None else rule.below
        try:
            from bot import charts

            answer = self.service.ask(f"{rule.query} by day", now=now, chart=False)
            return charts.render(answer.result, threshold=threshold)
        except Exception:  # a chart must never cost the alert
            log.debug("no chart for alert %s", rule.name, exc_info=True)
            return None

    async def run_once(self, deliverer: Deliverer, now: datetime) -> list[CheckOutcome]:
        """Check every rule and deliver what it decided, threading follow-ups."""
        import asyncio

        outcomes = await asyncio.to_thread(self.check, now)
        for outcome in outcomes:
            for notice in outcome.notices:
                rule = self.rules[notice.rule]
                posted = await deliverer.deliver(
                    what=f"alert:{notice.rule}:{notice.key}",
                    target=rule.channel,
                    period=notice.period,
                    reply=notice.reply,
                    thread_ref=notice.thread_ref,
                )
                if notice.kind == "firing" and posted.message_ref:
                    self._set_thread(notice.rule, notice.key, posted.message_ref)
        return outcomes

    def _set_thread(self, rule: str, key: str, ref: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                AlertState.__table__.update()
                .where(AlertState.rule == rule, AlertState.dimension_value == key)
                .values(thread_ref=ref)
            )

    # -- mutes ---------------------------------------------------------------------------

    def mute(self, rule: str, duration: timedelta, by: str, now: datetime) -> str:
        if rule not in self.rules:
            names = ", ".join(sorted(self.rules)) or "none configured"
            raise KeyError(f"No alert rule named {rule!r}. Rules: {names}")
        until = now + duration
        with self.engine.begin() as conn:
            conn.execute(delete(Mute).where(Mute.rule == rule))
            conn.execute(
                Mute.__table__.insert().values(rule=rule, until=until, muted_by=by, created_at=now)
            )
        return f"`{rule}` is muted for {fmt.duration(duration.total_seconds() / 60)} (until {until:%Y-%m-%d %H:%M} UTC)."

    def muted(self, rule: AlertConfig, now: datetime) -> bool:
        with self.engine.connect() as conn:
            until = conn.execute(
                select(Mute.until).where(Mute.rule == rule.name)
            ).scalar_one_or_none()
        if until is not None and until > now:
            return True
        local = now.astimezone(self.service.ctx.timezone)
        return any(in_mute_window(w, local) for w in rule.mute)


def _breaches(rule: AlertConfig, obs: Observation, *, firing: bool) -> bool:
    v = obs.value
    assert v is not None
    if rule.above is not None:
        level = rule.resolve_at if firing and rule.resolve_at is not None else rule.above
        return v > level
    if rule.below is not None:
        level = rule.resolve_at if firing and rule.resolve_at is not None else rule.below
        return v < level
    if obs.previous is None:
        return False
    delta = v - obs.previous
    if rule.drops_by is not None:
        level = rule.resolve_at if firing and rule.resolve_at is not None else rule.drops_by
        return -delta >= level
    assert rule.rises_by is not None
    level = rule.resolve_at if firing and rule.resolve_at is not None else rule.rises_by
    return delta >= level


def describe_condition(rule: AlertConfig, unit: str) -> str:
    if rule.above is not None:
        return f"above {fmt.value(rule.above, unit)}"
    if rule.below is not None:
        return f"below {fmt.value(rule.below, unit)}"
    if rule.drops_by is not None:
        return f"down {fmt.change(rule.drops_by, unit)} or more vs the previous period"
    assert rule.rises_by is not None
    return f"up {fmt.change(rule.rises_by, unit)} or more vs the previous period"


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# "sat-sun", "mon-fri 20:00-08:00", "20:00-08:00"
_WINDOW = re.compile(
    r"^(?:(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?)?\s*(?:(?P<t1>\d{1,2}:\d{2})-(?P<t2>\d{1,2}:\d{2}))?$"
)


def in_mute_window(spec: str, local: datetime) -> bool:
    """Whether a local time falls in a mute window; a window past midnight belongs to the
    day it starts on ("fri 20:00-08:00" covers Friday night until Saturday 08:00)."""
    match = _WINDOW.match(spec.strip().lower())
    if not match or not any(match.groupdict().values()):
        raise ValueError(f"mute window {spec!r} is not like 'sat-sun' or 'mon-fri 20:00-08:00'")
    d1, d2, t1, t2 = match.group("d1", "d2", "t1", "t2")
    days = set(range(7))
    if d1:
        a = _DAYS.index(d1)
        b = _DAYS.index(d2) if d2 else a
        days = {(a + i) % 7 for i in range((b - a) % 7 + 1)}
    if not t1:
        return local.weekday() in days
    start = _minutes(t1)
    end = _minutes(t2)
    now_m = local.hour * 60 + local.minute
    if start <= end:
        return local.weekday() in days and start <= now_m < end
    # past midnight: the evening part on a listed day, the morning part on the day after
    return (local.weekday() in days and now_m >= start) or (
        (local.weekday() - 1) % 7 in days and now_m < end
    )


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass
class _StateRow:
    rule: str
    key: str
    status: str = OK
    breaching_checks: int = 0
    breaching_since: datetime | None = None
    fired_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_value: float | None = None
    last_checked_at: datetime | None = None
    thread_ref: str | None = None

    @classmethod
    def of(cls, state: AlertState | None, rule: str, key: str) -> _StateRow:
        if state is None:
            return cls(rule, key)
        return cls(
            rule,
            key,
            state.status,
            state.breaching_checks,
            state.breaching_since,
            state.fired_at,
            state.last_notified_at,
            state.last_value,
            state.last_checked_at,
            state.thread_ref,
        )

    def values(self, now: datetime) -> dict[str, object]:
        return {
            "rule": self.rule,
            "dimension_value": self.key,
            "status": self.status,
            "breaching_checks": self.breaching_checks,
            "breaching_since": self.breaching_since,
            "fired_at": self.fired_at,
            "last_notified_at": self.last_notified_at,
            "last_value": self.last_value,
            "last_checked_at": self.last_checked_at,
            "thread_ref": self.thread_ref,
            "updated_at": now,
        }


def describe_state(rows: list[CheckOutcome]) -> str:  # pragma: no cover - CLI convenience
    return "\n".join(f"{o.rule}{'/' + o.key if o.key else ''}: {o.status}" for o in rows)


__all__ = ["AlertEngine", "CheckOutcome", "Notice", "in_mute_window"]

"""Threshold alerts with Alertmanager-like semantics, persisted so restarts forget nothing.

Per rule (and per dimension value when a rule is split ``by`` one), each check moves a
small state machine::

    ok ──breach──► pending ──for_checks consecutive breaches──► firing
     ▲                │                                            │ repeat_every: reminder
     └──no breach─────┘          resolve_checks checks past resolve_at ┘──► ok (resolved)

    no_data, stale: neither firing nor resolved. Nothing fires or resolves on missing or
    old data; the counters pause and the machine resumes where it was when data returns.

* ``for_checks``: fire after N consecutive breaching checks (the pending period).
* ``resolve_at``: hysteresis. Once firing, the alert resolves only when the value is past
  this level (default: the threshold itself); ``resolve_checks`` consecutive checks there.
* ``min_n``: fewer observations than this is "no data". A relative rule whose previous
  window is empty has no data too.
* A source that is stale makes the rule "stale".
* ``repeat_every``: a reminder while it keeps firing; reminders and the resolution are
  threaded under the first message (its platform reference is in the delivery ledger, so
  a restart or another instance threads them just the same).
* Mutes (``/kpi mute <rule> 2h`` and configured windows like ``sat-sun`` or
  ``mon-fri 20:00-08:00``) hold new alerts and reminders back; the state still moves, and a
  firing alert whose first message was held is announced when the mute ends. The
  resolution of an alert that *was* announced is still posted, in its thread: no announced
  alert is left looking open.

A check's state change and the ledger claims of the notices it decides commit in one
transaction (with the rule's state row locked on PostgreSQL), and a rule checked again
within half the check interval is left alone: two instances checking at the same instant
neither double-count a pending check nor both notify. Every notification then goes through
the delivery ledger, which posts it once, retries a failed post, and never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot import format as fmt
from bot.commands import KpiService, parse_duration
from bot.delivery import Deliverer, Key
from bot.replies import Field, Reply, Tone
from bot.settings import AlertConfig
from bot.state import AlertState, Mute
from metrics import QueryError, get_kpi, parse_query

log = logging.getLogger(__name__)

OK, PENDING, FIRING, NO_DATA, STALE = "ok", "pending", "firing", "no_data", "stale"
FIRING_NOTICE, REMINDER, RESOLVED = "firing", "reminder", "resolved"


@dataclass(frozen=True)
class Observation:
    key: str  # dimension value, "" for an unsplit rule
    value: float | None
    n: int
    previous: float | None = None
    stale: bool = False


Observer = Callable[[AlertConfig, datetime], list[Observation]]


@dataclass(frozen=True)
class Notice:
    """A message an alert check decided to send."""

    rule: str
    key: str
    kind: str  # firing, reminder, resolved
    period: str  # the ledger period: unique per notice
    reply: Reply
    thread_of: str | None  # the ledger period of the first message, for replies
    expires_at: datetime

    @property
    def what(self) -> str:
        return f"alert:{self.rule}:{self.key}" if self.key else f"alert:{self.rule}"


@dataclass
class CheckOutcome:
    rule: str
    key: str
    status: str
    value: float | None
    notices: list[Notice] = field(default_factory=list)
    skipped: bool = False  # checked moments ago (by this or another instance): left alone


class AlertEngine:
    """``observe`` (tests inject one) returns a rule's current values; by default the KPI
    service evaluates the rule's query. ``min_gap``: a rule checked more recently than this
    is not checked again (set it to half the check interval)."""

    def __init__(
        self,
        service: KpiService,
        rules: Sequence[AlertConfig],
        *,
        observe: Observer | None = None,
        min_gap: timedelta = timedelta(0),
    ) -> None:
        self.service = service
        self.engine: Engine = service.engine
        self.rules = {r.name: r for r in rules}
        self.observer: Observer = observe or self.observe_kpi
        self.min_gap = min_gap
        for rule in rules:  # fail at start-up, naming the rule, rather than at 3 a.m.
            try:
                parse_query(rule.query)
            except QueryError as exc:
                from bot.errors import ConfigError

                raise ConfigError(f"alerts.{rule.name}.query", str(exc), "fix the query") from None

    # -- checking ------------------------------------------------------------------------

    def observe_kpi(self, rule: AlertConfig, now: datetime) -> list[Observation]:
        """The rule's current value(s) from the warehouse: one per dimension value when split."""
        query = rule.query
        if _relative(rule) and " vs " not in f" {query} ":
            query += " vs previous"
        if rule.by:
            query += f" by {rule.by}"
        answer = self.service.ask(query, now=now, chart=False)
        stale = any(f.stale for f in answer.fresh)
        result = answer.result
        if rule.by:
            prev = {p.key: p.value for p in result.previous_series}
            return [Observation(p.key, p.value, p.n, prev.get(p.key), stale) for p in result.series]
        return [Observation("", result.value, result.n, result.previous, stale)]

    def check(
        self, now: datetime, *, deliverer: Deliverer | None = None, persist: bool = True
    ) -> list[CheckOutcome]:
        """Check every rule once. With ``deliverer``, the notices decided are claimed in the
        ledger with the state change (post them with :meth:`run_once`); ``persist=False`` is
        a dry run that changes nothing (``kpibot alerts`` without ``--post``, the demo)."""
        outcomes: list[CheckOutcome] = []
        for rule in self.rules.values():
            try:
                observations = self.observer(rule, now)
            except Exception:
                log.exception("alert %s: could not evaluate %r", rule.name, rule.query)
                continue
            seen = {o.key for o in observations}
            stale = any(o.stale for o in observations)
            # A dimension value that vanished from the data has no data now: say so.
            for key in self._known_keys(rule.name) - seen:
                observations.append(Observation(key, None, 0, stale=stale))
            muted = self.muted(rule, now)
            for obs in observations:
                try:
                    outcomes.append(self._advance(rule, obs, now, muted, deliverer, persist))
                except Exception:
                    log.exception("alert %s: checking %r failed", rule.name, obs.key)
        return outcomes

    def _known_keys(self, rule: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(
                conn.execute(
                    select(AlertState.dimension_value).where(AlertState.rule == rule)
                ).scalars()
            )

    def _advance(
        self,
        rule: AlertConfig,
        obs: Observation,
        now: datetime,
        muted: bool,
        deliverer: Deliverer | None,
        persist: bool,
    ) -> CheckOutcome:
        with self.engine.begin() as conn:
            if persist:
                _ensure_state_row(conn, rule.name, obs.key, now)
            stmt = select(AlertState).where(
                AlertState.rule == rule.name, AlertState.dimension_value == obs.key
            )
            state = (
                conn.execute(stmt.with_for_update() if persist else stmt).mappings().one_or_none()
            )
            row = _StateRow.of(state, rule.name, obs.key)
            if (
                persist
                and row.last_checked_at is not None
                and row.last_checked_at > now - self.min_gap
            ):
                return CheckOutcome(rule.name, obs.key, row.status, row.last_value, skipped=True)
            notices = self._transition(rule, row, obs, now, muted)
            if deliverer is not None:
                notices = [n for n in notices if self._claim(conn, deliverer, rule, n, now)]
            row.last_value = obs.value if obs.value is not None else row.last_value
            row.last_checked_at = now
            if persist:
                conn.execute(
                    update(AlertState)
                    .where(AlertState.rule == rule.name, AlertState.dimension_value == obs.key)
                    .values(**row.values(now))
                )
        return CheckOutcome(rule.name, obs.key, row.status, obs.value, notices)

    def _claim(
        self,
        conn: Connection,
        deliverer: Deliverer,
        rule: AlertConfig,
        notice: Notice,
        now: datetime,
    ) -> bool:
        if not deliverer.can_post(rule.channel):
            log.error("alert %s: no running platform can post to %s", rule.name, rule.channel)
            return False
        return deliverer.claim(
            conn,
            what=notice.what,
            target=rule.channel,
            period=notice.period,
            reply=notice.reply,
            now=now,
            thread_of=notice.thread_of,
            expires_at=notice.expires_at,
        )

    def _transition(
        self, rule: AlertConfig, row: _StateRow, obs: Observation, now: datetime, muted: bool
    ) -> list[Notice]:
        if obs.stale:
            row.status = STALE
            return []
        if obs.value is None or obs.n < rule.min_n or (_relative(rule) and obs.previous is None):
            row.status = NO_DATA
            return []
        firing = row.fired_at is not None
        notices: list[Notice] = []
        if _breaches(rule, obs, firing=firing):
            row.recovering_checks = 0
            row.breaching_checks += 1
            row.breaching_since = row.breaching_since or now
            if not firing and row.breaching_checks < rule.for_checks:
                row.status = PENDING
                return []
            row.status = FIRING
            if not firing:
                row.fired_at = now
            if muted:
                return []
            if row.last_notified_at is None:  # just fired, or its first message was muted
                notices.append(self._notice(rule, row, obs, FIRING_NOTICE, now))
                row.last_notified_at = now
            else:
                repeat = parse_duration(rule.repeat_every) if rule.repeat_every != "0" else None
                if repeat is not None and now - row.last_notified_at >= repeat:
                    notices.append(self._notice(rule, row, obs, REMINDER, now))
                    row.last_notified_at = now
            return notices
        if firing:
            row.recovering_checks += 1
            if row.recovering_checks < rule.resolve_checks:
                row.status = FIRING
                return []
            if row.last_notified_at is not None:
                notices.append(self._notice(rule, row, obs, RESOLVED, now))
        row.status = OK
        row.fired_at = None
        row.breaching_checks = 0
        row.recovering_checks = 0
        row.breaching_since = None
        row.last_notified_at = None
        row.thread_ref = None
        return notices

    # -- notices -------------------------------------------------------------------------

    def _notice(
        self, rule: AlertConfig, row: _StateRow, obs: Observation, kind: str, now: datetime
    ) -> Notice:
        assert row.fired_at is not None and obs.value is not None
        kpi = get_kpi(parse_query(rule.query).kpi)
        unit = kpi.unit_for(self.service.ctx.currency)
        current = fmt.value(obs.value, unit)
        label = rule.name + (f" ({rule.by}={obs.key})" if obs.key else "")
        since = row.breaching_since or now
        how_long = fmt.duration((now - since).total_seconds() / 60) if now > since else "just now"
        condition = describe_condition(rule, unit)
        fields = [Field("Current", current, Tone.GOOD if kind == RESOLVED else Tone.BAD)]
        fields.append(Field("Threshold", condition))
        if rule.resolve_at is not None:
            fields.append(Field("Resolves", describe_resolve(rule, unit)))
        if kind == RESOLVED:
            fired_for = fmt.duration(max(0.0, (now - since).total_seconds() / 60))
            title = f"✅ Resolved: {label}"
            text = f"{kpi.title} is back at {current}; it breached for {fired_for}."
            tone = Tone.GOOD
        else:
            prefix = "🔔 Still firing" if kind == REMINDER else "🚨 Alert"
            title = f"{prefix}: {label}"
            text = f"{kpi.title} is {current}: {condition}, breaching for {how_long}."
            tone = Tone.BAD
            fields.append(Field("Breaching for", how_long))
        if obs.previous is not None:
            fields.append(Field("Previous period", fmt.value(obs.previous, unit)))
        fields.append(Field("Observations", f"{obs.n:,}"))
        chart = self._chart(rule, obs.key, now) if kind != RESOLVED else None
        fired = _stamp(row.fired_at)
        first = f"fire@{fired}"
        period = {
            FIRING_NOTICE: first,
            REMINDER: f"remind@{fired}@{_stamp(now)}",
            RESOLVED: f"resolve@{fired}",
        }[kind]
        repeat = parse_duration(rule.repeat_every) if rule.repeat_every != "0" else None
        useful_for = (
            timedelta(hours=24)
            if kind == RESOLVED
            else max(repeat or timedelta(0), timedelta(hours=4))
        )
        reply = Reply(
            title=title,
            kind="alert",
            text=text,
            tone=tone,
            fields=tuple(fields),
            context=(f"Rule `{rule.name}`: {rule.query} · mute with /kpi mute {rule.name} 2h",),
            chart=chart,
        )
        thread_of = first if kind != FIRING_NOTICE else None
        return Notice(rule.name, obs.key, kind, period, reply, thread_of, now + useful_for)

    def _chart(self, rule: AlertConfig, key: str, now: datetime):  # type: ignore[no-untyped-def]
        threshold = rule.above if rule.above is not None else rule.below
        query = f"{rule.query} by day"
        if rule.by and key:
            query += f' where {rule.by}="{key}"'
        try:
            from bot import charts

            answer = self.service.ask(query, now=now, chart=False)
            return charts.render(answer.result, threshold=threshold)
        except Exception:  # a chart must never cost the alert
            log.debug("no chart for alert %s", rule.name, exc_info=True)
            return None

    async def run_once(self, deliverer: Deliverer, now: datetime) -> list[CheckOutcome]:
        """Check every rule and post what it decided: first messages before the replies
        threaded under them."""
        outcomes = await asyncio.to_thread(self.check, now, deliverer=deliverer)
        notices = [n for o in outcomes for n in o.notices]
        notices.sort(key=lambda n: n.kind != FIRING_NOTICE)
        for notice in notices:
            rule = self.rules[notice.rule]
            posted = await deliverer.post_claimed(
                Key(notice.what, deliverer.route(rule.channel), notice.period),
                notice.reply,
                thread_of=notice.thread_of,
            )
            if notice.kind == FIRING_NOTICE and posted.message_ref:
                self._set_thread(notice.rule, notice.key, posted.message_ref)
        return outcomes

    def _set_thread(self, rule: str, key: str, ref: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(AlertState)
                .where(AlertState.rule == rule, AlertState.dimension_value == key)
                .values(thread_ref=ref)
            )

    # -- mutes ---------------------------------------------------------------------------

    def mute(self, rule: str, duration: timedelta | None, by: str, now: datetime) -> str:
        """Mute ``rule`` for ``duration``; ``None`` lifts a mute."""
        if rule not in self.rules:
            names = ", ".join(sorted(self.rules)) or "none configured"
            raise KeyError(f"No alert rule named {rule!r}. Rules: {names}")
        with self.engine.begin() as conn:
            conn.execute(delete(Mute).where(Mute.rule == rule))
            if duration is None:
                return f"`{rule}` is no longer muted."
            until = now + duration
            conn.execute(insert(Mute).values(rule=rule, until=until, muted_by=by, created_at=now))
        local = until.astimezone(self.service.ctx.timezone)
        return (
            f"`{rule}` is muted for {fmt.duration(duration.total_seconds() / 60)} "
            f"(until {local:%Y-%m-%d %H:%M} {self.service.ctx.timezone.key})."
        )

    def status_lines(self, now: datetime) -> list[str]:
        """One line per rule (and dimension value) as last checked: ``/kpi alerts``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(AlertState).order_by(AlertState.rule, AlertState.dimension_value)
            ).all()
            mutes: dict[str, datetime] = {
                rule: until
                for rule, until in conn.execute(
                    select(Mute.rule, Mute.until).where(Mute.until > now)
                ).all()
            }
        seen: dict[str, list[str]] = {name: [] for name in self.rules}
        icons = {FIRING: "🔴", PENDING: "🟡", OK: "🟢", NO_DATA: "⚪", STALE: "⚪"}
        for state in rows:  # Core rows: columns by name
            if state.rule not in self.rules:
                continue
            rule = self.rules[state.rule]
            unit = get_kpi(parse_query(rule.query).kpi).unit_for(self.service.ctx.currency)
            label = state.rule + (
                f" ({rule.by}={state.dimension_value})" if state.dimension_value else ""
            )
            text = f"{icons.get(state.status, '⚪')} {label}: {state.status.replace('_', ' ')}"
            if state.last_value is not None:
                text += f", {fmt.value(state.last_value, unit)}"
            if state.status == FIRING and state.fired_at is not None:
                text += f", firing for {fmt.duration((now - state.fired_at).total_seconds() / 60)}"
            seen[state.rule].append(text)
        lines = []
        for name, entries in seen.items():
            lines.extend(entries or [f"⚪ {name}: not checked yet"])
            if name in mutes:
                lines.append(f"    muted until {mutes[name]:%Y-%m-%d %H:%M} UTC")
        return lines

    def muted(self, rule: AlertConfig, now: datetime) -> bool:
        with self.engine.connect() as conn:
            until = conn.execute(
                select(Mute.until).where(Mute.rule == rule.name)
            ).scalar_one_or_none()
        if until is not None and until > now:
            return True
        local = now.astimezone(self.service.ctx.timezone)
        return any(in_mute_window(w, local) for w in rule.mute)


def _ensure_state_row(conn: Connection, rule: str, key: str, now: datetime) -> None:
    """Insert the rule's state row if missing, so that it can be locked (FOR UPDATE)."""
    values = {
        "rule": rule,
        "dimension_value": key,
        "status": OK,
        "breaching_checks": 0,
        "recovering_checks": 0,
        "updated_at": now,
    }
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(dialect_insert(AlertState).values(**values).on_conflict_do_nothing())


def _stamp(when: datetime) -> str:
    """A compact UTC instant for ledger periods: 20261124T100000Z."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _relative(rule: AlertConfig) -> bool:
    return rule.drops_by is not None or rule.rises_by is not None


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


def describe_resolve(rule: AlertConfig, unit: str) -> str:
    """Where a firing alert resolves (hysteresis), in the rule's own terms."""
    level = rule.resolve_at
    assert level is not None
    if rule.above is not None:
        return f"at or below {fmt.value(level, unit)}"
    if rule.below is not None:
        return f"at or above {fmt.value(level, unit)}"
    word = "down" if rule.drops_by is not None else "up"
    return f"when less than {fmt.change(level, unit)} {word} vs the previous period"


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
    recovering_checks: int = 0
    breaching_since: datetime | None = None
    fired_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_value: float | None = None
    last_checked_at: datetime | None = None
    thread_ref: str | None = None

    @classmethod
    def of(cls, state: Mapping[Any, Any] | None, rule: str, key: str) -> _StateRow:
        """From an ``alert_states`` row (as a mapping); a fresh state when there is none."""
        if state is None:
            return cls(rule, key)
        fields = {f for f in cls.__dataclass_fields__ if f not in ("rule", "key")}
        return cls(rule, key, **{f: state[f] for f in fields})

    def values(self, now: datetime) -> dict[str, object]:
        return {
            "rule": self.rule,
            "dimension_value": self.key,
            "status": self.status,
            "breaching_checks": self.breaching_checks,
            "recovering_checks": self.recovering_checks,
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

"""``/kpi …``: from the text someone typed to a platform-neutral :class:`Reply`.

The same :class:`KpiService` answers Slack, Discord, the console and ``kpibot ask``. It
parses with the metrics engine, checks the channel's permissions, evaluates and renders the
chart off the event loop, and words the figure with :mod:`bot.format`. Platforms only
render the Reply.

Words understood besides a query: ``help``, ``help <kpi>``, ``list``, a trailing ``here``
(post the answer in the channel rather than only to the asker), ``mute <rule> <duration>``
and ``alerts`` (when an alert engine is attached).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from bot import format as fmt
from bot.freshness import SourceFreshness, freshness
from bot.permissions import Permissions
from bot.platforms.base import CommandRequest
from bot.replies import Chart, Field, Reply, Tone
from bot.settings import Settings
from metrics import (
    KPI,
    MetricContext,
    Query,
    QueryError,
    Result,
    RetentionSpend,
    evaluate,
    get_kpi,
    help_text,
    kpi_list,
    parse_query,
)
from metrics.windows import DEFAULT_WINDOW, resolve

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_SERIES_LINES = 14


def utcnow() -> datetime:
    return datetime.now(UTC)


def metric_context(settings: Settings) -> MetricContext:
    team, metrics = settings.config.team, settings.config.metrics
    spend = tuple(
        RetentionSpend(on=datetime.fromisoformat(e.month + "-01").date(), amount=e.amount)
        for e in metrics.retention_spend
    )
    return MetricContext(
        timezone=team.tz,
        currency=team.currency,
        business_hours=team.business_hours,
        gross_margin=metrics.gross_margin,
        retention_spend=spend,
        health_weights=metrics.health_weights.model_dump(),
    )


def validate_config(settings: Settings) -> None:
    """Check what the TOML says against the KPI catalogue, at start-up, naming the key."""
    from bot.alerts import in_mute_window
    from bot.errors import ConfigError
    from bot.platforms import PLATFORMS

    cfg = settings.config
    channels = [(f"digests[{i}].channel", d.channel) for i, d in enumerate(cfg.digests)]
    channels += [(f"alerts[{i}].channel", r.channel) for i, r in enumerate(cfg.alerts)]
    for key, channel in channels:
        platform, sep, rest = channel.partition(":")
        if not sep or not rest or platform not in PLATFORMS:
            raise ConfigError(
                key,
                f"{channel!r} does not name a platform and a channel",
                f"write {', '.join(repr(p + ':…') for p in PLATFORMS)}, e.g. 'slack:C0123ABC'",
            )
    for i, digest in enumerate(cfg.digests):
        for j, name in enumerate(digest.kpis):
            try:
                get_kpi(name)
            except QueryError as exc:
                raise ConfigError(
                    f"digests[{i}].kpis[{j}]", str(exc), "use a name from `kpibot ask list`"
                ) from None
        channel = digest.channel.partition(":")[2] or digest.channel
        permissions = Permissions(cfg.permissions)
        for j, name in enumerate(digest.kpis):
            kpi = get_kpi(name)
            if not permissions.allows(channel, kpi.name, kpi.aliases, kpi.sources):
                raise ConfigError(
                    f"digests[{i}].kpis[{j}]",
                    f"{kpi.name} may not be shown in {digest.channel} ([permissions])",
                    "remove it from this digest or allow it in that channel's permissions",
                )
        try:
            parse_query(f"{digest.kpis[0] if digest.kpis else 'nps'} {digest.window}")
        except QueryError as exc:
            raise ConfigError(
                f"digests[{i}].window", str(exc), "use e.g. 'last 7d' or 'yesterday'"
            ) from None
    for i, rule in enumerate(cfg.alerts):
        try:
            query = parse_query(rule.query)
            if rule.by:
                parse_query(f"{rule.query} by {rule.by}")
        except QueryError as exc:
            key = f"alerts[{i}].by" if rule.by and "by" in str(exc) else f"alerts[{i}].query"
            raise ConfigError(key, str(exc), "try the query with `kpibot ask` first") from None
        if query.grain or query.dimension:
            raise ConfigError(
                f"alerts[{i}].query",
                "an alert query has no 'by …'",
                "use the `by` key to split an alert",
            )
        if rule.repeat_every != "0" and parse_duration(rule.repeat_every) is None:
            raise ConfigError(
                f"alerts[{i}].repeat_every",
                f"{rule.repeat_every!r} is not a duration",
                "use e.g. '4h', '30m' or '0'",
            )
        for j, window in enumerate(rule.mute):
            try:
                in_mute_window(window, datetime.now(UTC))
            except ValueError as exc:
                raise ConfigError(
                    f"alerts[{i}].mute[{j}]", str(exc), "use e.g. 'sat-sun'"
                ) from None


@dataclass(frozen=True)
class Answer:
    query: Query
    kpi: KPI
    result: Result
    reply: Reply
    fresh: tuple[SourceFreshness, ...] = ()  # the sources behind it, read with the answer


class KpiService:
    """Answers KPI questions against one warehouse. Thread-safe; methods are synchronous,
    :meth:`handle` runs them off the event loop."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        charts: bool = True,
        stream_tables: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.charts = charts
        self.ctx = metric_context(settings)
        self.permissions = Permissions(settings.config.permissions)
        self.stream_tables = dict(stream_tables or {})
        # (rule, duration or None to unmute, who) -> what to say; set by the alert engine
        self.mute_handler: Callable[[str, timedelta | None, str], str] | None = None
        self.alerts_handler: Callable[[], list[str]] | None = None

    # -- the core: a query to a Result and a Reply -----------------------------------------

    def ask(
        self,
        text: str | Query,
        *,
        now: datetime | None = None,
        chart: bool | None = None,
        compare: bool = False,
    ) -> Answer:
        """Parse and evaluate ``text``; raises :class:`QueryError` on bad input.

        ``compare`` adds "vs previous" when the query has no comparison (chat answers always
        show one). A chart of a single figure is drawn over time: the same query with a
        grain that suits the window's length.
        """
        query = parse_query(text) if isinstance(text, str) else text
        kpi = get_kpi(query.kpi)
        if compare and query.comparison is None and query.ranking is None:
            query = replace(query, comparison="previous")
        now = now or self.clock()
        want_chart = self.charts if chart is None else chart
        with self.engine.connect() as conn:
            result = drawn = None
            if want_chart and _chartable_over_time(query, kpi):
                # A grained evaluation carries the window's total too, so the figure comes
                # from the same pass as its chart: evaluating both doubled the SQL (MRR vs
                # previous on 100k subscriptions: ~300 ms more per answer).
                window = resolve(query.window or DEFAULT_WINDOW, self.ctx.timezone, now)
                grain = auto_grain(window.end - window.start)
                try:
                    drawn = evaluate(conn, replace(query, grain=grain), self.ctx, now=now)
                    result = replace(drawn, grain=None, series=(), previous_series=())
                except QueryError:  # e.g. too many buckets: answer without the time chart
                    pass
            if result is None:
                result = evaluate(conn, query, self.ctx, now=now)
            fresh = self.freshness_for(conn, kpi, now)
        rendered = self._chart(drawn or result) if want_chart else None
        reply = result_reply(result, kpi, fresh, rendered, now=now)
        return Answer(query, kpi, result, reply, tuple(fresh))

    def reply_for(self, request: CommandRequest, *, now: datetime | None = None) -> Reply:
        """Everything ``/kpi`` can say, as a Reply; never raises for user input."""
        text = " ".join(request.text.split())
        words = text.lower().split()
        if not words or words[0] in ("help", "?", "-h", "--help"):
            topic = " ".join(words[1:]) or None
            return self._help(topic)
        if words == ["list"]:
            return Reply(title="KPIs you can ask for", kind="help", text=kpi_list(), ephemeral=True)
        if words == ["alerts"]:
            lines = self.alerts_handler() if self.alerts_handler is not None else []
            body = "\n".join(lines) or "No alert rules are configured ([[alerts]] in the config)."
            return Reply(title="Alert rules", kind="help", text=body, ephemeral=True)
        if words[0] == "mute":
            return self._mute(words[1:], request)
        here = words[-1] == "here"
        if here:
            text = text.rsplit(" ", 1)[0]
        try:
            query = parse_query(text)
            kpi = get_kpi(query.kpi)
            if not self.permissions.allows(request.channel_id, kpi.name, kpi.aliases, kpi.sources):
                return Reply(
                    title=f"{kpi.title} is not shown in this channel",
                    kind="refusal",
                    text=(
                        "This channel's kpibot permissions do not include it. Ask in a channel "
                        "that allows it, or ask an admin to change [permissions] in the config."
                    ),
                    ephemeral=True,
                )
            answer = self.ask(query, now=now, compare=True)
        except QueryError as exc:
            return error_reply(exc)
        except Exception:  # a bug or a database outage: say so briefly, log the details
            log.exception("failed to answer /kpi %r", text)
            return Reply(
                title="Sorry, that failed on our side",
                kind="error",
                text="The error has been logged. Try again in a minute.",
                ephemeral=True,
            )
        ephemeral = not here and self.settings.config.bot.answers == "ephemeral"
        return _replace(answer.reply, ephemeral=ephemeral)

    async def handle(self, request: CommandRequest) -> Reply:
        """The CommandHandler platforms call: the work runs in a thread, off the loop."""
        return await asyncio.to_thread(self.reply_for, request)

    # -- pieces ------------------------------------------------------------------------------

    def _help(self, topic: str | None) -> Reply:
        try:
            body = help_text(topic)
        except QueryError as exc:
            return error_reply(exc)
        title = "How to ask kpibot" if topic is None else f"/kpi help {topic}"
        if topic is None:
            body += "\n\n" + BOT_COMMANDS_HELP
        return Reply(title=title, kind="help", text=body, ephemeral=True)

    def _mute(self, words: list[str], request: CommandRequest) -> Reply:
        usage = (
            "Usage: /kpi mute <alert rule> <duration>, e.g. /kpi mute frt-p90-high 2h; "
            "/kpi mute <alert rule> off lifts it"
        )
        if self.mute_handler is None or len(words) != 2:
            return Reply(title="Mute an alert", kind="help", text=usage, ephemeral=True)
        duration = None if words[1] == "off" else parse_duration(words[1])
        if duration is None and words[1] != "off":
            return Reply(
                title="Mute an alert",
                kind="error",
                text=f"{words[1]!r} is not a duration like 30m, 2h or 1d. {usage}",
                ephemeral=True,
            )
        try:
            text = self.mute_handler(words[0], duration, request.user_name or request.user_id)
        except KeyError as exc:
            return Reply(title="Mute an alert", kind="error", text=str(exc.args[0]), ephemeral=True)
        title = "Alert unmuted" if duration is None else "Alert muted"
        return Reply(title=title, kind="answer", text=text, ephemeral=False)

    def freshness_for(self, conn: Connection, kpi: KPI, now: datetime) -> list[SourceFreshness]:
        sources = self.settings.config.sources
        stale_after = {
            name: timedelta(minutes=getattr(sources, name).stale_after_minutes)
            for name in type(sources).model_fields
        }
        return freshness(
            conn,
            tables=kpi.sources,
            stream_tables=self.stream_tables,
            stale_after=stale_after,
            now=now,
        )

    def _chart(self, result: Result) -> Chart | None:
        try:
            from bot import charts
        except ImportError:  # pragma: no cover - charts ship with the bot
            return None
        try:
            return charts.render(result)
        except Exception:  # a chart must never cost the answer
            log.exception("chart rendering failed for %s", result.kpi)
            return None


# -- wording ---------------------------------------------------------------------------------


def result_reply(
    result: Result,
    kpi: KPI,
    fresh: list[SourceFreshness],
    chart: Chart | None,
    *,
    now: datetime,
) -> Reply:
    tz = ZoneInfo(result.timezone)
    title = result.title
    headline = headline_text(result)
    fields = list(detail_fields(result, measure_unit=kpi.unit_for(result.unit)))
    stale = [f for f in fresh if f.stale]
    context = [f"{fmt.window(result.start, result.end, tz)}"]
    if fresh:
        context.append(" · ".join(f.describe(now) for f in fresh))
    if stale and result.value is not None:
        context.append("⚠ Some data behind this figure is stale: it may be incomplete.")
    excluded = result.extra.get("excluded_currencies")
    if isinstance(excluded, Mapping) and excluded:
        left_out = ", ".join(f"{n:,} in {code}" for code, n in sorted(excluded.items()))
        context.append(
            f"⚠ Not included: customers billed in another currency ({left_out}); "
            "figures count the reporting currency only ([team] currency)."
        )
    text = series_text(result) or None
    return Reply(
        title=title,
        kind="answer",
        headline=headline,
        comparison=fmt.comparison(result),
        tone=fmt.tone(result),
        fields=tuple(fields),
        text=text,
        context=tuple(context),
        chart=chart,
    )


def headline_text(result: Result) -> str:
    if result.value is None:
        return "No data in this window"
    text = fmt.figure(result, result.value)
    moe = result.extra.get("margin_of_error")
    if isinstance(moe, int | float):
        text += f" ±{moe:.0f}" if result.unit == "score" else f" ±{moe:.1f}"
    label = result.statistic if result.statistic and result.statistic != "count" else None
    suffix = f" ({label}, n={result.n:,})" if label else f" (n={result.n:,})"
    return text + suffix


_EXTRA_LABELS = {
    "awaiting": ("Awaiting first reply", "count"),
    "p90": ("p90", None),
    "median": ("Median", None),
    "mean": ("Mean", None),
}


def detail_fields(result: Result, *, measure_unit: str | None = None) -> list[Field]:
    """Per-KPI detail beside the headline. ``measure_unit`` is the unit of the KPI's own
    measure (minutes for frt), which differs from ``result.unit`` for a count statistic."""
    extra = result.extra
    measure = measure_unit or result.unit
    out: list[Field] = []
    if result.kpi == "nps" and result.n:
        for key, label in (
            ("promoters", "Promoters"),
            ("passives", "Passives"),
            ("detractors", "Detractors"),
        ):
            count = extra.get(key)
            if isinstance(count, int | float):
                out.append(Field(label, f"{100 * count / result.n:.0f}% ({count:,.0f})"))
    for key, (label, unit) in _EXTRA_LABELS.items():
        v = extra.get(key)
        if isinstance(v, int | float) and key != result.statistic:
            out.append(Field(label, fmt.value(v, unit or measure)))
    for key in ("new", "expansion", "reactivation", "contraction", "churn", "net_new"):
        v = extra.get(key)
        if isinstance(v, int | float) and result.kpi.startswith("mrr_movements"):
            out.append(Field(key.replace("_", " ").capitalize(), fmt.value(v, result.unit)))
    return out


def series_text(result: Result) -> str:
    if not result.series:
        return ""
    points = result.series
    lines = []
    shown = points if len(points) <= MAX_SERIES_LINES else points[-MAX_SERIES_LINES:]
    width = max(len(p.key) for p in shown)
    if len(points) > len(shown):
        lines.append(f"… {len(points) - len(shown)} earlier buckets in the chart")
    for p in shown:
        lines.append(f"{p.key.ljust(width)}  {fmt.value(p.value, result.unit)}  (n={p.n:,})")
    return "\n".join(lines)


def error_reply(exc: QueryError) -> Reply:
    message = getattr(exc, "message", None) or str(exc)
    suggestion = getattr(exc, "suggestion", None)
    text = message
    # Quoted, as the parser quotes words: "nps" is inside “npss” but was not said there.
    if suggestion and f"“{suggestion}”" not in message:
        text += f"\nDid you mean “{suggestion}”?"
    text += "\nTry `/kpi nps last 30d`, `/kpi list` or `/kpi help`."
    return Reply(title="I could not read that query", kind="error", text=text, ephemeral=True)


# "30m", "2h", "1d", "1h30m"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: str) -> timedelta | None:
    match = _DURATION.match(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    d, h, m = (int(g) if g else 0 for g in match.groups())
    total = timedelta(days=d, hours=h, minutes=m)
    return total if total > timedelta(0) else None


BOT_COMMANDS_HELP = """Also:
  /kpi nps last 30d here        post the answer in the channel, not only to you
  /kpi list                     every KPI, one line each
  /kpi help <kpi>               what a KPI means, its statistics and dimensions
  /kpi alerts                   every alert rule and its state
  /kpi mute <rule> 2h | off     hold an alert's notifications, or lift the mute"""


def auto_grain(length: timedelta) -> str:
    """Day buckets up to ~2 months, weeks up to ~8 months, months beyond."""
    if length <= timedelta(days=62):
        return "day"
    if length <= timedelta(days=250):
        return "week"
    return "month"


def _chartable_over_time(query: Query, kpi: KPI) -> bool:
    """A single figure (no series of its own) that can be drawn as a series over time."""
    return (
        query.grain is None
        and query.dimension is None
        and query.ranking is None
        and kpi.default_grain is None
        and bool(kpi.grains)
    )


def _replace(reply: Reply, **changes: object) -> Reply:
    return replace(reply, **changes)  # type: ignore[arg-type]


__all__ = ["Answer", "KpiService", "Tone", "error_reply", "metric_context", "result_reply"]

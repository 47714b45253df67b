"""The morning digest: each KPI with its change, a sparkline grid, movers and freshness.

What a reader can trust in it:

* every KPI in the digest's list, over its window, against the window before: value, an
  arrow and a colour that follow the KPI's direction (down is good for response times);
* a KPI fed by a stale source is marked "⚠ stale" without an arrow, and a KPI without data
  reads "no data" — never 0;
* the freshness of each source behind the figures ("Demo synced 4 min ago");
* the top movers — the customers with the largest MRR changes in the window, when the list
  holds a revenue KPI — and the newest NPS detractor comments, when it holds a satisfaction
  KPI; each only in a channel allowed to see that kind of data;
* when sent late (kpibot was down at the scheduled time), how late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import format as fmt
from bot.commands import KpiService
from bot.delivery import split_target
from bot.freshness import SourceFreshness
from bot.permissions import kpi_groups
from bot.replies import Chart, Field, Reply, Tone
from bot.settings import DigestConfig
from metrics import KPI, QueryError, Result, get_kpi

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestLine:
    kpi: KPI
    result: Result | None
    stale: bool
    error: str | None = None


def build_digest(
    service: KpiService,
    digest: DigestConfig,
    *,
    now: datetime,
    late_by: timedelta | None = None,
    scheduled: datetime | None = None,
    chart: bool = True,
) -> Reply:
    """The digest as a Reply. A KPI whose sources are stale is marked, never shown as 0."""
    channel = split_target(digest.channel)[1]
    lines: list[DigestLine] = []
    sources: dict[str, SourceFreshness] = {}
    for name in digest.kpis:
        kpi = get_kpi(name)
        if not service.permissions.allows(channel, kpi.name, kpi.aliases, kpi.sources):
            log.warning(
                "digest %s: %s is not allowed in %s: left out", digest.name, kpi.name, channel
            )
            continue
        result, stale, error = _evaluate(service, kpi, digest.window, now, sources)
        lines.append(DigestLine(kpi, result, stale, error))

    fields = [_field(line) for line in lines]
    team = service.settings.config.team
    title = f"{team.name} · {digest.name.replace('_', ' ').title()} digest"
    context: list[str] = []
    first = next((line.result for line in lines if line.result), None)
    if first is not None:
        context.append(
            f"{digest.window}, vs the period before · "
            + fmt.window(first.start, first.end, team.tz)
        )
    if sources:
        context.append(" · ".join(s.describe(now) for s in sources.values()))
    text_lines = []
    if late_by is not None and late_by > timedelta(minutes=1):
        at = f" at {scheduled.astimezone(team.tz):%H:%M}" if scheduled is not None else ""
        text_lines.append(
            f"⏰ Sent {fmt.duration(late_by.total_seconds() / 60)} late: kpibot was not "
            f"running{at}, the scheduled time."
        )
    stale_sources = [s.source.capitalize() for s in sources.values() if s.stale]
    if any(line.stale for line in lines):
        text_lines.append(
            f"⚠ {', '.join(stale_sources) or 'A source'} has not synced recently: figures "
            "marked stale may be incomplete."
        )
    if first is not None:
        text_lines.extend(_movers(service, digest, lines, channel, first.start, first.end))
    rendered = (
        _grid([line.result for line in lines if line.result is not None and not line.stale], title)
        if chart
        else None
    )
    return Reply(
        title=title,
        kind="digest",
        fields=tuple(fields),
        text="\n".join(text_lines) or None,
        context=tuple(context),
        chart=rendered,
    )


def _evaluate(
    service: KpiService,
    kpi: KPI,
    window: str,
    now: datetime,
    sources: dict[str, SourceFreshness],
) -> tuple[Result | None, bool, str | None]:
    grain = "" if not kpi.grains else " by day"
    error = None
    for text in (f"{kpi.name} {window}{grain} vs previous", f"{kpi.name} {window} vs previous"):
        try:
            answer = service.ask(text, now=now, chart=False)
        except QueryError as exc:
            error = str(exc)
            continue
        for f in answer.fresh:
            sources.setdefault(f.source, f)
        return answer.result, any(f.stale for f in answer.fresh), None
    log.warning("digest: %s could not be evaluated: %s", kpi.name, error)
    return None, False, error


def _field(line: DigestLine) -> Field:
    label = line.kpi.title
    result = line.result
    if result is None:
        return Field(label, "unavailable", Tone.NEUTRAL)
    if result.value is None:
        return Field(label, "no data", Tone.NEUTRAL)
    value = fmt.figure(result, result.value)
    if line.stale:
        return Field(f"{label} ⚠ stale", value, Tone.NEUTRAL)
    delta = fmt.shown_change(result)
    if delta is not None and not fmt.unchanged(delta, result.unit):
        arrow = "▲" if delta > 0 else "▼"
        value += f"  {arrow} {fmt.change_of(result)}"
    elif delta is not None:
        value += "  = unchanged"
    return Field(label, value, fmt.tone(result))


def _movers(
    service: KpiService,
    digest: DigestConfig,
    lines: list[DigestLine],
    channel: str,
    start: datetime,
    end: datetime,
) -> list[str]:
    """Top MRR movers and new detractor comments: who moved the figures, and what they said."""
    from metrics.movers import detractor_comments, mrr_movers

    groups = set().union(*(kpi_groups(line.kpi.sources) for line in lines)) if lines else set()
    permissions = service.permissions
    out: list[str] = []
    currency = service.ctx.currency
    with service.engine.connect() as conn:
        if digest.movers and "revenue" in groups and _allowed(permissions, channel, "revenue"):
            movers = mrr_movers(conn, start=start, end=end, currency=currency, limit=digest.movers)
            if movers:
                out.append("Top MRR movers:")
                for m in movers:
                    sign = "+" if m.change > 0 else "−"
                    how = m.kind
                    if m.kind in ("expansion", "contraction"):
                        how += f", {fmt.money(m.before, currency)} → {fmt.money(m.after, currency)}"
                    out.append(
                        f"  {m.name or m.customer_id}: "
                        f"{sign}{fmt.money(abs(m.change), currency)} ({how})"
                    )
        if (
            digest.detractor_comments
            and "satisfaction" in groups
            and _allowed(permissions, channel, "satisfaction")
        ):
            comments = detractor_comments(
                conn, start=start, end=end, limit=digest.detractor_comments
            )
            if comments:
                out.append("New detractor comments:")
                out.extend(f"  “{c.comment}” — NPS {c.score:.0f}" for c in comments)
    return out


def _allowed(permissions, channel: str, group: str) -> bool:  # type: ignore[no-untyped-def]
    tables = {"revenue": ("subscription_periods",), "satisfaction": ("survey_responses",)}[group]
    return bool(permissions.allows(channel, group, (), tables))


def _grid(results: list[Result], title: str) -> Chart | None:
    if not results:
        return None
    try:
        from bot import charts
    except ImportError:  # pragma: no cover
        return None
    try:
        return charts.sparkline_grid(results, title=title)
    except Exception:
        log.exception("digest chart failed")
        return None

"""The morning digest: each KPI with its change, a sparkline grid, movers and freshness."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import format as fmt
from bot.commands import KpiService
from bot.freshness import SourceFreshness
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
    chart: bool = True,
) -> Reply:
    """The digest as a Reply. A KPI whose sources are stale is marked, never shown as 0."""
    lines: list[DigestLine] = []
    sources: dict[str, SourceFreshness] = {}
    for name in digest.kpis:
        kpi = get_kpi(name)
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
        text_lines.append(
            f"⏰ Sent {fmt.duration(late_by.total_seconds() / 60)} late: kpibot was down at the scheduled time."
        )
    if any(line.stale for line in lines):
        text_lines.append("⚠ Figures marked stale come from a source that has not synced recently.")
    movers = _movers(service, now, digest.window)
    text_lines.extend(movers)
    rendered = (
        _grid([line.result for line in lines if line.result is not None], title) if chart else None
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
    for text in (f"{kpi.name} {window}{grain} vs previous", f"{kpi.name} {window} vs previous"):
        try:
            answer = service.ask(text, now=now, chart=False)
        except QueryError as exc:
            error = str(exc)
            continue
        with service.engine.connect() as conn:
            fresh = service.freshness_for(conn, kpi, now)
        for f in fresh:
            sources.setdefault(f.source, f)
        return answer.result, any(f.stale for f in fresh), None
    log.warning("digest: %s could not be evaluated: %s", kpi.name, error)
    return None, False, error


def _field(line: DigestLine) -> Field:
    label = line.kpi.title
    result = line.result
    if result is None:
        return Field(label, "unavailable", Tone.NEUTRAL)
    if line.stale:
        shown = fmt.value(result.value, result.unit) if result.value is not None else "no data"
        return Field(f"{label} ⚠ stale", shown, Tone.NEUTRAL)
    value = fmt.value(result.value, result.unit)
    if result.kpi == "nps" and result.value is not None and result.value > 0:
        value = "+" + value
    delta = result.change
    if delta is not None and not fmt.unchanged(delta, result.unit):
        arrow = "▲" if delta > 0 else "▼"
        value += f"  {arrow} {fmt.change(delta, result.unit)}"
    elif delta is not None:
        value += "  = unchanged"
    return Field(label, value, fmt.tone(result))


def _movers(service: KpiService, now: datetime, window: str) -> list[str]:
    """New detractor comments: what people said, not only how many."""
    try:
        from metrics.movers import detractor_comments
    except ImportError:
        return []
    with service.engine.connect() as conn:
        comments = detractor_comments(conn, end=now, days=7, limit=3)
    if not comments:
        return []
    out = ["New detractor comments:"]
    out.extend(f"  “{c.comment}” — NPS {c.score:.0f}" for c in comments)
    return out


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

"""``kpibot demo``: the whole job once, on synthetic data, offline.

Sync the demo source through the real runner, print the morning digest, the alerts that
fire, and an answer to ``/kpi nps last 30d`` — what a team would see in its channel.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine, delete, distinct, select

from bot.alerts import AlertEngine
from bot.commands import KpiService
from bot.digests import build_digest
from bot.platforms.base import CommandRequest
from bot.platforms.console import ConsolePlatform
from bot.settings import AlertConfig, DigestConfig, Settings
from bot.sources import refresh, stream_tables
from bot.state import AlertState, Delivery, Mute
from integrations.demo import DemoConnector
from integrations.progress import RichProgress
from integrations.runner import SyncRunner
from metrics import KPIS
from metrics.schema import SyncCursor

# Used when the config file has no rules of its own: the demo's storyline trips them.
DEMO_ALERTS = (
    AlertConfig(
        name="frt-median-above-4h", query="frt last 7d", channel="console:main", above=240, min_n=20
    ),
    AlertConfig(
        name="nps-down-10-wow", query="nps last 7d", channel="console:main", drops_by=10, min_n=20
    ),
    AlertConfig(
        name="csat-down-5-wow", query="csat last 7d", channel="console:main", drops_by=5, min_n=20
    ),
)
_DEMO_KPIS = ("nps", "csat", "ces", "frt", "ttr", "fcr", "tickets", "backlog", "mrr", "churn")


def demo_digest() -> DigestConfig:
    known = {k.name for k in KPIS} | {a for k in KPIS for a in k.aliases}
    kpis = [k for k in _DEMO_KPIS if k in known]
    return DigestConfig(name="morning", channel="console:main", kpis=kpis)


class NotADemoDatabase(Exception):
    pass


def run_demo(
    settings: Settings,
    engine: Engine,
    *,
    seed: int,
    now: datetime | None,
    chart_dir: Path,
    console: Console,
) -> int:
    started = time.perf_counter()
    pinned = f" --as-of {now.isoformat()}" if now is not None else ""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        others = [
            s for s in conn.execute(select(distinct(SyncCursor.source))).scalars() if s != "demo"
        ]
    if others:
        console.print(
            f"[red]This database holds real data ({', '.join(others)}): the demo will not write "
            "into it.[/red] Run it elsewhere, e.g. KPIBOT_DATABASE_URL=sqlite:///demo.db kpibot demo"
        )
        return 3
    with engine.begin() as conn:  # a demo run starts with a clean slate of bot state
        for table in (Delivery, AlertState, Mute):
            conn.execute(delete(table))

    console.rule("[bold]1. Sync[/bold] the synthetic demo source")
    connector = DemoConnector(seed=seed, end=now)
    with RichProgress(console=console) as progress:
        SyncRunner(engine, clock=lambda: now, observer=progress).sync(connector)
    refresh(engine)

    service = KpiService(engine, settings, clock=lambda: now, stream_tables=stream_tables())
    platform = ConsolePlatform(chart_dir=chart_dir, out=console.file)  # type: ignore[arg-type]

    console.rule("[bold]2. The morning digest[/bold]")
    digests = [d for d in settings.config.digests if d.name != "morning"] or [demo_digest()]
    for digest in digests:
        platform.show(build_digest(service, digest, now=now))

    console.rule("[bold]3. Alerts[/bold] that fire on this data")
    rules = settings.config.alerts or list(DEMO_ALERTS)
    alerts = AlertEngine(service, rules)
    outcomes = alerts.check(now, persist=False)
    fired = 0
    for outcome in outcomes:
        for notice in outcome.notices:
            fired += 1
            platform.show(notice.reply)
    for outcome in outcomes:
        if not outcome.notices:
            console.print(f"  [dim]{outcome.rule}: {outcome.status}[/dim]")

    console.rule("[bold]4. /kpi nps last 30d[/bold]")
    request = CommandRequest(text="nps last 30d", platform="console", channel_id="main")
    platform.show(service.reply_for(request, now=now))

    console.rule()
    console.print(
        f"Done in {time.perf_counter() - started:.1f} s: {fired} alert(s) fired, charts in "
        f'[bold]{chart_dir}/[/bold]. Ask more with [bold]kpibot ask "frt p90 last 14d by day"'
        f"{pinned}[/bold], or chat with [bold]kpibot run[/bold]."
    )
    return 0

"""The ``kpibot`` command line (DESIGN.md, Contracts).

Exit status: 0 on success; 2 on a query or usage error (message on stderr); 3 when the
configuration or the database is not ready (the message names the key or the command that
fixes it); 1 on anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bot.errors import ConfigError, DatabaseNotReady
from bot.settings import Settings, load_settings, parse_instant, secret_values

if TYPE_CHECKING:
    from bot.alerts import CheckOutcome
    from bot.delivery import Posted

EXIT_QUERY = 2
EXIT_NOT_READY = 3

app = typer.Typer(
    name="kpibot",
    help="Customer KPIs from your helpdesk, billing and surveys, in Slack, Discord or the terminal.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Pin 'now' (ISO 8601, e.g. 2026-11-01T00:00:00Z) so that figures are reproducible.",
    ),
]


def _fail(code: int, message: str) -> NoReturn:
    err.print(f"[bold red]kpibot:[/bold red] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _settings(*, quiet: bool = True) -> Settings:
    """Load settings or exit naming the key. One-shot commands log warnings only unless
    KPIBOT_LOG_LEVEL says otherwise; the long-running ones log at INFO."""
    import os

    from bot.commands import validate_config

    try:
        settings = load_settings()
        validate_config(settings)
    except ConfigError as exc:
        _fail(EXIT_NOT_READY, f"configuration error: {exc}")
    from bot.logs import setup_logging

    level = settings.log_level
    if quiet and "KPIBOT_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    setup_logging(level, secret_values())
    return settings


def _engine(settings: Settings, *, migrate: bool = False):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from bot.db import ensure_migrated, make_engine, upgrade

    engine = make_engine(settings.database_url)
    try:
        if migrate:
            upgrade(engine)
        else:
            ensure_migrated(engine)
    except DatabaseNotReady as exc:
        _fail(EXIT_NOT_READY, str(exc))
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        _fail(
            EXIT_NOT_READY,
            f"cannot open the database at {where}: {reason}. Check KPIBOT_DATABASE_URL.",
        )
    return engine


def _now(as_of: str | None) -> datetime | None:
    if as_of is None:
        return None
    try:
        return parse_instant(as_of)
    except ValueError:
        _fail(EXIT_QUERY, f"--as-of {as_of!r} is not an ISO 8601 time like 2026-11-01T00:00:00Z")


def _app(settings: Settings, engine, now: datetime | None = None, platforms=None):  # type: ignore[no-untyped-def]
    from bot.runtime import BotApp, utcnow

    clock = (lambda: now) if now is not None else utcnow
    return BotApp(settings, engine, clock=clock, platforms=dict(platforms or {}))


def _require_platforms(settings: Settings, targets: dict[str, str]) -> None:
    """--post means post: a target whose platform has no credentials is an error, not a
    console preview that would look like a success."""
    from bot.delivery import split_target
    from bot.settings import PLATFORM_ENV

    for key, target in targets.items():
        platform, _ = split_target(target)
        if platform != "console" and platform not in settings.platforms:
            needed = ", ".join(PLATFORM_ENV.get(platform, ((f"{platform.upper()}_…",), ()))[0])
            _fail(
                EXIT_NOT_READY,
                f"{key} posts to {target}, but {platform} is not configured: set {needed}",
            )


async def _stop(platforms: dict[str, Any]) -> None:
    for platform in platforms.values():
        with contextlib.suppress(Exception):
            await platform.stop()


# -- commands ------------------------------------------------------------------------------


@app.command()
def demo(
    seed: Annotated[
        int, typer.Option(help="Seed of the synthetic data: same seed, same data.")
    ] = 42,
    as_of: AsOf = None,
    chart_dir: Annotated[Path, typer.Option(help="Where chart PNGs are written.")] = Path(
        "kpibot-charts"
    ),
) -> None:
    """Run the whole job once on synthetic data, offline: sync, digest, alerts, a /kpi answer.

    Creates (or reuses) the SQLite database in the working directory unless
    KPIBOT_DATABASE_URL says otherwise.

    Example: [bold]kpibot demo --seed 7[/bold]
    """
    from bot.demo import run_demo

    settings = _settings()
    now = _now(as_of)
    engine = _engine(settings, migrate=True)
    code = run_demo(settings, engine, seed=seed, now=now, chart_dir=chart_dir, console=out)
    raise typer.Exit(code)


@app.command()
def run() -> None:
    """Start the bot: chat platforms, scheduled syncs, digests and alert checks.

    Without a Slack or Discord token it runs on the console: type [bold]/kpi csat last 7d[/bold]
    and press Enter. Ctrl-C stops it.

    Example: [bold]kpibot run[/bold]
    """
    from bot.runtime import build_platforms

    settings = _settings(quiet=False)
    engine = _engine(settings)
    try:
        platforms = build_platforms(settings)
    except ConfigError as exc:
        _fail(EXIT_NOT_READY, f"configuration error: {exc}")
    bot = _app(settings, engine, platforms=platforms)
    logging.getLogger(__name__).info(
        "kpibot starting on %s with %s",
        ", ".join(platforms),
        engine.url.render_as_string(hide_password=True),
    )
    # The signal handler normally sees Ctrl-C first; this covers a second one.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bot.run())


@app.command()
def sync(
    source: Annotated[str | None, typer.Option(help="Only this source (e.g. zendesk).")] = None,
    full: Annotated[
        bool, typer.Option(help="Ignore saved cursors and re-read everything.")
    ] = False,
    since: Annotated[str | None, typer.Option(help="Start from this date (ISO 8601).")] = None,
) -> None:
    """Sync the configured sources now, with a progress bar per stream and a summary.

    Exits 1 when a stream failed (the others still ran).

    Example: [bold]kpibot sync --source zendesk --since 2026-10-01[/bold]
    """
    from bot.sources import active_sources, sync_and_refresh
    from integrations.progress import RichProgress

    settings = _settings(quiet=False)
    engine = _engine(settings)
    start = _now(since) if since else None
    enabled = active_sources(engine, settings)
    if source is not None and source not in enabled:
        known = ", ".join(enabled) or "none"
        _fail(EXIT_QUERY, f"source {source!r} is not configured. Configured: {known} (README)")
    with RichProgress(console=out) as progress:
        reports = sync_and_refresh(
            engine,
            settings,
            sources=[source] if source else None,
            full=full,
            since=start,
            observer=progress,
        )
    raise typer.Exit(1 if any(r.error for r in reports) else 0)


import_app = typer.Typer(
    help="Import survey responses or product events from CSV files.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


def _import(kind: str, path: Path, dry_run: bool, skip_invalid: bool) -> None:
    from integrations.csv_import import import_events, import_surveys

    settings = _settings()
    engine = _engine(settings)
    run = import_surveys if kind == "surveys" else import_events
    report = run(engine, path, dry_run=dry_run, skip_invalid=skip_invalid, timezone=settings.tz)
    for error in report.errors[:50]:
        err.print(f"{path}:{error.line}: {escape(error.message)}", markup=False)
    if len(report.errors) > 50:
        err.print(f"… and {len(report.errors) - 50} more errors")
    out.print(report.summary())
    raise typer.Exit(0 if report.ok or skip_invalid else EXIT_QUERY)


@import_app.command("surveys")
def import_surveys_command(
    path: Annotated[Path, typer.Argument(help="CSV with survey responses.", exists=True)],
    dry_run: Annotated[bool, typer.Option(help="Check every line, write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid lines anyway.")] = False,
) -> None:
    """Import NPS, CSAT or CES answers from a CSV file (columns: see integrations/README.md).

    Re-importing the same file changes nothing. Errors are reported with their line number.

    Example: [bold]kpibot import surveys responses.csv --dry-run[/bold]
    """
    _import("surveys", path, dry_run, skip_invalid)


@import_app.command("events")
def import_events_command(
    path: Annotated[Path, typer.Argument(help="CSV with usage events.", exists=True)],
    dry_run: Annotated[bool, typer.Option(help="Check every line, write nothing.")] = False,
    skip_invalid: Annotated[bool, typer.Option(help="Import the valid lines anyway.")] = False,
) -> None:
    """Import product usage events from a CSV file (columns: see integrations/README.md).

    Example: [bold]kpibot import events events.csv[/bold]
    """
    _import("events", path, dry_run, skip_invalid)


@app.command()
def ask(
    query: Annotated[str, typer.Argument(help='A /kpi query, e.g. "nps last 30d".')],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (see README).")
    ] = False,
    chart: Annotated[Path | None, typer.Option(help="Write the chart PNG to this file.")] = None,
    as_of: AsOf = None,
) -> None:
    """Answer one KPI question, as /kpi would. "list" and "help [kpi]" explain what to ask.

    Examples:
      [bold]kpibot ask "nps last 30d"[/bold]
      [bold]kpibot ask "frt p90 this week by day" --chart frt.png[/bold]
      [bold]kpibot ask "mrr vs previous" --json --as-of 2026-11-01T00:00:00Z[/bold]
    """
    from metrics import QueryError

    words = query.lower().split()
    if words[:1] in (["list"], ["help"]):
        from metrics import help_text, kpi_list

        try:
            text = kpi_list() if words == ["list"] else help_text(" ".join(words[1:]) or None)
        except QueryError as exc:
            _fail(EXIT_QUERY, str(exc))
        out.print(text, markup=False, highlight=False)
        return
    if chart is not None and not chart.parent.is_dir():
        _fail(EXIT_QUERY, f"--chart {chart}: the folder {chart.parent} does not exist")
    settings = _settings()
    now = _now(as_of)
    engine = _engine(settings)
    bot = _app(settings, engine, now)
    try:
        answer = bot.service.ask(query, now=now, chart=chart is not None or not as_json)
    except QueryError as exc:
        from bot.commands import error_reply

        _fail(EXIT_QUERY, error_reply(exc).text or str(exc))
    if chart is not None and answer.reply.chart is not None:
        try:
            chart.write_bytes(answer.reply.chart.png)
        except OSError as exc:
            _fail(EXIT_QUERY, f"--chart {chart}: {exc.strerror or exc}")
    if as_json:
        sys.stdout.write(json.dumps(answer.result.to_json(), ensure_ascii=False) + "\n")
        return
    from bot.platforms.console import ConsolePlatform

    console = ConsolePlatform(chart_dir=settings.config.bot.chart_dir)
    reply = answer.reply
    if chart is not None:
        from dataclasses import replace

        reply = replace(reply, chart=None, context=(*reply.context, f"chart: {chart}"))
    console.show(reply)


@app.command()
def digest(
    name: Annotated[
        str | None, typer.Option(help="Which digest (default: all configured).")
    ] = None,
    post: Annotated[
        bool, typer.Option(help="Post it to its channel instead of previewing.")
    ] = False,
    as_of: AsOf = None,
) -> None:
    """Preview a digest in the terminal, or post it now with --post (once per period: the
    latest scheduled time; a digest already sent for it is not sent again).

    Example: [bold]kpibot digest --name morning[/bold]
    """
    from bot.digests import build_digest
    from bot.platforms.console import ConsolePlatform
    from bot.runtime import build_platforms

    settings = _settings()
    now = _now(as_of)
    engine = _engine(settings)
    digests = [d for d in settings.config.digests if name is None or d.name == name]
    if not digests:
        known = ", ".join(d.name for d in settings.config.digests) or "none"
        _fail(EXIT_QUERY, f"no digest named {name!r}. Configured: {known}")
    if post:
        _require_platforms(settings, {f"digests.{d.name}": d.channel for d in digests})
    bot = _app(settings, engine, now, platforms=build_platforms(settings) if post else None)
    when = now or bot.clock()
    if post:
        failed = False

        async def post_all() -> list[Posted]:
            try:
                return [await bot.post_digest_now(d) for d in digests]
            finally:
                await _stop(bot.platforms)

        for d, posted in zip(digests, asyncio.run(post_all()), strict=True):
            if not posted.claimed:
                said = (
                    "already posted for this period"
                    if posted.status in (None, "posted")
                    else f"already claimed for this period ({posted.status}: retried by the bot)"
                )
            elif posted.posted:
                said = "posted"
            else:
                failed = True
                said = f"not posted ({posted.status}; see the log)"
            out.print(f"{d.name} → {d.channel}: {said}")
        raise typer.Exit(1 if failed else 0)
    console = ConsolePlatform(chart_dir=settings.config.bot.chart_dir)
    for d in digests:
        console.show(build_digest(bot.service, d, now=when))


@app.command()
def alerts(
    post: Annotated[
        bool, typer.Option(help="Deliver what fires (once) instead of previewing.")
    ] = False,
    as_of: AsOf = None,
) -> None:
    """Check every alert rule once and show what would be sent; --post records the check
    and delivers the notifications (once).

    Example: [bold]kpibot alerts --as-of 2026-11-01T09:00:00Z[/bold]
    """
    from bot.platforms.console import ConsolePlatform
    from bot.runtime import build_platforms

    settings = _settings()
    now = _now(as_of)
    engine = _engine(settings)
    if not settings.config.alerts:
        out.print(
            "No alert rules configured: add [[alerts]] to the config (see config/kpibot.example.toml).",
            markup=False,
        )
        return
    if post:
        _require_platforms(
            settings, {f"alerts.{r.name}": r.channel for r in settings.config.alerts}
        )
    bot = _app(settings, engine, now, platforms=build_platforms(settings) if post else None)
    when = now or bot.clock()
    if post:

        async def check_and_post() -> list[CheckOutcome]:
            try:
                return await bot.alerts.run_once(bot.deliverer, when)
            finally:
                await _stop(bot.platforms)

        outcomes = asyncio.run(check_and_post())
    else:  # a dry run: the running bot's alert states are not touched
        outcomes = bot.alerts.check(when, persist=False)
        console = ConsolePlatform(chart_dir=settings.config.bot.chart_dir)
        for o in outcomes:
            for notice in o.notices:
                console.show(notice.reply)
    for o in outcomes:
        value = "no data" if o.value is None else f"{o.value:g}"
        out.print(
            f"{o.rule}{'/' + o.key if o.key else ''}: [bold]{o.status}[/bold] (value {value})"
        )


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT or 3000).")] = None,
) -> None:
    """Slack HTTP mode: Slack's requests at /slack/events, a health check at /healthz.

    Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET. The Procfile's web process.

    Example: [bold]PORT=3000 kpibot serve[/bold]
    """
    import os

    from bot.errors import PlatformError

    settings = _settings(quiet=False)
    engine = _engine(settings)
    listen = port or int(os.environ.get("PORT", "3000"))
    try:
        from bot.platforms.slack import SlackPlatform

        platform = SlackPlatform(settings, mode="http", port=listen)
    except ConfigError as exc:
        _fail(EXIT_NOT_READY, f"configuration error: {exc}")
    bot = _app(settings, engine)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await platform.start(bot.service.handle)
        logging.getLogger(__name__).info("listening on port %d: /slack/events, /healthz", listen)
        try:
            await stop.wait()
        finally:
            await platform.stop()

    try:
        asyncio.run(main())
    except PlatformError as exc:
        _fail(1, str(exc))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or upgrade it to this version's (safe to run on every release).

    Example: [bold]kpibot db upgrade[/bold]
    """
    from bot.db import make_engine, upgrade

    settings = _settings()
    engine = make_engine(settings.database_url)
    before, after = upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"{where} is up to date (migration {after}).")
    else:
        out.print(f"{where}: upgraded from {before or 'empty'} to {after}.")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration and whether it is up to date.

    Example: [bold]kpibot db current[/bold]
    """
    from bot.db import current_revision, head_revision, make_engine

    settings = _settings()
    engine = make_engine(settings.database_url)
    current, head = current_revision(engine), head_revision()
    state = "up to date" if current == head else "needs `kpibot db upgrade`"
    out.print(f"migration {current or 'none'} (this kpibot: {head}): {state}")
    if current != head:
        raise typer.Exit(EXIT_NOT_READY)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

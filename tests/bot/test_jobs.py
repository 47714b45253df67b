"""Which jobs the schedule holds for which configuration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from bot.runtime import BotApp
from bot.settings import load_settings


def test_each_enabled_source_syncs_on_its_interval_and_stripe_reconciles_nightly(
    sqlite_engine: Engine,
) -> None:
    settings = load_settings(
        {"STRIPE_API_KEY": "sk_test_abcdefgh", "STRIPE_BASE_URL": "http://127.0.0.1:9"}
    )
    app = BotApp(settings, sqlite_engine, clock=lambda: datetime(2026, 11, 24, tzinfo=UTC))
    jobs = {job.id: job for job in app.build_scheduler().get_jobs()}
    assert {"sync:stripe", "sync:stripe:full", "digest:morning"} <= set(jobs)
    assert "sync:demo" not in jobs  # a real source switches the demo off
    assert str(jobs["sync:stripe"].trigger.interval) == "1:00:00"


def test_without_sources_the_demo_syncs(sqlite_engine: Engine) -> None:
    app = BotApp(load_settings({}), sqlite_engine)
    ids = {job.id for job in app.build_scheduler().get_jobs()}
    assert "sync:demo" in ids and "sync:stripe:full" not in ids

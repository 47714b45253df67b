"""The terminal progress observer draws bars while syncing and leaves a summary table."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console
from sqlalchemy import Engine

from integrations.demo import DemoConnector
from integrations.progress import RichProgress
from integrations.runner import SyncRunner


def test_a_sync_ends_with_a_table_of_every_stream(sqlite_engine: Engine) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    connector = DemoConnector(seed=1, end=datetime(2026, 3, 1, tzinfo=UTC), page_size=20_000)
    with RichProgress(console) as progress:
        reports = SyncRunner(sqlite_engine, observer=progress).sync(
            connector, streams=["customers", "tickets"]
        )
    text = out.getvalue()
    assert [(r.stream, r.complete) for r in progress.reports] == [
        ("customers", True),
        ("tickets", True),
    ]
    assert "demo/tickets" in text and "demo/customers" in text
    assert f"{reports[1].records:,}" in text
    assert "ok" in text


def test_without_a_terminal_only_the_table_is_printed(sqlite_engine: Engine) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=160)
    connector = DemoConnector(seed=1, end=datetime(2026, 3, 1, tzinfo=UTC))
    with RichProgress(console) as progress:
        SyncRunner(sqlite_engine, observer=progress).sync(connector, streams=["customers"])
    text = out.getvalue()
    assert "records" in text and "demo/customers" in text
    assert "\x1b[" not in text

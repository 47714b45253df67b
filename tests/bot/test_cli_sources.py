"""`kpibot sync` and `kpibot import` as users run them, against a fake Zendesk on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.bot.test_cli import kpibot
from tests.fakes.zendesk import FakeZendesk

EMAIL, TOKEN = "ops@acme.example", "zd-secret-token-123456"


def test_sync_from_zendesk_then_ask_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    assert kpibot("db", "upgrade", cwd=tmp_path).returncode == 0
    now = datetime.now(UTC).replace(microsecond=0)
    with FakeZendesk(email=EMAIL, token=TOKEN) as zendesk:
        for i in range(1, 26):
            created = now - timedelta(days=i % 10, hours=3)
            zendesk.put_ticket(
                i,
                created_at=created,
                updated_at=created + timedelta(hours=2),
                status="solved" if i % 2 else "open",
                reply_minutes=(30 * i, 20 * i),
            )
        env = {
            "ZENDESK_SUBDOMAIN": "acme",
            "ZENDESK_EMAIL": EMAIL,
            "ZENDESK_API_TOKEN": TOKEN,
            "ZENDESK_BASE_URL": zendesk.url,
            "KPIBOT_LOG_LEVEL": "DEBUG",
        }
        first = kpibot("sync", cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert "zendesk/tickets" in first.stdout
        assert TOKEN not in first.stdout + first.stderr  # not even at DEBUG
        answer = json.loads(
            kpibot("ask", "tickets last 30d", "--json", cwd=tmp_path, env=env).stdout
        )
        assert answer["value"] == 25 and answer["n"] == 25
        again = kpibot("sync", "--source", "zendesk", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
    answer = json.loads(kpibot("ask", "tickets last 30d", "--json", cwd=tmp_path, env=env).stdout)
    assert answer["value"] == 25


def test_sync_of_an_unconfigured_source_says_which_are(tmp_path: Path) -> None:
    kpibot("db", "upgrade", cwd=tmp_path)
    done = kpibot("sync", "--source", "stripe", cwd=tmp_path)
    assert done.returncode == 2
    assert "not configured" in done.stderr and "demo" in done.stderr


def test_import_surveys_dry_run_reports_line_numbers_then_imports_once(tmp_path: Path) -> None:
    kpibot("db", "upgrade", cwd=tmp_path)
    good = tmp_path / "good.csv"
    good.write_text(
        "kind,score,responded_at,customer_id,comment\n"
        "nps,10,2026-11-02T10:00:00Z,c1,great\n"
        "nps,3,2026-11-03T10:00:00Z,c2,slow\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,score,responded_at\nnps,11,2026-11-02T10:00:00Z\n")
    refused = kpibot("import", "surveys", str(bad), cwd=tmp_path)
    assert refused.returncode == 2
    assert "bad.csv:2:" in refused.stderr
    dry = kpibot("import", "surveys", str(good), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    for _ in range(2):
        assert kpibot("import", "surveys", str(good), cwd=tmp_path).returncode == 0
    answer = json.loads(
        kpibot(
            "ask", "nps since 2026-11-01", "--json", "--as-of", "2026-11-10T00:00:00Z", cwd=tmp_path
        ).stdout
    )
    assert answer["n"] == 2 and answer["value"] == 0.0

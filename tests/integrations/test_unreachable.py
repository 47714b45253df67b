"""A source that cannot be reached is given up on within its 30 s, all its streams included.

The base URL points at a port nothing listens on (a mistyped ``STRIPE_BASE_URL``); the
connector runs on a fake clock, so the test costs no real waiting.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from sqlalchemy import Engine

from integrations.http import RetryPolicy
from integrations.runner import SyncRunner
from integrations.stripe import StripeConnector
from integrations.zendesk import ZendeskConnector
from tests.integrations.harness import FakeTime

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connections to it are refused


def test_every_stream_of_an_unreachable_source_fails_within_the_sources_budget(
    sqlite_engine: Engine,
) -> None:
    time = FakeTime()
    port = _closed_port()
    stripe = StripeConnector(
        api_key="sk_test_unreachable",
        base_url=f"http://127.0.0.1:{port}",
        sleep=time.sleep,
        monotonic=time.monotonic,
        clock=lambda: NOW,
    )
    runner = SyncRunner(sqlite_engine, clock=lambda: NOW)
    reports, requests = [], []
    try:
        for stream in stripe.streams:
            reports.append(runner.sync_stream(stripe, stream))
            requests.append(stripe.client.requests)
    finally:
        stripe.close()
    assert [r.stream for r in reports] == ["events", "customers", "subscriptions", "invoices"]
    assert time.now <= RetryPolicy().unreachable_budget  # the four streams together
    for report in reports:
        assert report.error is not None and not report.complete
        assert f"127.0.0.1:{port}" in report.error
        assert "check STRIPE_BASE_URL" in report.error
    # Only the first stream tried; the others failed at once, without a request.
    assert requests[0] > 1 and requests[1:] == [requests[0]] * 3
    assert reports[0].error == reports[0].error.strip() and "gave up after" in reports[0].error


def test_the_budget_of_one_source_is_not_spent_by_another(sqlite_engine: Engine) -> None:
    time = FakeTime()
    port = _closed_port()
    runner = SyncRunner(sqlite_engine, clock=lambda: NOW)
    spent: list[float] = []
    for _ in range(2):
        zendesk = ZendeskConnector(
            email="agent@example.com",
            api_token="zd-token",
            base_url=f"http://127.0.0.1:{port}",
            sleep=time.sleep,
            monotonic=time.monotonic,
            clock=lambda: NOW,
        )
        started = time.now
        try:
            reports = runner.sync(zendesk)
        finally:
            zendesk.close()
        spent.append(time.now - started)
        assert all("ZENDESK_BASE_URL" in (r.error or "") for r in reports)
    # A new run (a new connector) tries again, with the whole budget.
    assert spent[0] > 0 and spent[1] > 0

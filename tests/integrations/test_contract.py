"""The contract every connector keeps, run against each one's fake server.

Parametrized over :data:`tests.integrations.harness.HARNESSES`; a meta-test makes sure
every source in ``integrations.SOURCES`` (but the offline demo) has a harness here.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

import integrations
from integrations.base import Connector, MapResult, RawRecord, Stream
from integrations.http import RetryPolicy
from integrations.runner import CursorState, StreamReport, SyncRunner
from metrics.schema import SyncCursor
from tests.integrations.harness import HARNESSES, Harness


class Killed(BaseException):
    """The process dies: nothing catches it, nothing after it runs."""


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = HARNESSES[request.param]()
    h.fake.start()
    yield h
    h.fake.stop()


def sync(h: Harness, engine: Engine, **kwargs: Any) -> list[StreamReport]:
    connector = kwargs.pop("connector", None) or h.connector()
    observer = kwargs.pop("observer", None)
    runner = SyncRunner(engine)
    if observer is not None:
        runner.observer = observer
    try:
        return runner.sync(connector, **kwargs)
    finally:
        connector.close()


def assert_complete(reports: list[StreamReport]) -> None:
    for r in reports:
        assert r.error is None, f"{r.stream}: {r.error}"
        assert r.complete, r.stream


# -- paging, cursors, re-runs ----------------------------------------------------------------


def test_paging_ends_and_every_record_arrives(harness: Harness, engine: Engine) -> None:
    harness.seed(10)
    reports = sync(harness, engine)
    assert_complete(reports)
    assert harness.actual(engine) == harness.expected()
    # Small pages, so several of them per stream; bounded, so paging stopped by itself.
    assert sum(r.pages for r in reports) >= 4
    assert len(harness.fake.requests) < 60


def test_an_empty_source_syncs_to_an_empty_warehouse(
    harness: Harness, sqlite_engine: Engine
) -> None:
    assert_complete(sync(harness, sqlite_engine))
    assert all(not rows for rows in harness.actual(sqlite_engine).values())


def test_the_cursor_advances_to_the_newest_record_seen(
    harness: Harness, sqlite_engine: Engine
) -> None:
    harness.seed(8)
    assert_complete(sync(harness, sqlite_engine))
    with sqlite_engine.connect() as conn:
        saved = {
            row.stream: CursorState.load(row.cursor)
            for row in conn.execute(select(SyncCursor).where(SyncCursor.source == harness.name))
        }
    for stream, newest in harness.expected_cursors().items():
        assert saved[stream].since == newest, stream
        assert saved[stream].resume is None, stream  # the stream reached its end


def test_a_second_run_writes_nothing(harness: Harness, engine: Engine) -> None:
    harness.seed(10)
    assert_complete(sync(harness, engine))
    again = sync(harness, engine)
    assert_complete(again)
    assert [(r.stream, r.inserted, r.updated) for r in again] == [(r.stream, 0, 0) for r in again]
    assert harness.actual(engine) == harness.expected()


def test_changes_and_deletions_at_the_source_arrive(harness: Harness, engine: Engine) -> None:
    harness.seed(10)
    assert_complete(sync(harness, engine))
    harness.change()
    reports = sync(harness, engine)
    assert_complete(reports)
    assert harness.actual(engine) == harness.expected()
    assert sum(r.inserted + r.updated for r in reports) > 0


def test_a_full_sync_reconciles_everything(harness: Harness, sqlite_engine: Engine) -> None:
    harness.seed(6)
    assert_complete(sync(harness, sqlite_engine))
    harness.change()
    assert_complete(sync(harness, sqlite_engine, full=True))
    assert harness.actual(sqlite_engine) == harness.expected()


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["7", None], ids=["retry-after", "no-retry-after"])
def test_429_is_retried(harness: Harness, sqlite_engine: Engine, retry_after: str | None) -> None:
    harness.seed(8)
    harness.fake.fail("429", skip=1, times=2, retry_after=retry_after)
    reports = sync(harness, sqlite_engine)
    assert_complete(reports)
    assert harness.fake.faults_served == ["429", "429"]
    assert harness.actual(sqlite_engine) == harness.expected()
    if retry_after:
        assert sum(1 for s in harness.time.slept if s >= 7) >= 2


@pytest.mark.parametrize("kind", ["500", "502", "503", "garbage", "truncated_json", "cut", "empty"])
def test_server_errors_and_broken_pages_are_survived(
    harness: Harness, sqlite_engine: Engine, kind: str
) -> None:
    harness.seed(8)
    harness.fake.fail(kind, skip=1)
    harness.fake.fail(kind, skip=2)
    assert_complete(sync(harness, sqlite_engine))
    assert harness.fake.faults_served == [kind, kind]
    assert harness.actual(sqlite_engine) == harness.expected()


def test_a_stream_that_keeps_failing_gives_up_and_the_others_go_on(
    harness: Harness, sqlite_engine: Engine
) -> None:
    harness.seed(6)
    first, *others = harness.stream_paths
    harness.fake.fail("503", times=-1, path=harness.stream_paths[first])
    policy = RetryPolicy(max_elapsed=120)
    reports = sync(harness, sqlite_engine, connector=harness.connector(policy=policy))
    by_stream = {r.stream: r for r in reports}
    assert by_stream[first].error is not None and "gave up" in by_stream[first].error
    assert "HTTP 503" in by_stream[first].error
    assert not by_stream[first].complete
    for name in others:
        assert by_stream[name].complete and by_stream[name].error is None, name
    assert harness.time.now <= 120 + 60  # the budget bounded the waiting (pacing aside)
    with sqlite_engine.connect() as conn:
        errors = dict(
            conn.execute(
                select(SyncCursor.stream, SyncCursor.last_error).where(
                    SyncCursor.source == harness.name
                )
            ).all()
        )
    assert "HTTP 503" in (errors.get(first) or "") or first not in errors


def test_wrong_credentials_fail_fast_without_retries(
    harness: Harness, sqlite_engine: Engine
) -> None:
    harness.seed(3)
    reports = sync(harness, sqlite_engine, connector=harness.connector(credentials_ok=False))
    assert all(r.error and "HTTP 401" in r.error for r in reports)
    # … and say which setting to fix: ZENDESK_API_TOKEN, STRIPE_API_KEY…
    assert all(f"{harness.name.upper()}_" in (r.error or "") for r in reports)
    assert len(harness.fake.requests) == len(reports)  # one attempt per stream
    assert harness.time.slept == [] or all(s <= 6.0 for s in harness.time.slept)  # pacing only


def test_an_invalid_record_is_counted_logged_and_does_not_stop_the_page(
    harness: Harness, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    harness.seed(4)
    bad_id = harness.invalid()
    harness.seed(2)
    with caplog.at_level(logging.WARNING, logger="integrations.runner"):
        reports = sync(harness, sqlite_engine)
    assert_complete(reports)
    assert sum(r.invalid for r in reports) >= 1
    assert any(bad_id in rec.getMessage() for rec in caplog.records)
    expected = harness.expected()
    actual = harness.actual(sqlite_engine)
    for table, rows in actual.items():
        assert set(rows) == set(expected[table]) - {bad_id}, table


# -- crashes ---------------------------------------------------------------------------------


class _DieAfterPages:
    def __init__(self, pages: int) -> None:
        self.left = pages

    def stream_started(self, source: str, stream: str) -> None:
        pass

    def page_committed(self, report: StreamReport) -> None:
        self.left -= 1
        if self.left <= 0:
            raise Killed

    def stream_finished(self, report: StreamReport) -> None:
        pass


class _DieMidPage:
    """Wraps a connector; dies while mapping the n-th record (before the page commits)."""

    def __init__(self, inner: Connector, n: int) -> None:
        self.inner, self.left = inner, n
        self.name, self.streams = inner.name, inner.streams

    def pages(self, stream: Stream, *, since: datetime | None, resume: str | None) -> Any:
        return self.inner.pages(stream, since=since, resume=resume)

    def map(self, stream: Stream, raw: RawRecord) -> Sequence[MapResult]:
        self.left -= 1
        if self.left <= 0:
            raise Killed
        return self.inner.map(stream, raw)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("pages", [1, 3])
def test_a_rerun_after_a_kill_between_pages_loses_nothing(
    harness: Harness, engine: Engine, pages: int
) -> None:
    harness.seed(10)
    with pytest.raises(Killed):
        sync(harness, engine, observer=_DieAfterPages(pages))
    harness.change()
    assert_complete(sync(harness, engine))
    assert harness.actual(engine) == harness.expected()


@pytest.mark.parametrize("records", [2, 5])
def test_a_rerun_after_a_kill_mid_page_loses_nothing(
    harness: Harness, engine: Engine, records: int
) -> None:
    harness.seed(10)
    with pytest.raises(Killed):
        sync(harness, engine, connector=_DieMidPage(harness.connector(), records))
    assert_complete(sync(harness, engine))
    assert harness.actual(engine) == harness.expected()


def test_records_sharing_one_updated_at_across_pages_are_not_lost(
    harness: Harness, sqlite_engine: Engine
) -> None:
    harness.seed(2)
    harness.tie(7)  # more than two pages' worth, one instant
    with pytest.raises(Killed):
        sync(
            harness,
            sqlite_engine,
            connector=_without_lookback(harness),
            observer=_DieAfterPages(2),
        )
    assert_complete(sync(harness, sqlite_engine, connector=_without_lookback(harness)))
    assert harness.actual(sqlite_engine) == harness.expected()
    # Later records stamped with the same instant as the saved cursor are still read.
    harness.tie(4)
    assert_complete(sync(harness, sqlite_engine, connector=_without_lookback(harness)))
    assert harness.actual(sqlite_engine) == harness.expected()


def _without_lookback(h: Harness) -> Connector:
    c = h.connector()
    c.streams = tuple(replace(s, lookback=timedelta(0)) for s in c.streams)  # type: ignore[misc]
    return c


def test_a_late_older_version_does_not_overwrite_a_newer_one(
    harness: Harness, engine: Engine
) -> None:
    harness.seed(6)
    assert_complete(sync(harness, engine))
    before = harness.actual(engine)
    assert before == harness.expected()
    harness.make_stale()
    reports = sync(harness, engine, full=True)
    assert_complete(reports)
    assert sum(r.stale for r in reports) >= 1
    assert harness.actual(engine) == before


# -- secrets ---------------------------------------------------------------------------------


def test_no_secret_reaches_any_log_line_even_at_debug(
    harness: Harness, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    harness.seed(5)
    harness.fake.fail("429", skip=1, retry_after="1")
    harness.fake.fail("500", skip=2)
    harness.fake.fail("garbage", skip=3)
    with caplog.at_level(logging.DEBUG):
        sync(harness, sqlite_engine)
        sync(harness, sqlite_engine, connector=harness.connector(credentials_ok=False))
    assert len(caplog.records) > 10
    forbidden = [*harness.secrets]
    for secret in harness.secrets:  # as it travels in a basic-auth header, too
        for user in ("agent@example.com/token", ""):
            forbidden.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
            forbidden.append(base64.b64encode(f"{secret}:".encode()).decode())
    for rec in caplog.records:
        text = rec.getMessage() + (rec.exc_text or "")
        for secret in forbidden:
            assert secret not in text, f"{rec.name}: {text[:200]}"


# -- the registry ----------------------------------------------------------------------------


def test_every_source_but_the_demo_runs_this_contract() -> None:
    assert set(integrations.SOURCES) - {"demo"} == set(HARNESSES)

"""``kill -9`` a real ``kpibot sync`` between pages and mid-page, run it again, and the
warehouse holds exactly what the source holds: every id, each at its source ``updated_at``
(and status, score…), none missing, none extra.

The contract suite simulates crashes by raising an exception; here the process really
dies — SIGKILL: no ``finally``, no rollback from Python, no ``atexit`` — at moments the test
controls rather than guesses:

* **between pages**: the fake API holds the request for page N open, so pages before N
  are committed and the client is waiting for the next one when it is killed;
* **mid-body**: the fake sends half of page N's body, then holds, so the client dies
  reading a page;
* **mid-transaction**: the test watches the database from outside and freezes the client
  (SIGSTOP) as soon as a page's transaction has started writing — SQLite's write lock is
  taken, or PostgreSQL shows a transaction id for the client's backend — checks that the
  frozen process is still inside that transaction, and kills it there.

The fakes run in this process on 127.0.0.1; the sync is the CLI as users run it, with
Zendesk's pacing switched off through the config file.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.db import make_engine, upgrade
from integrations.runner import CursorState
from metrics.schema import SyncCursor, Ticket
from tests.bot.test_cli import cli_env
from tests.fakes.server import Hold, Request
from tests.fakes.zendesk import EXPORT
from tests.integrations.harness import Harness, StripeHarness, ZendeskHarness

# Each source: the stream killed in, the request path of its pages, and how a request
# shows it carries on from a saved position instead of starting over.
KILLED_STREAM = {
    "zendesk": ("tickets", EXPORT, lambda r: "cursor" in r.query),
    "stripe": ("subscriptions", "/v1/subscriptions", lambda r: "starting_after" in r.query),
}


def _zendesk(page_size: int) -> ZendeskHarness:
    h = ZendeskHarness()
    h.fake.page_size = page_size  # the connector asks for Zendesk's default, 1000
    return h


def _stripe(page_size: int) -> StripeHarness:
    h = StripeHarness()
    h.fake.max_limit = page_size
    # Recent enough that the connector reads the events too (Stripe keeps 30 days).
    h.fake.now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    return h


HARNESSES: dict[str, Callable[[int], Harness]] = {"zendesk": _zendesk, "stripe": _stripe}


def _source_env(h: Harness) -> dict[str, str]:
    if isinstance(h, ZendeskHarness):
        return {
            "ZENDESK_SUBDOMAIN": "acme",
            "ZENDESK_EMAIL": h.email,
            "ZENDESK_API_TOKEN": h.token,
            "ZENDESK_BASE_URL": h.fake.url,
        }
    assert isinstance(h, StripeHarness)
    return {"STRIPE_API_KEY": h.api_key, "STRIPE_BASE_URL": h.fake.url}


class Warehouse:
    """A migrated database for the CLI, and a way to watch it from outside."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.postgres = url.startswith("postgresql")
        self.engine = make_engine(url)
        upgrade(self.engine)
        config = tmp_path / "kpibot.toml"
        config.write_text("[sources.zendesk]\nexport_requests_per_minute = 1000000\n")
        # The sync's connections carry a name to find its backend by in pg_stat_activity.
        self.app = f"kpibot-kill-{uuid.uuid4().hex[:8]}"
        sync_url = f"{url}{'&' if '?' in url else '?'}application_name={self.app}"
        self.env = {
            "KPIBOT_DATABASE_URL": sync_url if self.postgres else url,
            "KPIBOT_CONFIG": str(config),
        }
        self.cwd = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start_sync(self, h: Harness) -> subprocess.Popen[bytes]:
        with (self.cwd / "sync.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "sync", "--source", h.name],
                cwd=self.cwd,
                env=cli_env({**self.env, **_source_env(h)}),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kill whatever a failed test left running (stopped or not), then let go."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.engine.dispose()

    def sync(self, h: Harness) -> None:
        done = self.start_sync(h)
        assert done.wait(120) == 0, self.log()

    def log(self) -> str:
        return (self.cwd / "sync.log").read_text(errors="replace")[-3000:]

    def cursor(self, source: str, stream: str) -> tuple[CursorState, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(SyncCursor.cursor, SyncCursor.records_total).where(
                    SyncCursor.source == source, SyncCursor.stream == stream
                )
            ).one()
        return CursorState.load(row.cursor), row.records_total

    def count(self, table: type[Ticket]) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def warehouse(database_url: str, tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(database_url, tmp_path)
    yield w
    w.close()


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    w = Warehouse(f"sqlite:///{tmp_path / 'kpibot.db'}", tmp_path)
    yield w
    w.close()


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL


def _wait_for(
    event_is_set: Callable[[], bool], process: subprocess.Popen[bytes], what: str
) -> None:
    deadline = time.monotonic() + 60
    while not event_is_set():
        assert process.poll() is None, f"the sync ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _requests_since(h: Harness, path: str, start: int) -> list[Request]:
    return [r for r in h.fake.requests[start:] if r.path == path]


# -- between pages and mid-body ----------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(KILLED_STREAM))
def test_a_sync_killed_between_pages_then_rerun_matches_the_source(
    source: str, warehouse: Warehouse
) -> None:
    _killed_waiting_for_page_3_then_rerun(source, warehouse, partial=False)


def test_a_sync_killed_while_reading_a_page_then_rerun_matches_the_source(
    sqlite_warehouse: Warehouse,
) -> None:
    _killed_waiting_for_page_3_then_rerun("zendesk", sqlite_warehouse, partial=True)


def _killed_waiting_for_page_3_then_rerun(source: str, w: Warehouse, *, partial: bool) -> None:
    stream, path, resumed = KILLED_STREAM[source]
    page_size = 4
    h = HARNESSES[source](page_size)
    with h.fake:
        h.seed(5 * page_size)
        held = h.fake.hold(path, skip=2, partial=partial)
        process = w.start_sync(h)
        try:
            _wait_for(held.reached.is_set, process, "the request for page 3")
            _kill(process)
        finally:
            held.release.set()
        # Pages 1 and 2 are committed, with the position after page 2; page 3 is not.
        position, records = w.cursor(source, stream)
        assert position.resume is not None and records == 2 * page_size
        h.change()  # the source moves on while the sync is down
        before = len(h.fake.requests)
        w.sync(h)
        assert resumed(_requests_since(h, path, before)[0])  # carried on, did not restart
        assert h.actual(w.engine) == h.expected()


# -- inside a page's transaction ---------------------------------------------------------------


def test_a_sync_killed_inside_a_page_transaction_then_rerun_matches_the_source(
    warehouse: Warehouse,
) -> None:
    """Big pages so that a page's transaction lasts long enough to be caught in it."""
    page_size, pages = 1000, 4
    h = _zendesk(page_size)
    is_writing = _pg_writing if warehouse.postgres else _sqlite_writing
    with h.fake:
        h.seed(pages * page_size)
        # Never let the sync finish: if no page transaction is caught, the test fails
        # saying so instead of passing without having killed anything.
        last = h.fake.hold(EXPORT, skip=pages - 1)
        process = warehouse.start_sync(h)
        try:
            # From page 2 on, so that committed pages are there to be kept.
            _wait_for(lambda: len(h.fake.requests_to(EXPORT)) >= 2, process, "page 2")
            caught = _freeze_inside_a_transaction(process, lambda: is_writing(warehouse), last)
            assert caught, "never caught the sync inside a page transaction"
            _kill(process)
        finally:
            last.release.set()
        if warehouse.postgres:
            _wait_until_backend_gone(warehouse)
        # The page being written is gone, all of it; those before are complete.
        _, records = warehouse.cursor("zendesk", "tickets")
        assert records % page_size == 0 and records >= page_size
        assert len(h.fake.requests_to(EXPORT)) == records // page_size + 1
        assert warehouse.count(Ticket) == records
        h.change()
        warehouse.sync(h)
        assert h.actual(warehouse.engine) == h.expected()


def _freeze_inside_a_transaction(
    process: subprocess.Popen[bytes], is_writing: Callable[[], bool], last: Hold
) -> bool:
    """Poll until the client holds an open write transaction, freeze it, and confirm that
    it is still inside the transaction once frozen (else let it go and try again)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if last.reached.is_set():
            return False
        if not is_writing():
            continue
        process.send_signal(signal.SIGSTOP)
        if is_writing():
            return True
        process.send_signal(signal.SIGCONT)
    return False


def _sqlite_writing(w: Warehouse) -> bool:
    """Whether another connection holds SQLite's write lock: in WAL mode only a
    transaction that has begun writing does."""
    path = w.url.removeprefix("sqlite:///")
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc) or "busy" in str(exc), exc
        return True
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def _pg_writing(w: Warehouse) -> bool:
    """Whether the sync's backend is in a transaction that has written (it has an xid)."""
    with w.engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "select count(*) from pg_stat_activity"
                    " where application_name = :app and backend_xid is not null"
                ),
                {"app": w.app},
            ).scalar_one()
        )


def _wait_until_backend_gone(w: Warehouse) -> None:
    """PostgreSQL rolls a dead client's transaction back when it notices the hang-up."""
    deadline = time.monotonic() + 20
    query = text("select count(*) from pg_stat_activity where application_name = :app")
    while time.monotonic() < deadline:
        with w.engine.connect() as conn:
            if not conn.execute(query, {"app": w.app}).scalar_one():
                return
        time.sleep(0.05)
    raise AssertionError("the killed sync's PostgreSQL backend did not go away")

"""Zendesk: what a ticket and a rating become, and the export's pace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from integrations.runner import SyncRunner
from integrations.zendesk import ZendeskConnector
from metrics.schema import SurveyResponse, Ticket
from tests.fakes.zendesk import EXPORT, T0, FakeZendesk
from tests.integrations.harness import FakeTime

EMAIL, TOKEN = "agent@example.com", "zd-token-unit-0001"


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk(email=EMAIL, token=TOKEN)
    fake.start()
    yield fake
    fake.stop()


def run(fake: FakeZendesk, engine: Engine, time: FakeTime | None = None, **kwargs: object) -> None:
    time = time or FakeTime()
    connector = ZendeskConnector(
        email=EMAIL,
        api_token=TOKEN,
        base_url=fake.url,
        sleep=time.sleep,
        monotonic=time.monotonic,
        clock=lambda: T0 + timedelta(days=30),
        **kwargs,  # type: ignore[arg-type]
    )
    try:
        assert all(r.error is None for r in SyncRunner(engine).sync(connector))
    finally:
        connector.close()


def test_a_solved_ticket_carries_zendesk_metrics(
    zendesk: FakeZendesk, sqlite_engine: Engine
) -> None:
    zendesk.put_ticket(
        42,
        updated_at=T0,
        created_at=T0 - timedelta(hours=5),
        status="solved",
        channel="chat",
        priority="high",
        group_id=360004077473,
        organization_id=777,
        assignee_id=55,
        reply_minutes=(95, 35),
        resolution_minutes=(300, 120),
        replies=2,
        reopens=1,
    )
    run(zendesk, sqlite_engine)
    with sqlite_engine.connect() as conn:
        t = conn.execute(select(Ticket.__table__)).one()
    assert t.id == "42" and t.source == "zendesk" and t.status == "solved"
    assert (t.channel, t.priority, t.group_name) == ("chat", "high", "Billing")
    assert (t.customer_id, t.assignee) == ("777", "55")
    assert t.created_at == T0 - timedelta(hours=5)
    assert (t.first_reply_minutes, t.first_reply_business_minutes) == (95.0, 35.0)
    assert t.first_reply_at == t.created_at + timedelta(minutes=95)
    assert (t.full_resolution_minutes, t.full_resolution_business_minutes) == (300.0, 120.0)
    assert t.solved_at == T0
    assert (t.replies, t.reopens) == (2, 1)


def test_a_reopened_ticket_is_unresolved_again(zendesk: FakeZendesk, sqlite_engine: Engine) -> None:
    zendesk.put_ticket(1, updated_at=T0, status="solved")
    run(zendesk, sqlite_engine)
    zendesk.put_ticket(1, updated_at=T0 + timedelta(hours=1), status="open", reopens=1)
    zendesk.metrics[1]["solved_at"] = "2026-01-05T09:00:00Z"  # Zendesk keeps the old solve
    run(zendesk, sqlite_engine)
    with sqlite_engine.connect() as conn:
        t = conn.execute(select(Ticket.__table__)).one()
    assert (t.status, t.solved_at, t.full_resolution_minutes, t.reopens) == ("open", None, None, 1)


def test_a_ticket_awaiting_its_first_reply_has_no_reply_time(
    zendesk: FakeZendesk, sqlite_engine: Engine
) -> None:
    zendesk.put_ticket(1, updated_at=T0, status="new", reply_minutes=None, replies=0)
    run(zendesk, sqlite_engine)
    with sqlite_engine.connect() as conn:
        t = conn.execute(select(Ticket.__table__)).one()
    assert (t.first_reply_at, t.first_reply_minutes, t.replies) == (None, None, 0)


def test_ratings_become_csat_good_one_bad_zero_and_offers_are_left_out(
    zendesk: FakeZendesk, sqlite_engine: Engine
) -> None:
    zendesk.put_rating(1, ticket_id=10, score="good", updated_at=T0)
    zendesk.put_rating(2, ticket_id=11, score="bad_with_comment", updated_at=T0, comment="slow")
    zendesk.put_rating(3, ticket_id=12, score="offered", updated_at=T0)
    zendesk.put_rating(4, ticket_id=13, score="unoffered", updated_at=T0)
    run(zendesk, sqlite_engine)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            select(
                SurveyResponse.id,
                SurveyResponse.kind,
                SurveyResponse.score,
                SurveyResponse.scale_max,
                SurveyResponse.ticket_id,
                SurveyResponse.comment,
            ).order_by(SurveyResponse.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("zendesk-1", "csat", 1.0, 1, "10", None),
        ("zendesk-2", "csat", 0.0, 1, "11", "slow"),
    ]


def test_exports_are_paced_to_ten_requests_a_minute(
    zendesk: FakeZendesk, sqlite_engine: Engine
) -> None:
    for i in range(1, 8):
        zendesk.put_ticket(i, updated_at=T0 + timedelta(minutes=i))
    time = FakeTime()
    run(zendesk, sqlite_engine, time, page_size=2)
    exports = zendesk.requests_to(EXPORT)
    assert len(exports) == 4
    # One export request per 6 s (and 1 % margin), ratings unpaced.
    assert time.slept == pytest.approx([6.06, 6.06, 6.06])


def test_requests_use_basic_auth_with_the_token_and_the_configured_base_url(
    zendesk: FakeZendesk, sqlite_engine: Engine
) -> None:
    zendesk.put_ticket(1, updated_at=T0)
    run(zendesk, sqlite_engine)
    assert zendesk.requests and all(
        r.headers["authorization"] == zendesk.auth for r in zendesk.requests
    )
    first = zendesk.requests_to(EXPORT)[0]
    assert first.query["include"] == ["metric_sets,groups"]
    assert first.query["start_time"] == ["0"]

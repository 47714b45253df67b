from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, insert, select

from bot.state import claim_delivery
from metrics.schema import Ticket


def test_timestamps_come_back_as_utc_aware_on_every_backend(engine: Engine) -> None:
    warsaw_noon = datetime(2026, 3, 29, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(
            insert(Ticket).values(
                id="1", source="t", status="open", created_at=warsaw_noon, updated_at=warsaw_noon
            )
        )
        got = conn.execute(select(Ticket.created_at)).scalar_one()
    assert got == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            insert(Ticket).values(
                id="1",
                source="t",
                status="open",
                created_at=datetime(2026, 1, 1),
                updated_at=datetime(2026, 1, 1),
            )
        )


def test_a_delivery_is_claimed_once(engine: Engine) -> None:
    now = datetime(2026, 11, 24, 9, tzinfo=UTC)
    key = {"what": "digest:morning", "target": "console:main", "period": "2026-11-24"}
    with engine.begin() as conn:
        assert claim_delivery(conn, now=now, **key) is True
    with engine.begin() as conn:
        assert claim_delivery(conn, now=now, **key) is False

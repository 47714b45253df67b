"""The bot's own state: the delivery ledger, alert states and mutes.

These tables live on the warehouse's ``Base`` so that one Alembic history covers them.

The delivery ledger is what makes digests and alerts exactly-once across restarts and
instances: before posting, a row keyed by (what, where, period) is claimed with
``INSERT … ON CONFLICT DO NOTHING``; only the process whose insert landed posts.

A ledger row's ``status``::

    claimed ──post ok──► posted
       │  └─post raised──► failed ──retry_at passed: re-claimed by one process──► claimed
       │                     └─attempts used up, or expires_at passed──► abandoned
       └─claimer died (retry_at, the claim's lease, passed)──► re-claimed as above
    skipped: a digest missed by more than its grace, recorded so it is logged once

The row keeps the rendered message (``payload``) until it is posted, so a retry posts
what was decided then, by whichever instance runs the schedule by that time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Integer, String, Text, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from metrics.schema import Base, UTCDateTime

CLAIMED, POSTED, FAILED, ABANDONED, SKIPPED = "claimed", "posted", "failed", "abandoned", "skipped"
RETRYABLE = (CLAIMED, FAILED)


class Delivery(Base):
    __tablename__ = "deliveries"

    what: Mapped[str] = mapped_column(String(128), primary_key=True)  # "digest:morning"
    target: Mapped[str] = mapped_column(String(128), primary_key=True)  # "slack:C123"
    period: Mapped[str] = mapped_column(String(64), primary_key=True)  # "2026-11-24"
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_ref: Mapped[str | None] = mapped_column(String(128))  # ts / message id, threads
    error: Mapped[str | None] = mapped_column(Text)
    # claimed, posted, failed, abandoned, skipped (see the module docstring)
    status: Mapped[str] = mapped_column(String(16), server_default=CLAIMED)
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    # When another attempt may take the row over: the claim's lease, or a failure's backoff.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # no retry after this
    # The period of the message this one threads under (same what and target).
    thread_of: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str | None] = mapped_column(Text)  # the reply as JSON, until posted


class AlertState(Base):
    """Where one alert rule (for one dimension value) stands, so a restart forgets nothing."""

    __tablename__ = "alert_states"

    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    dimension_value: Mapped[str] = mapped_column(String(128), primary_key=True, default="")
    # ok, pending, firing, no_data, stale
    status: Mapped[str] = mapped_column(String(16))
    breaching_checks: Mapped[int] = mapped_column(Integer, default=0)
    # consecutive checks past the resolve level while firing (resolve_checks)
    recovering_checks: Mapped[int] = mapped_column(Integer, server_default="0")
    breaching_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_value: Mapped[float | None] = mapped_column(Float)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The platform reference of the first message, so reminders and the resolution thread.
    thread_ref: Mapped[str | None] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Mute(Base):
    __tablename__ = "mutes"

    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    muted_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def claim_delivery(
    conn: Connection,
    *,
    what: str,
    target: str,
    period: str,
    now: datetime,
    claimed_by: str | None = None,
    status: str = CLAIMED,
    retry_at: datetime | None = None,
    expires_at: datetime | None = None,
    thread_of: str | None = None,
    payload: str | None = None,
) -> bool:
    """Claim (what, target, period); True only for the one caller whose row landed.

    The caller must commit the claim before posting, so that a concurrent claimer sees it.
    """
    values = {
        "what": what,
        "target": target,
        "period": period,
        "claimed_at": now,
        "claimed_by": claimed_by,
        "status": status,
        "attempts": 1,
        "retry_at": retry_at,
        "expires_at": expires_at,
        "thread_of": thread_of,
        "payload": payload,
    }
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(Delivery).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(Delivery).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(Delivery).values(**values)
    # RETURNING, not rowcount: psycopg reports -1 for a single-row INSERT through SQLAlchemy.
    return conn.execute(stmt.returning(Delivery.what)).first() is not None

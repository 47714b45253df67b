"""The warehouse: what every source syncs into and every KPI reads from.

One SQLAlchemy 2.x declarative ``Base`` holds every table, including the bot's own state
tables (declared in ``bot/state.py`` on this same ``Base``), so one Alembic history covers
the whole database.

Conventions, so that numbers agree on SQLite and PostgreSQL:

* Every timestamp is timezone-aware UTC in Python (:class:`UTCDateTime`); SQLite stores it
  as a naive UTC string, PostgreSQL as ``timestamptz``. Convert to the team's zone at the
  edges only.
* Money is stored in minor currency units (cents). ``mrr`` on a subscription period is the
  monthly-normalised amount in minor units of the subscription's own ``currency``, after
  discounts and without tax, rounded to 4 decimals, so sums agree on both databases to the
  cent. Revenue KPIs sum only the reporting currency's periods (no FX rates are known).
* Natural keys: every synced row carries the source's own id as its primary key (string),
  plus ``source``. ``updated_at`` is the source's own modification time: the sync runner
  never lets an older version overwrite a newer one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so that Alembic migrations are reproducible everywhere.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Naive datetimes are refused on the way in: a naive value is a bug at an edge (an API
    payload or a user's input that was never given a zone), and guessing hides it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: attach a time zone before storing")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Customer(Base):
    """A paying (or once-paying) account: a Stripe customer, a Zendesk organisation."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    plan: Mapped[str | None] = mapped_column(String(64))
    segment: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Subscription(Base):
    """A subscription as the billing source reports it now (its current state)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    # Stripe's statuses: trialing, active, past_due, unpaid, canceled, incomplete,
    # incomplete_expired, paused. Only active and past_due count towards MRR.
    status: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    plan: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A subscription-level discount: a percentage, or an amount off per month (minor units).
    discount_percent: Mapped[float | None] = mapped_column(Float)
    discount_amount_off: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionItem(Base):
    """One price on a subscription, with its quantity: what MRR multiplies."""

    __tablename__ = "subscription_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    price_id: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount: Mapped[int | None] = mapped_column(BigInteger)  # minor units, per interval
    currency: Mapped[str] = mapped_column(String(3))
    # "day", "week", "month" or "year", times interval_count; None for one-time prices.
    interval: Mapped[str | None] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer, default=1)
    usage_type: Mapped[str] = mapped_column(String(16), default="licensed")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionPeriod(Base):
    """The history MRR is computed from: one row per stretch of unchanged MRR and status.

    A subscription's current state lives in ``subscriptions``; each change of its status,
    plan, quantity, price or discount closes the open period (``valid_to``) and opens a new
    one. MRR at an instant t is the sum of ``mrr`` over periods with
    ``valid_from <= t < coalesce(valid_to, ∞)`` whose status is paid (active, past_due);
    MRR movements compare each customer's MRR across the changes.
    """

    __tablename__ = "subscription_periods"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)  # "<subscription>@<epoch>"
    source: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    mrr: Mapped[float] = mapped_column(Float)  # minor units of ``currency``
    currency: Mapped[str] = mapped_column(String(3))  # the subscription's own (upper case)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_subscription_periods_customer_from", "customer_id", "valid_from"),
        Index("ix_subscription_periods_span", "valid_from", "valid_to", "status", "mrr"),
        Index("ix_subscription_periods_subscription", "subscription_id", "valid_from"),
        # MRR series and movements look up the periods that end in a window.
        # MRR at an instant: the periods ending after it and the open ones (valid_to NULL).
        Index(
            "ix_subscription_periods_to", "valid_to", "status", "mrr", "customer_id", "valid_from"
        ),
        # Revenue KPIs say what they left out: the periods in other currencies than the
        # reporting one (usually none: two ranges of this index, both empty).
        Index(
            "ix_subscription_periods_currency",
            "currency",
            "valid_to",
            "valid_from",
            "status",
            "customer_id",
        ),
    )


class MrrChange(Base):
    """Derived from ``subscription_periods``: each customer's MRR timeline, one row per
    instant at which their MRR changed, classified as an MRR movement.

    Built and kept up to date by :func:`metrics.derived.refresh_derived`; never written by a
    sync. Rows of customers listed in ``mrr_pending`` are stale and are never read: the KPIs
    compute those customers' timelines from ``subscription_periods`` instead, so this table
    can only make an answer faster, never different (``metrics/README.md``, "Derived
    tables").

    ``mrr_before`` / ``mrr_after`` are the customer's MRR (minor units) just before and
    just after ``changed_at``; ``kind`` is new, expansion, contraction, churn or
    reactivation, NULL for a change too small to count; ``amount`` is the movement's size.
    ``previous_at`` / ``next_at`` are the customer's neighbouring changes, so that the
    customer's MRR at any instant t is ``mrr_after`` of the row with
    ``changed_at < t <= next_at`` (``next_at`` NULL: until further notice).
    """

    __tablename__ = "mrr_changes"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # One timeline per customer and currency: money in two currencies never adds up, and
    # the revenue KPIs read only the reporting currency's.
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    delta: Mapped[float] = mapped_column(Float)
    mrr_before: Mapped[float] = mapped_column(Float)
    mrr_after: Mapped[float] = mapped_column(Float)
    kind: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[float] = mapped_column(Float)
    previous_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Movements and cohorts: a range scan of the window, answered from the index alone.
        Index(
            "ix_mrr_changes_at",
            "currency",
            "changed_at",
            "kind",
            "amount",
            "customer_id",
            "previous_at",
            "next_at",
            "mrr_before",
            "mrr_after",
        ),
        # Who was paying at an instant: the rows whose stretch reaches past it.
        Index(
            "ix_mrr_changes_next", "currency", "next_at", "changed_at", "mrr_after", "customer_id"
        ),
    )


class MrrPending(Base):
    """Customers whose ``mrr_changes`` rows are stale: their subscription periods changed
    since the rows were built.

    Filled by triggers on ``subscription_periods`` (every insert, delete, and update of a
    column MRR depends on), whoever writes: the sync, a migration, a hand-made fix. Emptied
    by :func:`metrics.derived.refresh_derived`. ``version`` tells one mark from the next
    (PostgreSQL: the marking transaction's id; SQLite: a random number), so that a refresh
    only clears the marks it has seen, never one made while it ran.
    """

    __tablename__ = "mrr_pending"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


# The triggers that fill mrr_pending. The same statements are frozen in the migrations that
# introduced them (0002; 0004 added currency); tests check that both paths mark a changed
# customer.
MRR_COLUMNS = ("customer_id", "status", "mrr", "currency", "valid_from", "valid_to")
_SQLITE_MARK = (
    "INSERT INTO mrr_pending (customer_id, version) VALUES ({row}.customer_id, random()) "
    "ON CONFLICT (customer_id) DO UPDATE SET version = excluded.version;"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER subscription_periods_mrr_insert AFTER INSERT ON subscription_periods "
    f"BEGIN {_SQLITE_MARK.format(row='NEW')} END",
    "CREATE TRIGGER subscription_periods_mrr_delete AFTER DELETE ON subscription_periods "
    f"BEGIN {_SQLITE_MARK.format(row='OLD')} END",
    "CREATE TRIGGER subscription_periods_mrr_update AFTER UPDATE ON subscription_periods "
    "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in MRR_COLUMNS) + " "
    f"BEGIN {_SQLITE_MARK.format(row='OLD')} {_SQLITE_MARK.format(row='NEW')} END",
)
_POSTGRES_MARK = (
    "INSERT INTO mrr_pending (customer_id, version) VALUES ({row}.customer_id, txid_current()) "
    "ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version "
    "WHERE mrr_pending.version IS DISTINCT FROM EXCLUDED.version;"
)
POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION mrr_mark_pending() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    f"IF TG_OP <> 'INSERT' THEN {_POSTGRES_MARK.format(row='OLD')} END IF; "
    f"IF TG_OP <> 'DELETE' THEN {_POSTGRES_MARK.format(row='NEW')} END IF; "
    "RETURN NULL; "
    "END $$",
    "CREATE TRIGGER subscription_periods_mrr_insert_delete "
    "AFTER INSERT OR DELETE ON subscription_periods "
    "FOR EACH ROW EXECUTE FUNCTION mrr_mark_pending()",
    "CREATE TRIGGER subscription_periods_mrr_update AFTER UPDATE ON subscription_periods "
    "FOR EACH ROW WHEN ("
    + " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in MRR_COLUMNS)
    + ") EXECUTE FUNCTION mrr_mark_pending()",
)


def _create_mrr_triggers(target: Table, connection: Connection, **_: object) -> None:
    statements = POSTGRES_TRIGGERS if connection.dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in statements:
        connection.exec_driver_sql(statement)


# With metadata.create_all (tests, benchmarks) as with the migrations.
event.listen(SubscriptionPeriod.__table__, "after_create", _create_mrr_triggers)


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    subscription_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))  # draft, open, paid, uncollectible, void
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)  # minor units, tax included
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Ticket(Base):
    """A helpdesk ticket with the metrics Zendesk's ticket_metric object carries."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(255))
    # new, open, pending, hold, solved, closed; "deleted" when the source reports a deletion
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(32))
    group_name: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Creation → first public agent reply, in minutes: calendar and business time.
    first_reply_minutes: Mapped[float | None] = mapped_column(Float)
    first_reply_business_minutes: Mapped[float | None] = mapped_column(Float)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # latest solve
    full_resolution_minutes: Mapped[float | None] = mapped_column(Float)
    full_resolution_business_minutes: Mapped[float | None] = mapped_column(Float)
    replies: Mapped[int] = mapped_column(Integer, default=0)  # public agent replies
    reopens: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # Covering indexes: the window filter plus the columns the KPI reads, so that
        # SQLite answers from the index alone.
        # status is in each, because every ticket KPI leaves deleted tickets out.
        Index(
            "ix_tickets_created_frt",
            "created_at",
            "first_reply_minutes",
            "first_reply_business_minutes",
            "status",
        ),
        Index(
            "ix_tickets_created_dims", "created_at", "channel", "group_name", "priority", "status"
        ),
        Index(
            "ix_tickets_solved",
            "solved_at",
            "full_resolution_minutes",
            "full_resolution_business_minutes",
            "replies",
            "reopens",
            "status",
            "created_at",  # backlog: solved since an instant, created before it
        ),
        # Backlog: tickets per status created before an instant; solved ones without a
        # solve time, created in a bucket.
        Index("ix_tickets_status", "status", "created_at", "solved_at"),
    )


class SurveyResponse(Base):
    """One answer to an NPS, CSAT or CES survey.

    ``scale_max`` says how to read ``score``: 10 for NPS (0–10), 5 for a 5-point CSAT, 1 for
    Zendesk's good/bad rating (1 good, 0 bad), 7 for CES 2.0 (1–7). CES on another scale is
    refused at ingestion so that scales are never mixed.
    """

    __tablename__ = "survey_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # nps, csat, ces
    score: Mapped[float] = mapped_column(Float)
    scale_max: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(64))
    responded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_survey_responses_kind_time", "kind", "responded_at", "score", "scale_max"),
    )


class UsageEvent(Base):
    """A product event: who did what, when."""

    __tablename__ = "usage_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_usage_events_time_user", "occurred_at", "user_id", "account_id"),
        Index("ix_usage_events_event_time", "event", "occurred_at", "user_id"),
    )


class SyncCursor(Base):
    """Where each (source, stream) stopped: committed in the same transaction as its page."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)  # opaque to the runner
    records_total: Mapped[int] = mapped_column(BigInteger, default=0)
    last_page_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a full run
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


WAREHOUSE_TABLES = (
    Customer,
    Subscription,
    SubscriptionItem,
    SubscriptionPeriod,
    Invoice,
    Ticket,
    SurveyResponse,
    UsageEvent,
)

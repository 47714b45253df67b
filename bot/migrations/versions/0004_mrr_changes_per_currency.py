"""mrr_changes: one MRR timeline per customer and currency; the MRR triggers watch currency;
an index on subscription_periods(currency, …) to count what revenue KPIs leave out

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00

A subscription period's ``mrr`` is in its subscription's own currency. Revenue KPIs now sum
only the reporting currency's periods (without exchange rates, euros and dollars do not add
up), so the derived timeline is kept per currency. ``mrr_changes`` is derived: it is
rebuilt empty and every customer with periods is marked pending, so an upgraded database
answers right at once and fast after the first ``metrics.refresh_derived``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import metrics.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SQLITE_MARK = (
    "INSERT INTO mrr_pending (customer_id, version) VALUES ({row}.customer_id, random()) "
    "ON CONFLICT (customer_id) DO UPDATE SET version = excluded.version;"
)
_POSTGRES_UPDATE = (
    "CREATE TRIGGER subscription_periods_mrr_update AFTER UPDATE ON subscription_periods "
    "FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION mrr_mark_pending()"
)
_SQLITE_UPDATE = (
    "CREATE TRIGGER subscription_periods_mrr_update AFTER UPDATE ON subscription_periods "
    "WHEN {when} "
    f"BEGIN {_SQLITE_MARK.format(row='OLD')} {_SQLITE_MARK.format(row='NEW')} END"
)
_BEFORE = ("customer_id", "status", "mrr", "valid_from", "valid_to")
_AFTER = ("customer_id", "status", "mrr", "currency", "valid_from", "valid_to")


def _update_trigger(columns: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscription_periods_mrr_update ON subscription_periods")
        when = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        op.execute(_POSTGRES_UPDATE.format(when=when))
    else:
        op.execute("DROP TRIGGER IF EXISTS subscription_periods_mrr_update")
        op.execute(
            _SQLITE_UPDATE.format(when=" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns))
        )


def _mrr_changes(per_currency: bool) -> None:
    """Drop and create mrr_changes (derived: nothing is lost), with or without currency."""
    with op.batch_alter_table("mrr_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_mrr_changes_next")
        batch_op.drop_index("ix_mrr_changes_at")
    op.drop_table("mrr_changes")
    currency = ["currency"] if per_currency else []
    op.create_table(
        "mrr_changes",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        *([sa.Column("currency", sa.String(length=3), nullable=False)] if per_currency else []),
        sa.Column("changed_at", metrics.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("mrr_before", sa.Float(), nullable=False),
        sa.Column("mrr_after", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("previous_at", metrics.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_at", metrics.schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "customer_id", *currency, "changed_at", name=op.f("pk_mrr_changes")
        ),
    )
    with op.batch_alter_table("mrr_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mrr_changes_at",
            [*currency, "changed_at", "kind", "amount", "customer_id", "previous_at",
             "next_at", "mrr_before", "mrr_after"],
            unique=False,
        )  # fmt: skip
        batch_op.create_index(
            "ix_mrr_changes_next",
            [*currency, "next_at", "changed_at", "mrr_after", "customer_id"],
            unique=False,
        )
    # Every customer's rows are to be built again (those already marked stay marked).
    op.execute(
        "INSERT INTO mrr_pending (customer_id, version) "
        "SELECT DISTINCT customer_id, 0 FROM subscription_periods "
        "WHERE customer_id NOT IN (SELECT customer_id FROM mrr_pending)"
    )


def upgrade() -> None:
    _mrr_changes(per_currency=True)
    _update_trigger(_AFTER)
    # Plain (not batch): a batch rebuild of subscription_periods on SQLite drops its triggers.
    op.create_index(
        "ix_subscription_periods_currency",
        "subscription_periods",
        ["currency", "valid_to", "valid_from", "status", "customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_subscription_periods_currency", table_name="subscription_periods")
    _update_trigger(_BEFORE)
    _mrr_changes(per_currency=False)

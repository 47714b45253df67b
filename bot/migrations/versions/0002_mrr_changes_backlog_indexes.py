"""mrr_changes: each customer's MRR timeline, derived; mrr_pending, filled by triggers;
wider ticket and period indexes for the backlog and MRR at an instant

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00

The triggers are frozen here as SQL (metrics/schema.py holds the same statements for
``create_all``; tests/metrics/test_derived.py checks both ways mark a changed customer).
Every customer with periods is marked pending, so an upgraded database answers right at
once and fast after the first ``metrics.refresh_derived`` (the bot runs it after a sync).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import metrics.schema

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_COLUMNS = ("customer_id", "status", "mrr", "valid_from", "valid_to")
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
    "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COLUMNS) + " "
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
    + " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _COLUMNS)
    + ") EXECUTE FUNCTION mrr_mark_pending()",
)


def upgrade() -> None:
    op.create_table('mrr_changes',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('changed_at', metrics.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delta', sa.Float(), nullable=False),
    sa.Column('mrr_before', sa.Float(), nullable=False),
    sa.Column('mrr_after', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('previous_at', metrics.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_at', metrics.schema.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('customer_id', 'changed_at', name=op.f('pk_mrr_changes'))
    )
    with op.batch_alter_table('mrr_changes', schema=None) as batch_op:
        batch_op.create_index('ix_mrr_changes_at', ['changed_at', 'kind', 'amount', 'customer_id', 'previous_at', 'next_at', 'mrr_before', 'mrr_after'], unique=False)
        batch_op.create_index('ix_mrr_changes_next', ['next_at', 'changed_at', 'mrr_after', 'customer_id'], unique=False)

    op.create_table('mrr_pending',
    sa.Column('customer_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_mrr_pending'))
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    # The backlog reads created_at beside solved_at, and solved_at beside status.
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status')
        batch_op.drop_index('ix_tickets_solved')
        batch_op.create_index('ix_tickets_solved', ['solved_at', 'full_resolution_minutes', 'full_resolution_business_minutes', 'replies', 'reopens', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_tickets_status', ['status', 'created_at', 'solved_at'], unique=False)

    # MRR at an instant reads valid_from beside valid_to. Plain (not batch) operations: a
    # batch rebuild of subscription_periods on SQLite would drop the triggers made above.
    op.drop_index('ix_subscription_periods_to', table_name='subscription_periods')
    op.create_index('ix_subscription_periods_to', 'subscription_periods', ['valid_to', 'status', 'mrr', 'customer_id', 'valid_from'], unique=False)

    # Periods written before the triggers existed: their customers' rows are not built yet.
    op.execute(
        "INSERT INTO mrr_pending (customer_id, version) "
        "SELECT DISTINCT customer_id, 0 FROM subscription_periods"
    )


def downgrade() -> None:
    op.drop_index('ix_subscription_periods_to', table_name='subscription_periods')
    op.create_index('ix_subscription_periods_to', 'subscription_periods', ['valid_to', 'status', 'mrr', 'customer_id'], unique=False)
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status')
        batch_op.drop_index('ix_tickets_solved')
        batch_op.create_index('ix_tickets_solved', ['solved_at', 'full_resolution_minutes', 'full_resolution_business_minutes', 'replies', 'reopens', 'status'], unique=False)
        batch_op.create_index('ix_tickets_status', ['status', 'created_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS subscription_periods_mrr_update ON subscription_periods")
        op.execute(
            "DROP TRIGGER IF EXISTS subscription_periods_mrr_insert_delete ON subscription_periods"
        )
        op.execute("DROP FUNCTION IF EXISTS mrr_mark_pending()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS subscription_periods_mrr_{name}")
    op.drop_table('mrr_pending')
    with op.batch_alter_table('mrr_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_mrr_changes_next')
        batch_op.drop_index('ix_mrr_changes_at')

    op.drop_table('mrr_changes')

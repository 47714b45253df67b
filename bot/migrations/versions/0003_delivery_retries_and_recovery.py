"""delivery ledger: status, attempts, retry and expiry times, thread parent, payload;
alert states: recovering_checks (resolve after N checks)

A claimed-but-not-posted row (a failed post, or a claimer that died) can now be retried by
one process after a timeout instead of being lost; the payload lets the retry post what
was decided at the time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import metrics.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), server_default="claimed", nullable=False)
        )
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("retry_at", metrics.schema.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expires_at", metrics.schema.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("thread_of", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recovering_checks", sa.Integer(), server_default="0", nullable=False)
        )
    # Rows from before: posted ones are posted; the rest failed once and were never retried.
    op.execute("UPDATE deliveries SET status = 'posted' WHERE posted_at IS NOT NULL")
    op.execute("UPDATE deliveries SET status = 'abandoned' WHERE posted_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_column("recovering_checks")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("thread_of")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("retry_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("status")

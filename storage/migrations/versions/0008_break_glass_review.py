"""break-glass review: due, acknowledged, by whom

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-02 16:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("review_due_at", storage.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("reviewed_at", storage.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("reviewed_by_team", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by_user", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by_entra_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_requests_review_due_at", ["review_due_at"], unique=False)
    # Break-glass requests from before this migration were never reviewed: make them due now,
    # so approvers are asked to acknowledge them rather than the trail keeping a silent gap.
    op.execute(
        "UPDATE elevation_requests SET review_due_at = created_at "
        "WHERE break_glass AND reviewed_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_review_due_at")
        batch_op.drop_column("reviewed_by_entra_id")
        batch_op.drop_column("reviewed_by_user")
        batch_op.drop_column("reviewed_by_team")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("review_due_at")

"""scheduler timers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 04:37:56.352644
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("nudged_at", storage.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("deactivate_at", storage.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_requests_status_deactivate_at", ["status", "deactivate_at"], unique=False
        )
        batch_op.create_index(
            "ix_requests_status_updated_at", ["status", "updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_status_updated_at")
        batch_op.drop_index("ix_requests_status_deactivate_at")
        batch_op.drop_column("deactivate_at")
        batch_op.drop_column("nudged_at")

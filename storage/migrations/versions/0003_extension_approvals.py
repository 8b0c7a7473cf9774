"""extension approvals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 05:04:08.169681
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint(
            batch_op.f("uq_approval_decisions_request_approver"), type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_approval_decisions_request_round_approver",
            ["request_id", "round", "approver_team", "approver_user"],
        )

    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_extension_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("extension_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "extension_requested_at", storage.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("extension_round", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_column("extension_round")
        batch_op.drop_column("extension_requested_at")
        batch_op.drop_column("extension_reason")
        batch_op.drop_column("pending_extension_seconds")

    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_approval_decisions_request_round_approver", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_approval_decisions_request_approver"),
            ["request_id", "approver_team", "approver_user"],
        )
        batch_op.drop_column("round")

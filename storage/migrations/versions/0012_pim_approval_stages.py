"""PIM's own approval per request (id, stage, stages); decisions made in PIM per stage

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_OLD_KEY = ["request_id", "round", "approver_team", "approver_user"]


def upgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pim_approval_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("pim_stage", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pim_stages", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "pim_stage_started_at", storage.tables.UtcDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("pim_escalated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pim_stage", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.drop_constraint("uq_approval_decisions_request_round_approver", type_="unique")
        batch_op.create_unique_constraint(
            "uq_approval_decisions_request_round_stage_approver",
            ["request_id", "round", "pim_stage", "approver_team", "approver_user"],
        )


def downgrade() -> None:
    # Decisions made in PIM are kept only as audit entries in the older schema.
    op.execute("DELETE FROM approval_decisions WHERE pim_stage > 0")
    with op.batch_alter_table("approval_decisions", schema=None) as batch_op:
        batch_op.drop_constraint(
            "uq_approval_decisions_request_round_stage_approver", type_="unique"
        )
        batch_op.create_unique_constraint("uq_approval_decisions_request_round_approver", _OLD_KEY)
        batch_op.drop_column("pim_stage")
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_column("pim_escalated")
        batch_op.drop_column("pim_stage_started_at")
        batch_op.drop_column("pim_stages")
        batch_op.drop_column("pim_stage")
        batch_op.drop_column("pim_approval_id")

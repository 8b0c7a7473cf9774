"""slack replay cache

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_slack_requests",
        sa.Column("slack_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=80), nullable=False),
        sa.Column("seen_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "slack_timestamp", "signature", name=op.f("pk_seen_slack_requests")
        ),
    )


def downgrade() -> None:
    op.drop_table("seen_slack_requests")

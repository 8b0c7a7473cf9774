"""extension idempotency key; the target each Slack message was addressed to

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-02 16:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("elevation_requests") as batch:
        batch.add_column(sa.Column("extension_key", sa.String(length=64), nullable=True))
    with op.batch_alter_table("slack_messages") as batch:
        batch.add_column(sa.Column("target", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slack_messages") as batch:
        batch.drop_column("target")
    with op.batch_alter_table("elevation_requests") as batch:
        batch.drop_column("extension_key")

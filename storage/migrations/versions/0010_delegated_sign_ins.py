"""delegated sign-ins: sign-in links in progress and sealed token caches

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signin_links",
        sa.Column("state", sa.String(length=128), nullable=False),
        sa.Column("slack_team", sa.String(length=32), nullable=False),
        sa.Column("slack_user", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("created_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sealed_flow", sa.Text(), nullable=False),
        sa.Column("claims", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("used_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_signin_links")),
    )
    with op.batch_alter_table("signin_links", schema=None) as batch_op:
        batch_op.create_index("ix_signin_links_slack_user", ["slack_team", "slack_user"])
    op.create_table(
        "delegated_sign_ins",
        sa.Column("slack_team", sa.String(length=32), nullable=False),
        sa.Column("slack_user", sa.String(length=32), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=False),
        sa.Column("entra_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("sealed_cache", sa.Text(), nullable=False),
        sa.Column("signed_in_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("acrs", sa.JSON(), nullable=False),
        sa.Column("usable_until", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "slack_team", "slack_user", "tenant", name=op.f("pk_delegated_sign_ins")
        ),
    )


def downgrade() -> None:
    op.drop_table("delegated_sign_ins")
    with op.batch_alter_table("signin_links", schema=None) as batch_op:
        batch_op.drop_index("ix_signin_links_slack_user")
    op.drop_table("signin_links")

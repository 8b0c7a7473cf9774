"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 04:27:11.571969
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "elevation_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("requester_team", sa.String(length=32), nullable=False),
        sa.Column("requester_user", sa.String(length=32), nullable=False),
        sa.Column("requester_entra_id", sa.String(length=64), nullable=True),
        sa.Column("requester_name", sa.String(length=255), nullable=True),
        sa.Column("role_definition_id", sa.String(length=64), nullable=False),
        sa.Column("role_name", sa.String(length=255), nullable=False),
        sa.Column("directory_scope_id", sa.String(length=255), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket_number", sa.String(length=100), nullable=True),
        sa.Column("ticket_system", sa.String(length=100), nullable=True),
        sa.Column("requested_start", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("approver_specs", sa.JSON(), nullable=False),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("starts_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("graph_request_id", sa.String(length=128), nullable=True),
        sa.Column("deny_reason", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("extension_count", sa.Integer(), nullable=False),
        sa.Column("remind_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", storage.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elevation_requests")),
    )
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_requests_requester",
            ["requester_team", "requester_user", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_requests_status_created_at", ["status", "created_at"], unique=False
        )
        batch_op.create_index("ix_requests_status_ends_at", ["status", "ends_at"], unique=False)
        batch_op.create_index("ix_requests_status_remind_at", ["status", "remind_at"], unique=False)
        batch_op.create_index("ix_requests_status_starts_at", ["status", "starts_at"], unique=False)

    op.create_table(
        "identity_links",
        sa.Column("slack_team", sa.String(length=32), nullable=False),
        sa.Column("slack_user", sa.String(length=32), nullable=False),
        sa.Column("entra_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("linked_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slack_team", "slack_user", name=op.f("pk_identity_links")),
    )
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_links_entra_id"), ["entra_id"], unique=False)

    op.create_table(
        "approval_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("approver_team", sa.String(length=32), nullable=False),
        sa.Column("approver_user", sa.String(length=32), nullable=False),
        sa.Column("approver_entra_id", sa.String(length=64), nullable=True),
        sa.Column("approver_name", sa.String(length=255), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["elevation_requests.id"],
            name=op.f("fk_approval_decisions_request_id_elevation_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
        sa.UniqueConstraint(
            "request_id",
            "approver_team",
            "approver_user",
            name="uq_approval_decisions_request_approver",
        ),
    )
    op.create_table(
        "slack_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("posted_at", storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["elevation_requests.id"],
            name=op.f("fk_slack_messages_request_id_elevation_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_messages")),
        sa.UniqueConstraint("channel", "ts", name="uq_slack_messages_channel_ts"),
    )
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slack_messages_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_messages_request_id"))

    op.drop_table("slack_messages")
    op.drop_table("approval_decisions")
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_links_entra_id"))

    op.drop_table("identity_links")
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_status_starts_at")
        batch_op.drop_index("ix_requests_status_remind_at")
        batch_op.drop_index("ix_requests_status_ends_at")
        batch_op.drop_index("ix_requests_status_created_at")
        batch_op.drop_index("ix_requests_requester")

    op.drop_table("elevation_requests")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")

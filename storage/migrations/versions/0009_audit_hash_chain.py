"""audit hash chain

Adds ``prev_hash`` and ``hash`` to every audit entry, chains the existing entries in id order,
and creates the single-row ``audit_head`` that appends lock.

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-02 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.tables
from storage.audit_chain import GENESIS, ChainedFields, entry_hash

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_audit = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("request_id", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("from_status", sa.String()),
    sa.column("to_status", sa.String()),
    sa.column("at", storage.tables.UtcDateTime(timezone=True)),
    sa.column("detail", sa.Text()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
_head = sa.table(
    "audit_head",
    sa.column("id", sa.Integer()),
    sa.column("last_id", sa.BigInteger()),
    sa.column("last_hash", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("last_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )

    # Backfill: chain what is there, oldest first.
    connection = op.get_bind()
    previous_id: int | None = None
    previous = GENESIS
    rows = connection.execute(sa.select(_audit).order_by(_audit.c.id)).all()
    for row in rows:
        fields = ChainedFields(
            row.request_id,
            row.actor,
            row.action,
            row.from_status,
            row.to_status,
            row.at,
            row.detail,
        )
        digest = entry_hash(fields, previous)
        connection.execute(
            sa.update(_audit).where(_audit.c.id == row.id).values(prev_hash=previous, hash=digest)
        )
        previous_id, previous = row.id, digest
    connection.execute(
        sa.insert(_head).values(
            id=1, last_id=previous_id, last_hash=previous if previous_id is not None else None
        )
    )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)


def downgrade() -> None:
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")

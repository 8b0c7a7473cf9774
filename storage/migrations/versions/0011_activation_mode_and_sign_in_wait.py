"""activation mode and tenant per request; awaiting_sign_in is a live status

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:30:00.000000

Every request stored before delegated mode was activated by the broker, in the home tenant.
The partial unique index (one live request per person and role) is rebuilt so that a request
held for the requester's sign-in counts as live.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_LIVE = "status IN ('pending_approval', 'approved', 'scheduled', 'awaiting_pim', 'active')"
LIVE = (
    "status IN ('pending_approval', 'approved', 'awaiting_sign_in', 'scheduled', "
    "'awaiting_pim', 'active')"
)
_KEY = ["requester_team", "requester_user", "role_definition_id", "directory_scope_id"]


def upgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "activation_mode", sa.String(length=16), nullable=False, server_default="broker"
            )
        )
        batch_op.add_column(sa.Column("tenant_id", sa.String(length=255), nullable=True))
        batch_op.drop_index("uq_requests_live_per_role")
        batch_op.create_index(
            "uq_requests_live_per_role",
            _KEY,
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    # A request held for a sign-in has no status the older schema knows: it failed.
    op.execute(
        "UPDATE elevation_requests SET status = 'failed', "
        "failure_reason = 'held for a sign-in when pimbot was downgraded' "
        "WHERE status = 'awaiting_sign_in'"
    )
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_requests_live_per_role")
        batch_op.create_index(
            "uq_requests_live_per_role",
            _KEY,
            unique=True,
            sqlite_where=sa.text(OLD_LIVE),
            postgresql_where=sa.text(OLD_LIVE),
        )
        batch_op.drop_column("tenant_id")
        batch_op.drop_column("activation_mode")

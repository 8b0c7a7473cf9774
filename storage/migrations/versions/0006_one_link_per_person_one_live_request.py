"""one Slack link per Entra user; one live request per person and role

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 17:10:00.000000

Refuses to run while the data breaks either rule, and says which rows to fix: silently
dropping a link or a request would lose evidence of who did what.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIVE = "status IN ('pending_approval', 'approved', 'scheduled', 'awaiting_pim', 'active')"


def upgrade() -> None:
    connection = op.get_bind()
    shared = connection.execute(
        sa.text(
            "SELECT entra_id, COUNT(*) FROM identity_links GROUP BY entra_id HAVING COUNT(*) > 1"
        )
    ).all()
    if shared:
        ids = ", ".join(row[0] for row in shared)
        raise RuntimeError(
            "Several Slack accounts are linked to the same Entra user "
            f"({ids}); delete all but one identity_links row for each, then upgrade again."
        )
    doubled = connection.execute(
        sa.text(
            "SELECT requester_team, requester_user, role_definition_id FROM elevation_requests "
            f"WHERE {LIVE} GROUP BY requester_team, requester_user, role_definition_id, "
            "directory_scope_id HAVING COUNT(*) > 1"
        )
    ).all()
    if doubled:
        who = ", ".join(f"{r[0]}/{r[1]} ({r[2]})" for r in doubled)
        raise RuntimeError(
            f"Some people have more than one live request for the same role: {who}. "
            "Cancel the extra requests, then upgrade again."
        )
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_links_entra_id"))
        batch_op.create_index(batch_op.f("ix_identity_links_entra_id"), ["entra_id"], unique=True)
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.create_index(
            "uq_requests_live_per_role",
            ["requester_team", "requester_user", "role_definition_id", "directory_scope_id"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table("elevation_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_requests_live_per_role")
    with op.batch_alter_table("identity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_links_entra_id"))
        batch_op.create_index(batch_op.f("ix_identity_links_entra_id"), ["entra_id"], unique=False)

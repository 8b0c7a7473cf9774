"""SQLAlchemy 2 table definitions. The Alembic migrations must match these exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores no zone, so it is restored on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pimbot stores UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[str]: JSON}


# The statuses of bot.domain.elevation.LIVE_STATUSES, spelled out for the partial unique index (the
# migration repeats them; a test checks they agree with the domain).
LIVE_STATUS_VALUES = (
    "pending_approval",
    "approved",
    "awaiting_sign_in",
    "scheduled",
    "awaiting_pim",
    "active",
)
LIVE_CONDITION = text("status IN ({})".format(", ".join(f"'{s}'" for s in LIVE_STATUS_VALUES)))


class RequestRow(Base):
    __tablename__ = "elevation_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    requester_team: Mapped[str] = mapped_column(String(32), nullable=False)
    requester_user: Mapped[str] = mapped_column(String(32), nullable=False)
    requester_entra_id: Mapped[str | None] = mapped_column(String(64))
    requester_name: Mapped[str | None] = mapped_column(String(255))
    role_definition_id: Mapped[str] = mapped_column(String(64), nullable=False)
    role_name: Mapped[str] = mapped_column(String(255), nullable=False)
    directory_scope_id: Mapped[str] = mapped_column(String(255), nullable=False)
    duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    ticket_number: Mapped[str | None] = mapped_column(String(100))
    ticket_system: Mapped[str | None] = mapped_column(String(100))
    requested_start: Mapped[datetime | None]
    quorum: Mapped[int] = mapped_column(Integer, nullable=False)
    approver_specs: Mapped[list[str]] = mapped_column(nullable=False)
    break_glass: Mapped[bool] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)
    decided_at: Mapped[datetime | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    graph_request_id: Mapped[str | None] = mapped_column(String(128))
    deny_reason: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    extension_count: Mapped[int] = mapped_column(Integer, nullable=False)
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    nudged_at: Mapped[datetime | None]
    # Deactivation asked for inside PIM's first five minutes waits for this moment.
    deactivate_at: Mapped[datetime | None]
    # An extension waiting for approval (the role stays active meanwhile).
    pending_extension_seconds: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_requested_at: Mapped[datetime | None]
    extension_round: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Break-glass review: due (nudge approvers) until an approver acknowledges it.
    review_due_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]
    reviewed_by_team: Mapped[str | None] = mapped_column(String(32))
    reviewed_by_user: Mapped[str | None] = mapped_column(String(32))
    reviewed_by_entra_id: Mapped[str | None] = mapped_column(String(64))
    # Idempotency key (Slack view id) of the last extension form handled.
    extension_key: Mapped[str | None] = mapped_column(String(64))
    # "broker" (pimbot's app activates) or "delegated" (the requester's own sign-in does), and
    # the tenant when it is not the home tenant.
    activation_mode: Mapped[str] = mapped_column(
        String(16), nullable=False, server_default="broker"
    )
    tenant_id: Mapped[str | None] = mapped_column(String(255))
    # Delegated mode: PIM's own approval of the activation, and its stage waiting now.
    pim_approval_id: Mapped[str | None] = mapped_column(String(128))
    pim_stage: Mapped[int | None] = mapped_column(Integer)
    pim_stages: Mapped[int | None] = mapped_column(Integer)
    pim_stage_started_at: Mapped[datetime | None]
    pim_escalated: Mapped[bool] = mapped_column(nullable=False, server_default=false())
    # Claim-and-lease for the scheduler's sweep: one replica owns a due row until lease_until.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    __table_args__ = (
        # "my requests" and "is there already a live request for this role?"
        Index("ix_requests_requester", "requester_team", "requester_user", "created_at"),
        # The sweep asks "which <status> rows are due before T?" for each timer.
        Index("ix_requests_status_remind_at", "status", "remind_at"),
        Index("ix_requests_status_ends_at", "status", "ends_at"),
        Index("ix_requests_status_starts_at", "status", "starts_at"),
        Index("ix_requests_status_created_at", "status", "created_at"),
        Index("ix_requests_status_updated_at", "status", "updated_at"),
        Index("ix_requests_status_deactivate_at", "status", "deactivate_at"),
        # Unacknowledged break-glass reviews, whatever the status (a review outlives the role).
        Index("ix_requests_review_due_at", "review_due_at"),
        # At most one live request per person and role: racing submissions cannot both land.
        Index(
            "uq_requests_live_per_role",
            "requester_team",
            "requester_user",
            "role_definition_id",
            "directory_scope_id",
            unique=True,
            sqlite_where=LIVE_CONDITION,
            postgresql_where=LIVE_CONDITION,
        ),
    )


class DecisionRow(Base):
    __tablename__ = "approval_decisions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("elevation_requests.id"), nullable=False)
    approver_team: Mapped[str] = mapped_column(String(32), nullable=False)
    approver_user: Mapped[str] = mapped_column(String(32), nullable=False)
    approver_entra_id: Mapped[str | None] = mapped_column(String(64))
    approver_name: Mapped[str | None] = mapped_column(String(255))
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(nullable=False)
    # 0 for the request itself, n for its n-th extension asked with approval.
    round: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # n > 0: made in PIM, for the n-th stage of PIM's own approval (delegated mode).
    pim_stage: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        # One decision per person per round (and PIM stage): quorum counts distinct people.
        UniqueConstraint(
            "request_id",
            "round",
            "pim_stage",
            "approver_team",
            "approver_user",
            name="uq_approval_decisions_request_round_stage_approver",
        ),
    )


class AuditRow(Base):
    """Append-only: the repository only ever inserts into this table."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(nullable=False, index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    # The hash chain (storage/audit_chain.py): sha256 over this entry's fields and prev_hash.
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditHeadRow(Base):
    """One row (id 1): the newest audit entry. Appending locks it (SELECT ... FOR UPDATE), so
    concurrent transactions on any replica chain one after the other, never off the same entry."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str | None] = mapped_column(String(64))


class IdentityLinkRow(Base):
    __tablename__ = "identity_links"

    slack_team: Mapped[str] = mapped_column(String(32), primary_key=True)
    slack_user: Mapped[str] = mapped_column(String(32), primary_key=True)
    # One Entra user has at most one Slack link: two Slack accounts of one person must never
    # count as two approvers (quorum counts people).
    entra_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True, unique=True)
    # How the link was made: "email" (first contact), "operator" (`pimbot link`) or "signin".
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    linked_at: Mapped[datetime] = mapped_column(nullable=False)


class SlackMessageRow(Base):
    __tablename__ = "slack_messages"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(
        ForeignKey("elevation_requests.id"), nullable=False, index=True
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    ts: Mapped[str] = mapped_column(String(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    posted_at: Mapped[datetime] = mapped_column(nullable=False)
    # Whom the message was addressed to (a channel id, or a user id for a DM): a retried
    # delivery updates the card it already posted for (request, target, kind).
    target: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("channel", "ts", name="uq_slack_messages_channel_ts"),)


class NotificationRow(Base):
    """The outbox: what Slack must hear about a change, written in the change's transaction.

    A crash between committing a change and telling Slack leaves an undelivered row here,
    which the sweep delivers later; nothing a person should be told is lost.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(ForeignKey("elevation_requests.id"), nullable=False)
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    delivered_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]

    __table_args__ = (Index("ix_notifications_undelivered", "delivered_at", "created_at"),)


class SeenSlackRequestRow(Base):
    """The replay cache: every verified Slack request's (timestamp, signature), shared by all
    replicas. A second request with the same pair is a replay and runs nothing. Rows older
    than Slack's five-minute window are purged: a replay that old fails verification anyway."""

    __tablename__ = "seen_slack_requests"

    slack_timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(nullable=False)


class SignInLinkRow(Base):
    """A sign-in in progress (``/pim connect`` or a step-up): usable once, until it expires.

    ``sealed_flow`` holds msal's auth-code flow (PKCE verifier, nonce) sealed with the token
    key: a database dump never yields a verifier that could redeem the code."""

    __tablename__ = "signin_links"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    slack_team: Mapped[str] = mapped_column(String(32), nullable=False)
    slack_user: Mapped[str] = mapped_column(String(32), nullable=False)
    tenant: Mapped[str] = mapped_column(String(255), nullable=False)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    sealed_flow: Mapped[str] = mapped_column(Text, nullable=False)
    claims: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(36))
    # Set by the one take() that wins; a used link is never handed out again.
    used_at: Mapped[datetime | None]

    __table_args__ = (
        # `/pim disconnect` removes every link of one Slack user.
        Index("ix_signin_links_slack_user", "slack_team", "slack_user"),
    )


class DelegatedSignInRow(Base):
    """One person's msal token cache for one tenant, sealed, and what that sign-in proved."""

    __tablename__ = "delegated_sign_ins"

    slack_team: Mapped[str] = mapped_column(String(32), primary_key=True)
    slack_user: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(255), primary_key=True)
    entra_id: Mapped[str] = mapped_column(String(64), nullable=False)
    username: Mapped[str] = mapped_column(String(255), nullable=False)
    # Access and refresh tokens live only in here, sealed; never in another column.
    sealed_cache: Mapped[str] = mapped_column(Text, nullable=False)
    signed_in_at: Mapped[datetime] = mapped_column(nullable=False)
    mfa: Mapped[bool] = mapped_column(nullable=False)
    acrs: Mapped[list[str]] = mapped_column(nullable=False)
    usable_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(nullable=False)

"""Repositories: intention-named queries over one SQLAlchemy session. No session leaves here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.domain.elevation import (
    LIVE_STATUSES,
    ActivationMode,
    ApprovalDecision,
    AuditEntry,
    Decision,
    ElevationRequest,
    Extension,
    Person,
    PimApproval,
    RequestStatus,
    Review,
    RoleRef,
    Ticket,
    Timers,
)
from bot.domain.errors import ConcurrentUpdate, LinkConflict, LiveRequestExists
from bot.domain.ports import (
    DueAfter,
    DueColumn,
    DueWork,
    Event,
    IdentityLink,
    PendingNotification,
    PostedMessage,
    TimerSpec,
    timer_spec,
)
from storage.audit_chain import (
    GENESIS,
    ChainedFields,
    ChainReport,
    StoredEntry,
    entry_hash,
    verify_chain,
)
from storage.tables import (
    AuditHeadRow,
    AuditRow,
    DecisionRow,
    IdentityLinkRow,
    NotificationRow,
    RequestRow,
    SeenSlackRequestRow,
    SlackMessageRow,
)

# Columns fixed at submission, and those a save must not touch: ``version`` (the save bumps it
# itself) and the sweep's lease (claim_due and release own it).
_FIXED = frozenset(
    {
        "id",
        "requester_team",
        "requester_user",
        "requester_entra_id",
        "requester_name",
        "role_definition_id",
        "role_name",
        "directory_scope_id",
        "duration_seconds",
        "reason",
        "ticket_number",
        "ticket_system",
        "requested_start",
        "quorum",
        "approver_specs",
        "break_glass",
        "activation_mode",
        "tenant_id",
        "created_at",
    }
)
_NOT_SAVED = frozenset({"version", "lease_owner", "lease_until"})
# Columns a save may change: every other column of the table, so a new one is saved by default.
_MUTABLE = tuple(
    column.key for column in RequestRow.__table__.columns if column.key not in _FIXED | _NOT_SAVED
)


log = logging.getLogger(__name__)


class SqlRequestRepository:
    def __init__(self, session: Session, audit: SqlAuditLog, outbox: SqlOutbox) -> None:
        self._session = session
        # Audit entries a save records join the unit of work's chain, written at its commit.
        self._audit = audit
        # The events it records go to the outbox in the same transaction.
        self._outbox = outbox

    def add(self, request: ElevationRequest) -> list[PendingNotification]:
        """Insert a new request; LiveRequestExists if one for the same role raced in first.

        Returns the notifications its events queued, for delivery after the commit."""
        request.version = 1
        self._session.add(_to_row(request))
        try:
            self._session.flush()
        except IntegrityError:
            # The partial unique index: one live request per person and role.
            raise LiveRequestExists(request.role.display_name) from None
        return self._flush_pending(request)

    def get(self, request_id: str) -> ElevationRequest | None:
        row = self._session.get(RequestRow, request_id, populate_existing=True)
        return None if row is None else self._load(row)

    def save(self, request: ElevationRequest) -> list[PendingNotification]:
        """Conditional update on ``version``: of two racing saves, exactly one wins.

        Returns the notifications its events queued, for delivery after the commit."""
        values = {name: getattr(_to_row(request), name) for name in _MUTABLE}
        result = self._session.execute(
            update(RequestRow)
            .where(RequestRow.id == request.id, RequestRow.version == request.version)
            .values(version=request.version + 1, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(request.id)
        request.version += 1
        return self._flush_pending(request)

    def list_for_requester(self, person: Person, *, limit: int = 20) -> list[ElevationRequest]:
        return self._select(
            select(RequestRow)
            .where(
                RequestRow.requester_team == person.slack_team,
                RequestRow.requester_user == person.slack_user,
            )
            .order_by(RequestRow.created_at.desc())
            .limit(limit)
        )

    def list_live_for_role(self, person: Person, role_definition_id: str) -> list[ElevationRequest]:
        return self._select(
            select(RequestRow).where(
                RequestRow.requester_team == person.slack_team,
                RequestRow.requester_user == person.slack_user,
                RequestRow.role_definition_id == role_definition_id,
                RequestRow.status.in_([s.value for s in LIVE_STATUSES]),
            )
        )

    def list_pending(self, *, limit: int = 100) -> list[ElevationRequest]:
        return self._select(
            select(RequestRow)
            .where(RequestRow.status == RequestStatus.PENDING_APPROVAL.value)
            .order_by(RequestRow.created_at)
            .limit(limit)
        )

    def list_recent_elevations(
        self, person: Person, *, since: datetime, limit: int = 5
    ) -> list[ElevationRequest]:
        granted = [RequestStatus.ACTIVE, RequestStatus.EXPIRED, RequestStatus.DEACTIVATED]
        return self._select(
            select(RequestRow)
            .where(
                RequestRow.requester_team == person.slack_team,
                RequestRow.requester_user == person.slack_user,
                RequestRow.created_at >= since,
                RequestRow.status.in_([s.value for s in granted]),
                # Granted means decided: a request that timed out (expired undecided) never was.
                RequestRow.decided_at.is_not(None),
            )
            .order_by(RequestRow.created_at.desc())
            .limit(limit)
        )

    def count_by_status(self) -> dict[str, int]:
        rows = self._session.execute(
            select(RequestRow.status, func.count()).group_by(RequestRow.status)
        ).all()
        return {status: count for status, count in rows}

    # --- claim-and-lease, for the scheduler's sweep ---------------------------------------------

    def claim_due(
        self,
        kind: DueWork,
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        limit: int = 100,
        age: timedelta = timedelta(0),
    ) -> list[str]:
        """Ids of due rows this owner now holds a lease on; other replicas skip them.

        Each claim is one conditional UPDATE, so of two sweepers racing for a row exactly one
        wins, on SQLite and PostgreSQL alike; a crashed owner's lease simply runs out.
        """
        spec = timer_spec(kind)
        due = _due_condition(spec, now, age)
        free = or_(RequestRow.lease_until.is_(None), RequestRow.lease_until < now)
        candidates = self._session.scalars(
            select(RequestRow.id).where(due, free).order_by(_due_order(spec)).limit(limit)
        ).all()
        return [
            request_id
            for request_id in candidates
            if _take_lease(self._session, RequestRow, request_id, due, free, owner, now + lease)
        ]

    def renew_lease(self, request_id: str, now: datetime, *, owner: str, lease: timedelta) -> bool:
        """Extend this owner's lease before working on the row; False if it was lost."""
        result = self._session.execute(
            update(RequestRow)
            .where(
                RequestRow.id == request_id,
                RequestRow.lease_owner == owner,
                RequestRow.lease_until >= now,
            )
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    def release(self, request_id: str, *, owner: str) -> None:
        self._session.execute(
            update(RequestRow)
            .where(RequestRow.id == request_id, RequestRow.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    def release_all(self, *, owner: str) -> int:
        """Let go of every row this owner holds (a replica shutting down)."""
        return _release_leases(self._session, RequestRow, owner)

    # --- internals ----------------------------------------------------------------------------

    def _select(self, statement: object) -> list[ElevationRequest]:
        rows = self._session.scalars(statement).all()  # type: ignore[call-overload]
        return [self._load(row) for row in rows]

    def _load(self, row: RequestRow) -> ElevationRequest:
        decisions = self._session.scalars(
            select(DecisionRow).where(DecisionRow.request_id == row.id).order_by(DecisionRow.id)
        ).all()
        return _from_row(row, [_decision_from_row(d) for d in decisions])

    def _flush_pending(self, request: ElevationRequest) -> list[PendingNotification]:
        for decision in request.new_decisions:
            self._session.add(_decision_to_row(request.id, decision))
        try:
            self._session.flush()
        except IntegrityError:
            # The same person's decision raced in from another click: that click won.
            raise ConcurrentUpdate(request.id) from None
        for entry in request.new_audit_entries:
            self._audit.add(entry)
        at = request.updated_at or request.created_at
        queued = [
            PendingNotification(self._outbox.add(request.id, event, at), request.id, event)
            for event in request.new_events
        ]
        request.new_decisions.clear()
        request.new_audit_entries.clear()
        request.new_events.clear()
        return queued


@dataclass(frozen=True)
class ChainedEntry:
    """An audit entry as written: its id and its place in the hash chain."""

    id: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditQuery:
    """What ``pimbot audit`` filters by; None means "any"."""

    person: str | None = None  # Slack user id (or team/user) or Entra object id
    role: str | None = None  # display name or role definition id
    request_id: str | None = None  # a request id or its first characters
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None  # the newest N matching entries (None: all)


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry with the names next to the ids, for people and for export."""

    id: int
    at: datetime
    request_id: str | None
    actor: str
    actor_name: str | None
    actor_entra_id: str | None
    action: str
    from_status: str | None
    to_status: str | None
    detail: str | None
    requester: str | None  # team/user
    requester_name: str | None
    requester_entra_id: str | None
    role_name: str | None
    role_definition_id: str | None
    reason: str | None
    ticket_number: str | None
    ticket_system: str | None
    prev_hash: str
    hash: str


class SqlAuditLog:
    """The append-only, hash-chained audit trail: there is deliberately no update or delete.

    ``add`` only queues an entry; the unit of work chains and inserts the queue just before it
    commits (``write_pending``), holding the lock on ``audit_head`` for as short a time as
    possible and always last, so appends never deadlock with the change they record.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending: list[AuditEntry] = []

    def add(self, entry: AuditEntry) -> None:
        self._pending.append(entry)

    def write_pending(self) -> list[ChainedEntry]:
        """Chain and insert the queued entries (inside the caller's transaction)."""
        if not self._pending:
            return []
        head = self._lock_head()
        previous = head.last_hash or GENESIS
        written: list[ChainedEntry] = []
        for entry in self._pending:
            digest = entry_hash(_chained_fields(entry), previous)
            row = _audit_to_row(entry, previous, digest)
            self._session.add(row)
            self._session.flush()
            written.append(ChainedEntry(row.id, entry, previous, digest))
            previous = digest
        head.last_id, head.last_hash = written[-1].id, previous
        self._session.flush()
        self._pending.clear()
        return written

    def discard_pending(self) -> None:
        self._pending.clear()

    def _lock_head(self) -> AuditHeadRow:
        # Two transactions that both read the head unlocked would chain off the same entry;
        # FOR UPDATE makes the second wait for the first to commit (PostgreSQL, READ COMMITTED
        # then hands it the new head). SQLite has no row locks: BEGIN IMMEDIATE (see
        # storage.database) already serialises every writer.
        def locked() -> AuditHeadRow | None:
            return self._session.scalars(
                select(AuditHeadRow)
                .where(AuditHeadRow.id == 1)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()

        head = locked()
        if head is not None:
            return head
        # Migration 0009 creates the row; it is only missing if someone deleted it.
        last = self._session.execute(
            select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1)
        ).first()
        if last is not None:
            log.error("audit: the audit_head row was missing; recreated from entry %s", last.id)
        try:
            with self._session.begin_nested():
                self._session.add(
                    AuditHeadRow(
                        id=1,
                        last_id=last.id if last else None,
                        last_hash=last.hash if last else None,
                    )
                )
        except IntegrityError:
            pass  # another transaction recreated it first
        head = locked()
        assert head is not None
        return head

    def list_for_request(self, request_id: str) -> list[AuditEntry]:
        self.write_pending()
        rows = self._session.scalars(
            select(AuditRow).where(AuditRow.request_id == request_id).order_by(AuditRow.id)
        ).all()
        return [_audit_from_row(r) for r in rows]

    def list_recent(self, *, limit: int = 100) -> list[AuditEntry]:
        self.write_pending()
        rows = self._session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))
        return [_audit_from_row(r) for r in rows]

    def search(self, query: AuditQuery) -> list[AuditRecord]:
        """Entries matching ``query``, oldest first, with the request's names, reason, ticket."""
        statement = select(AuditRow, RequestRow).outerjoin(
            RequestRow, RequestRow.id == AuditRow.request_id
        )
        for condition in _audit_conditions(query):
            statement = statement.where(condition)
        if query.limit:
            statement = statement.order_by(AuditRow.id.desc()).limit(query.limit)
        else:
            statement = statement.order_by(AuditRow.id)
        found = [(row, request) for row, request in self._session.execute(statement)]
        if query.limit:
            found.reverse()
        approvers = self._approver_names({r.request_id for r, _ in found if r.request_id})
        return [_audit_record(row, request, approvers) for row, request in found]

    def _approver_names(
        self, request_ids: set[str]
    ) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        if not request_ids:
            return {}
        rows = self._session.execute(
            select(
                DecisionRow.request_id,
                DecisionRow.approver_team,
                DecisionRow.approver_user,
                DecisionRow.approver_name,
                DecisionRow.approver_entra_id,
            ).where(DecisionRow.request_id.in_(request_ids))
        ).all()
        return {
            (request_id, f"{team}/{user}"): (name, entra_id)
            for request_id, team, user, name, entra_id in rows
        }

    def verify(self) -> ChainReport:
        """Walk the whole chain in id order (streamed) and check the head."""
        head = self._session.execute(
            select(AuditHeadRow.last_id, AuditHeadRow.last_hash).where(AuditHeadRow.id == 1)
        ).first()
        rows = self._session.execute(
            select(AuditRow).order_by(AuditRow.id).execution_options(yield_per=1000)
        ).scalars()
        try:
            entries = (
                StoredEntry(row.id, _row_fields(row), row.prev_hash, row.hash) for row in rows
            )
            return verify_chain(entries, None if head is None else (head[0], head[1]))
        finally:
            rows.close()  # verification may stop early: close PostgreSQL's server-side cursor


def _audit_conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.request_id:
        conditions.append(AuditRow.request_id.startswith(query.request_id, autoescape=True))
    if query.since is not None:
        conditions.append(AuditRow.at >= query.since)
    if query.until is not None:
        conditions.append(AuditRow.at < query.until)
    if query.role:
        role = query.role.strip()
        conditions.append(
            or_(
                func.lower(RequestRow.role_definition_id) == role.lower(),
                func.lower(RequestRow.role_name) == role.lower(),
            )
        )
    if query.person:
        person = query.person.strip()
        lowered = person.lower()
        slack_keys_of_entra_user = (
            select(IdentityLinkRow.slack_team + "/" + IdentityLinkRow.slack_user)
            .where(func.lower(IdentityLinkRow.entra_id) == lowered)
            .union(
                select(DecisionRow.approver_team + "/" + DecisionRow.approver_user).where(
                    func.lower(DecisionRow.approver_entra_id) == lowered
                ),
                select(RequestRow.requester_team + "/" + RequestRow.requester_user).where(
                    func.lower(RequestRow.requester_entra_id) == lowered
                ),
            )
        )
        conditions.append(
            or_(
                AuditRow.actor == person,
                AuditRow.actor.endswith("/" + person, autoescape=True),
                AuditRow.actor.in_(slack_keys_of_entra_user),
                RequestRow.requester_user == person,
                RequestRow.requester_team + "/" + RequestRow.requester_user == person,
                func.lower(RequestRow.requester_entra_id) == lowered,
                # Identity events name the Slack user and the Entra user in their detail.
                and_(
                    AuditRow.request_id.is_(None),
                    AuditRow.detail.contains(person, autoescape=True),
                ),
            )
        )
    return conditions


def _audit_record(
    row: AuditRow,
    request: RequestRow | None,
    approvers: dict[tuple[str, str], tuple[str | None, str | None]],
) -> AuditRecord:
    actor_name: str | None = None
    actor_entra_id: str | None = None
    requester = None
    if request is not None:
        requester = f"{request.requester_team}/{request.requester_user}"
        if row.actor == requester:
            actor_name, actor_entra_id = request.requester_name, request.requester_entra_id
        else:
            actor_name, actor_entra_id = approvers.get((request.id, row.actor), (None, None))
    return AuditRecord(
        id=row.id,
        at=row.at,
        request_id=row.request_id,
        actor=row.actor,
        actor_name=actor_name,
        actor_entra_id=actor_entra_id,
        action=row.action,
        from_status=row.from_status,
        to_status=row.to_status,
        detail=row.detail,
        requester=requester,
        requester_name=request.requester_name if request else None,
        requester_entra_id=request.requester_entra_id if request else None,
        role_name=request.role_name if request else None,
        role_definition_id=request.role_definition_id if request else None,
        reason=request.reason if request else None,
        ticket_number=request.ticket_number if request else None,
        ticket_system=request.ticket_system if request else None,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class SqlOutbox:
    """Notifications owed to Slack, each added in the same transaction as its change."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, request_id: str, event: Event, at: datetime) -> int:
        row = NotificationRow(request_id=request_id, event=event.value, created_at=at)
        self._session.add(row)
        self._session.flush()
        return row.id

    def mark_delivered(self, notification_id: int, at: datetime) -> None:
        self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == notification_id)
            .values(delivered_at=at, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    def release_all(self, *, owner: str) -> int:
        """Let go of every undelivered notification this owner holds (a replica shutting down)."""
        return _release_leases(self._session, NotificationRow, owner)

    def claim_undelivered(
        self,
        now: datetime,
        *,
        older_than: timedelta,
        owner: str,
        lease: timedelta,
        limit: int = 100,
    ) -> list[PendingNotification]:
        """Undelivered notifications whose own delivery attempt must have failed or died."""
        due = and_(
            NotificationRow.delivered_at.is_(None), NotificationRow.created_at <= now - older_than
        )
        free = or_(NotificationRow.lease_until.is_(None), NotificationRow.lease_until < now)
        rows = self._session.execute(
            select(NotificationRow.id, NotificationRow.request_id, NotificationRow.event)
            .where(due, free)
            .order_by(NotificationRow.created_at, NotificationRow.id)
            .limit(limit)
        ).all()
        return [
            PendingNotification(notification_id, request_id, Event(event))
            for notification_id, request_id, event in rows
            if _take_lease(
                self._session, NotificationRow, notification_id, due, free, owner, now + lease
            )
        ]


def _take_lease(
    session: Session,
    table: type[RequestRow] | type[NotificationRow],
    row_id: object,
    due: ColumnElement[bool],
    free: ColumnElement[bool],
    owner: str,
    until: datetime,
) -> bool:
    """One conditional UPDATE: of two replicas racing for a row exactly one gets it."""
    result = session.execute(
        update(table)
        .where(table.id == row_id, due, free)
        .values(lease_owner=owner, lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _release_leases(
    session: Session, table: type[RequestRow] | type[NotificationRow], owner: str
) -> int:
    """Clear every lease ``owner`` holds on ``table`` (a replica shutting down); how many."""
    result = session.execute(
        update(table)
        .where(table.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class SqlIdentityLinks:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, slack_team: str, slack_user: str) -> IdentityLink | None:
        row = self._session.get(IdentityLinkRow, (slack_team, slack_user))
        if row is None:
            return None
        return IdentityLink(row.slack_team, row.slack_user, row.entra_id, row.source, row.linked_at)

    def for_entra(self, entra_id: str) -> IdentityLink | None:
        row = self._session.scalars(
            select(IdentityLinkRow).where(IdentityLinkRow.entra_id == entra_id)
        ).first()
        if row is None:
            return None
        return IdentityLink(row.slack_team, row.slack_user, row.entra_id, row.source, row.linked_at)

    def link(self, link: IdentityLink, *, replace: bool = True) -> None:
        """Insert or replace this Slack user's link; LinkConflict if the Entra user has one
        (or, with ``replace=False``, if this Slack user has one already).

        Flushed at once, inside a savepoint, so a racing insert surfaces here as a conflict
        (the caller decides) rather than as an IntegrityError at commit.
        """
        other = self.for_entra(link.entra_id)
        if other is not None and (other.slack_team, other.slack_user) != (
            link.slack_team,
            link.slack_user,
        ):
            raise LinkConflict(link.entra_id, f"{other.slack_team}/{other.slack_user}")
        try:
            with self._session.begin_nested():
                row = self._session.get(IdentityLinkRow, (link.slack_team, link.slack_user))
                if row is None:
                    self._session.add(
                        IdentityLinkRow(
                            slack_team=link.slack_team,
                            slack_user=link.slack_user,
                            entra_id=link.entra_id,
                            source=link.source,
                            linked_at=link.linked_at,
                        )
                    )
                elif not replace:
                    raise LinkConflict(link.entra_id, f"{row.slack_team}/{row.slack_user}")
                else:
                    row.entra_id, row.source = link.entra_id, link.source
                    row.linked_at = link.linked_at
        except IntegrityError:
            # Someone linked first: this Slack user (a racing first contact) or this Entra user.
            self._session.expire_all()
            raise LinkConflict(link.entra_id, None) from None

    def unlink(self, slack_team: str, slack_user: str) -> bool:
        row = self._session.get(IdentityLinkRow, (slack_team, slack_user))
        if row is None:
            return False
        self._session.delete(row)
        self._session.flush()
        return True


class SqlMessageLog:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, message: PostedMessage) -> None:
        self._session.add(
            SlackMessageRow(
                request_id=message.request_id,
                channel=message.channel,
                ts=message.ts,
                kind=message.kind,
                posted_at=message.posted_at,
                target=message.target,
            )
        )

    def list_for_request(self, request_id: str) -> list[PostedMessage]:
        rows = self._session.scalars(
            select(SlackMessageRow)
            .where(SlackMessageRow.request_id == request_id)
            .order_by(SlackMessageRow.id)
        ).all()
        return [
            PostedMessage(r.request_id, r.channel, r.ts, r.kind, r.posted_at, r.target)
            for r in rows
        ]


class SqlReplayCache:
    """Conflict-safe on every backend: of N replicas inserting the same pair at once, the
    database lets exactly one row in, and only that replica is told it is the first."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def remember(self, slack_timestamp: int, signature: str, at: datetime) -> bool:
        values = {"slack_timestamp": slack_timestamp, "signature": signature, "seen_at": at}
        dialect = self._session.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            module = postgresql if dialect == "postgresql" else sqlite
            statement = (
                module.insert(SeenSlackRequestRow)
                .values(**values)
                .on_conflict_do_nothing()
                .returning(SeenSlackRequestRow.slack_timestamp)
            )
            # RETURNING, not rowcount: the ORM's insert path does not promise a rowcount.
            return self._session.execute(statement).first() is not None
        try:
            with self._session.begin_nested():
                self._session.execute(insert(SeenSlackRequestRow).values(**values))
        except IntegrityError:
            return False
        return True

    def forget_before(self, slack_timestamp: int) -> int:
        result = self._session.execute(
            delete(SeenSlackRequestRow)
            .where(SeenSlackRequestRow.slack_timestamp < slack_timestamp)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


# --- row <-> domain ------------------------------------------------------------------------------


def _due_condition(spec: TimerSpec, now: datetime, age: timedelta) -> ColumnElement[bool]:
    """``spec``'s due condition as SQL: status first, then the due column, as the indexes."""
    conditions: list[ColumnElement[bool]] = []
    if len(spec.statuses) == 1:
        conditions.append(RequestRow.status == next(iter(spec.statuses)).value)
    elif spec.statuses:
        conditions.append(RequestRow.status.in_(sorted(s.value for s in spec.statuses)))
    # ``age`` is the deployment's wait for a spec that has one (``TimerSpec.after``).
    wait = timedelta(0) if spec.after is DueAfter.AT_ONCE else age
    conditions.append(_column(spec.due_column) <= now - wait)
    if spec.unless_set is not None:
        conditions.append(_column(spec.unless_set).is_(None))
    return and_(*conditions)


def _due_order(spec: TimerSpec) -> ColumnElement[datetime | None]:
    return _column(spec.due_column)


def _column(name: DueColumn) -> ColumnElement[datetime | None]:
    column: InstrumentedAttribute[datetime | None] = getattr(RequestRow, name)
    return column.expression


def _to_row(request: ElevationRequest) -> RequestRow:
    return RequestRow(
        id=request.id,
        version=request.version,
        status=request.status.value,
        requester_team=request.requester.slack_team,
        requester_user=request.requester.slack_user,
        requester_entra_id=request.requester.entra_id,
        requester_name=request.requester.display_name,
        role_definition_id=request.role.role_definition_id,
        role_name=request.role.display_name,
        directory_scope_id=request.role.directory_scope_id,
        duration_seconds=int(request.duration.total_seconds()),
        reason=request.reason,
        ticket_number=request.ticket.number if request.ticket else None,
        ticket_system=request.ticket.system if request.ticket else None,
        requested_start=request.requested_start,
        quorum=request.quorum,
        approver_specs=list(request.approver_specs),
        break_glass=request.break_glass,
        created_at=request.created_at,
        updated_at=request.updated_at or request.created_at,
        decided_at=request.decided_at,
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        graph_request_id=request.graph_request_id,
        deny_reason=request.deny_reason,
        failure_reason=request.failure_reason,
        activation_mode=request.mode.value,
        tenant_id=request.tenant,
        **_extension_columns(request.extension),
        **_timer_columns(request.timers),
        **_review_columns(request.review),
        pim_approval_id=request.pim_approval.approval_id if request.pim_approval else None,
        pim_stage=request.pim_approval.stage if request.pim_approval else None,
        pim_stages=request.pim_approval.stages if request.pim_approval else None,
        pim_stage_started_at=(
            request.pim_approval.stage_started_at if request.pim_approval else None
        ),
        pim_escalated=request.pim_approval.escalated if request.pim_approval else False,
    )


def _from_row(row: RequestRow, decisions: list[ApprovalDecision]) -> ElevationRequest:
    return ElevationRequest(
        id=row.id,
        version=row.version,
        status=RequestStatus(row.status),
        requester=Person(
            row.requester_team, row.requester_user, row.requester_entra_id, row.requester_name
        ),
        role=RoleRef(row.role_definition_id, row.role_name, row.directory_scope_id),
        duration=timedelta(seconds=row.duration_seconds),
        reason=row.reason,
        ticket=Ticket(row.ticket_number, row.ticket_system) if row.ticket_number else None,
        requested_start=row.requested_start,
        quorum=row.quorum,
        approver_specs=tuple(row.approver_specs),
        break_glass=row.break_glass,
        created_at=row.created_at,
        updated_at=row.updated_at,
        decided_at=row.decided_at,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        graph_request_id=row.graph_request_id,
        deny_reason=row.deny_reason,
        failure_reason=row.failure_reason,
        mode=ActivationMode(row.activation_mode),
        tenant=row.tenant_id,
        extension=_extension_from(row),
        timers=_timers_from(row),
        review=_review_from(row),
        pim_approval=(
            PimApproval(
                row.pim_approval_id,
                row.pim_stage or 1,
                row.pim_stages or 1,
                row.pim_stage_started_at,
                row.pim_escalated,
            )
            if row.pim_approval_id
            else None
        ),
        decisions=decisions,
    )


# The value objects live in columns of their own (flat, so the sweep can index the due ones).


def _extension_columns(extension: Extension) -> dict[str, object]:
    return {
        "extension_count": extension.count,
        "extension_round": extension.round,
        "pending_extension_seconds": (
            int(extension.pending.total_seconds()) if extension.pending is not None else None
        ),
        "extension_reason": extension.reason,
        "extension_requested_at": extension.requested_at,
        "extension_key": extension.last_key,
    }


def _extension_from(row: RequestRow) -> Extension:
    return Extension(
        count=row.extension_count,
        round=row.extension_round,
        pending=(
            timedelta(seconds=row.pending_extension_seconds)
            if row.pending_extension_seconds is not None
            else None
        ),
        reason=row.extension_reason,
        requested_at=row.extension_requested_at,
        last_key=row.extension_key,
    )


def _timer_columns(timers: Timers) -> dict[str, object]:
    return {
        "remind_at": timers.remind_at,
        "reminded_at": timers.reminded_at,
        "nudged_at": timers.nudged_at,
        "deactivate_at": timers.deactivate_at,
        "review_due_at": timers.review_due_at,
    }


def _timers_from(row: RequestRow) -> Timers:
    return Timers(
        remind_at=row.remind_at,
        reminded_at=row.reminded_at,
        nudged_at=row.nudged_at,
        deactivate_at=row.deactivate_at,
        review_due_at=row.review_due_at,
    )


def _review_columns(review: Review | None) -> dict[str, object]:
    by = review.by if review is not None else None
    return {
        "reviewed_at": review.at if review is not None else None,
        "reviewed_by_team": by.slack_team if by else None,
        "reviewed_by_user": by.slack_user if by else None,
        "reviewed_by_entra_id": by.entra_id if by else None,
    }


def _review_from(row: RequestRow) -> Review | None:
    if row.reviewed_at is None or not (row.reviewed_by_team and row.reviewed_by_user):
        return None
    return Review(
        at=row.reviewed_at,
        by=Person(row.reviewed_by_team, row.reviewed_by_user, row.reviewed_by_entra_id),
    )


def _decision_to_row(request_id: str, decision: ApprovalDecision) -> DecisionRow:
    return DecisionRow(
        request_id=request_id,
        approver_team=decision.approver.slack_team,
        approver_user=decision.approver.slack_user,
        approver_entra_id=decision.approver.entra_id,
        approver_name=decision.approver.display_name,
        decision=decision.decision.value,
        reason=decision.reason,
        decided_at=decision.at,
        round=decision.round,
        pim_stage=decision.pim_stage,
    )


def _decision_from_row(row: DecisionRow) -> ApprovalDecision:
    approver = Person(
        row.approver_team, row.approver_user, row.approver_entra_id, row.approver_name
    )
    return ApprovalDecision(
        approver, Decision(row.decision), row.decided_at, row.reason, row.round, row.pim_stage
    )


def _chained_fields(entry: AuditEntry) -> ChainedFields:
    return ChainedFields(
        entry.request_id,
        entry.actor,
        entry.action,
        entry.from_status,
        entry.to_status,
        entry.at,
        entry.detail,
    )


def _row_fields(row: AuditRow) -> ChainedFields:
    return ChainedFields(
        row.request_id, row.actor, row.action, row.from_status, row.to_status, row.at, row.detail
    )


def _audit_to_row(entry: AuditEntry, prev_hash: str, digest: str) -> AuditRow:
    return AuditRow(
        request_id=entry.request_id,
        actor=entry.actor,
        action=entry.action,
        from_status=entry.from_status,
        to_status=entry.to_status,
        at=entry.at,
        detail=entry.detail,
        prev_hash=prev_hash,
        hash=digest,
    )


def _audit_from_row(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        row.request_id, row.actor, row.action, row.from_status, row.to_status, row.at, row.detail
    )

"""The ports the use cases talk through, in domain language.

Only domain values cross these: no httpx, Graph JSON, Slack payloads or SQLAlchemy sessions.
Real adapters live in ``bot.adapters.graph`` (PIM), ``handlers.notifier`` (Slack) and ``storage``;
the tests have fakes for each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from bot.domain.authority import ApproverSet
from bot.domain.elevation import (
    AuditEntry,
    ElevationRequest,
    Person,
    RequestStatus,
    RoleRef,
    Ticket,
)
from bot.domain.elevation import (
    Event as Event,  # re-exported: the domain records events, ports carry them
)
from bot.domain.rules import ApproverSpec, EffectiveRules, RoleSettings


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


# --- Microsoft Graph / PIM -------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    display_name: str
    user_principal_name: str
    mail: str | None = None
    # Graph returns these only when $select names them; pimbot always does. A user whose
    # accountEnabled Graph did not state is treated as disabled (fail closed).
    account_enabled: bool = True
    user_type: str = "Member"  # "Member" | "Guest"

    @property
    def is_guest(self) -> bool:
        return self.user_type.casefold() == "guest"


@dataclass(frozen=True)
class EligibleRole:
    """A role the user may activate now, directly or through a role-assignable group."""

    role: RoleRef
    member_type: str = "Direct"  # "Direct" | "Group" | "Inherited"
    via_group_id: str | None = None
    ends_at: datetime | None = None  # None: eligible permanently


@dataclass(frozen=True)
class ActiveAssignment:
    """A role the user holds now: ``Activated`` (time-bound) or ``Assigned`` (permanent or set)."""

    role: RoleRef
    assignment_type: str  # "Activated" | "Assigned"
    starts_at: datetime | None
    ends_at: datetime | None  # None: permanent
    member_type: str = "Direct"

    @property
    def is_permanent(self) -> bool:
        return self.ends_at is None


@dataclass(frozen=True)
class ActivationRequest:
    principal_id: str
    role: RoleRef
    duration: timedelta
    justification: str
    ticket: Ticket | None = None
    start: datetime | None = None  # None: now


@dataclass(frozen=True)
class ActivationResult:
    """What PIM made of a schedule request: its id, Graph status string and schedule."""

    graph_request_id: str
    status: str  # Graph's exact string: Provisioned, Granted, PendingApproval, ...
    starts_at: datetime | None
    ends_at: datetime | None
    approval_id: str | None = None  # PIM's own approval, when the request waits for one

    @property
    def is_granted(self) -> bool:
        return self.status.lower() in ("provisioned", "granted", "scheduled", "schedulecreated")


class PimClient(Protocol):
    """Everything pimbot asks Microsoft Graph PIM (Entra directory roles)."""

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        """By object id, UPN or mail; None when nobody matches."""
        ...

    def users_by_email(self, email: str) -> list[DirectoryUser]:
        """Every user whose mail or userPrincipalName is ``email`` (case-insensitive)."""
        ...

    def list_group_members(self, group_id: str) -> list[DirectoryUser]: ...

    def list_eligible_roles(self, principal_id: str) -> list[EligibleRole]: ...

    def list_active_assignments(self, principal_id: str) -> list[ActiveAssignment]: ...

    def get_role_settings(self, role: RoleRef) -> RoleSettings: ...

    def activate(self, request: ActivationRequest) -> ActivationResult: ...

    def deactivate(self, principal_id: str, role: RoleRef) -> ActivationResult: ...

    def extend(
        self,
        principal_id: str,
        role: RoleRef,
        *,
        new_end: datetime,
        justification: str,
        ticket: Ticket | None = None,
    ) -> ActivationResult: ...

    def get_request(self, graph_request_id: str) -> ActivationResult: ...


@dataclass(frozen=True)
class AccessPolicy:
    """A Conditional Access policy, as much as the person it now applies to needs to know."""

    display_name: str
    state: str  # Graph's: enabled | disabled | enabledForReportingButNotEnforced
    include_roles: tuple[str, ...]  # role template ids it targets


class AccessPolicies(Protocol):
    def for_role(self, role_definition_id: str) -> list[AccessPolicy] | None:
        """The policies that target this directory role; None when pimbot may not read them
        (no Policy.Read.All) or Graph did not answer: then nothing is said."""
        ...


@dataclass(frozen=True)
class ApprovalStageView:
    """One stage of PIM's approval as the calling approver sees it."""

    id: str
    status: str  # NotStarted | InProgress | Completed | Expired ...
    review_result: str  # NotReviewed | Approve(d) | Deny/Denied
    assigned_to_me: bool
    reviewed_by: str | None = None  # display name (or id) of who decided it
    justification: str | None = None
    reviewed_by_id: str | None = None  # their Entra object id


class PimApprovals(Protocol):
    """PIM's own approval of a request, read and decided *as an approver* (their own token):
    PIM records the approver, and applies its rules to them."""

    def approval_stages(self, approval_id: str) -> list[ApprovalStageView]: ...

    def review_stage(
        self, approval_id: str, stage_id: str, *, approve: bool, justification: str
    ) -> None:
        """NotAuthorized when PIM says the caller may not decide it; AlreadyDecided when
        another approver decided the stage first."""
        ...

    def cancel_request(self, graph_request_id: str) -> None:
        """The requester withdraws a schedule request PIM still holds for its approval."""
        ...


# --- Slack-facing side -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlackProfile:
    """What Slack's users.info says about a person, reduced to what authority needs."""

    user_id: str
    team_id: str
    enterprise_id: str | None = None
    email: str | None = None
    real_name: str | None = None
    tz: str | None = None
    deleted: bool = False
    is_bot: bool = False
    is_restricted: bool = False  # multi-channel guest
    is_ultra_restricted: bool = False  # single-channel guest
    is_stranger: bool = False  # Slack Connect: from another organisation


class SlackDirectory(Protocol):
    def user_profile(self, user_id: str) -> SlackProfile | None: ...

    def user_by_email(self, email: str) -> SlackProfile | None: ...

    def usergroup_members(self, handle: str) -> list[str]:
        """Slack user ids in the user group with this handle (empty if there is none)."""
        ...


class Notifier(Protocol):
    def request_changed(self, request: ElevationRequest, event: Event) -> None:
        """Re-render every card of ``request`` and tell the people ``event`` concerns."""
        ...


class ApproverResolver(Protocol):
    def resolve(self, specs: Sequence[ApproverSpec], rules: EffectiveRules) -> ApproverSet:
        """The people the specs name, right now (Slack users, user groups, Entra groups, PIM)."""
        ...


class RulesSource(Protocol):
    def rules_for(self, role: RoleRef) -> EffectiveRules: ...


# --- Storage ---------------------------------------------------------------------------------


class RequestRepository(Protocol):
    """``add`` and ``save`` write the request's audit entries and its new events (to the
    outbox) in the same transaction, and return the notifications they queued, in order."""

    def add(self, request: ElevationRequest) -> list[PendingNotification]: ...

    def get(self, request_id: str) -> ElevationRequest | None: ...

    def save(self, request: ElevationRequest) -> list[PendingNotification]:
        """Persist changes if nobody else saved first; ConcurrentUpdate otherwise."""
        ...

    def list_for_requester(self, person: Person, *, limit: int = 20) -> list[ElevationRequest]: ...

    def list_live_for_role(
        self, person: Person, role_definition_id: str
    ) -> list[ElevationRequest]: ...

    def list_pending(self, *, limit: int = 100) -> list[ElevationRequest]: ...

    def list_recent_elevations(
        self, person: Person, *, since: datetime, limit: int = 5
    ) -> list[ElevationRequest]: ...

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
        """Lease due rows to ``owner``; a row leased by a live owner is skipped."""
        ...

    def renew_lease(
        self, request_id: str, now: datetime, *, owner: str, lease: timedelta
    ) -> bool: ...

    def release(self, request_id: str, *, owner: str) -> None: ...

    def release_all(self, *, owner: str) -> int: ...


class DueWork(StrEnum):
    """The timers the scheduler's sweep serves; each is described once, in ``TIMERS``."""

    REMINDER = "reminder"
    EXPIRY = "expiry"
    SCHEDULED_START = "scheduled_start"
    STUCK_APPROVED = "stuck_approved"
    NUDGE = "nudge"
    PENDING_TIMEOUT = "pending_timeout"
    DEACTIVATION = "deactivation"
    BREAK_GLASS_REVIEW = "break_glass_review"
    # Delegated mode: PIM's own approval followed until it resolves; a sign-in never made.
    FOLLOW_PIM = "follow_pim"
    SIGN_IN_TIMEOUT = "sign_in_timeout"


class DueAfter(StrEnum):
    """How long after its due column a row becomes due: a fixed wait or a deployment setting."""

    AT_ONCE = "at_once"
    STUCK_AFTER = "stuck_after"  # an ``approved`` row older than this lost its activation call
    NUDGE_AFTER = "nudge_after"  # setting
    PENDING_TIMEOUT = "pending_timeout"  # setting
    SIGN_IN_TTL = "sign_in_ttl"  # setting: how long a sign-in link works


# Timestamp columns of the stored request, each readable as ``ElevationRequest.moment(name)``.
DueColumn = Literal[
    "remind_at",
    "reminded_at",
    "ends_at",
    "starts_at",
    "updated_at",
    "created_at",
    "nudged_at",
    "deactivate_at",
    "review_due_at",
    "reviewed_at",
]


@dataclass(frozen=True)
class TimerSpec:
    """One kind of due work: a row is due when its status is one of ``statuses`` (any status
    if empty), ``due_column`` + the ``after`` wait has passed, and ``unless_set`` (if any) is
    still unset. The repository builds its query from this, rows are claimed in ``due_column``
    order (the (status, due column) indexes serve it), and the scheduler dispatches on ``kind``."""

    kind: DueWork
    statuses: frozenset[RequestStatus]
    due_column: DueColumn
    after: DueAfter = DueAfter.AT_ONCE
    unless_set: DueColumn | None = None

    def due_at(self, request: ElevationRequest, wait: timedelta) -> datetime | None:
        """When ``request`` became (or becomes) due, ``wait`` being this spec's ``after``."""
        column = request.moment(self.due_column)
        return column + wait if column is not None else None


_ACTIVE = frozenset({RequestStatus.ACTIVE})
_PENDING = frozenset({RequestStatus.PENDING_APPROVAL})

# Every timer, in the order one sweep serves them.
TIMERS: tuple[TimerSpec, ...] = (
    TimerSpec(
        DueWork.STUCK_APPROVED,
        frozenset({RequestStatus.APPROVED}),
        "updated_at",
        after=DueAfter.STUCK_AFTER,
    ),
    TimerSpec(DueWork.SCHEDULED_START, frozenset({RequestStatus.SCHEDULED}), "starts_at"),
    TimerSpec(DueWork.DEACTIVATION, _ACTIVE, "deactivate_at"),
    TimerSpec(DueWork.EXPIRY, _ACTIVE, "ends_at"),
    TimerSpec(DueWork.REMINDER, _ACTIVE, "remind_at", unless_set="reminded_at"),
    TimerSpec(
        DueWork.NUDGE, _PENDING, "created_at", after=DueAfter.NUDGE_AFTER, unless_set="nudged_at"
    ),
    TimerSpec(DueWork.PENDING_TIMEOUT, _PENDING, "created_at", after=DueAfter.PENDING_TIMEOUT),
    # PIM decides in Slack, the portal or by email: asked again every sweep until it has.
    TimerSpec(DueWork.FOLLOW_PIM, frozenset({RequestStatus.AWAITING_PIM}), "updated_at"),
    TimerSpec(
        DueWork.SIGN_IN_TIMEOUT,
        frozenset({RequestStatus.AWAITING_SIGN_IN}),
        "updated_at",
        after=DueAfter.SIGN_IN_TTL,
    ),
    # Owed whatever happened to the elevation since (it may have ended long ago).
    TimerSpec(DueWork.BREAK_GLASS_REVIEW, frozenset(), "review_due_at", unless_set="reviewed_at"),
)
_SPECS = {spec.kind: spec for spec in TIMERS}


def timer_spec(kind: DueWork) -> TimerSpec:
    """The one description of ``kind``; an unknown kind is an error, never a default."""
    try:
        return _SPECS[kind]
    except KeyError:
        raise ValueError(f"no timer is described for {kind!r}") from None


class AuditLog(Protocol):
    def add(self, entry: AuditEntry) -> None: ...

    def list_for_request(self, request_id: str) -> list[AuditEntry]: ...

    def list_recent(self, *, limit: int = 100) -> list[AuditEntry]: ...


@dataclass(frozen=True)
class IdentityLink:
    slack_team: str
    slack_user: str
    entra_id: str
    source: str  # how it was made: "operator" | "email" | "signin"
    linked_at: datetime


class IdentityLinks(Protocol):
    def get(self, slack_team: str, slack_user: str) -> IdentityLink | None: ...

    def for_entra(self, entra_id: str) -> IdentityLink | None:
        """The one Slack account linked to this Entra user, if any."""
        ...

    def link(self, link: IdentityLink, *, replace: bool = True) -> None:
        """Insert or replace; LinkConflict when another Slack account holds the Entra user,
        or (``replace=False``) when this Slack user is linked already."""
        ...

    def unlink(self, slack_team: str, slack_user: str) -> bool: ...


@dataclass(frozen=True)
class PostedMessage:
    request_id: str
    channel: str
    ts: str
    kind: str  # "approver_card" | "info_card" | "requester_dm" | "reminder"
    posted_at: datetime
    target: str | None = None  # what it was addressed to: a channel id, or a user id (a DM)


class MessageLog(Protocol):
    def add(self, message: PostedMessage) -> None: ...

    def list_for_request(self, request_id: str) -> list[PostedMessage]: ...


@dataclass(frozen=True)
class PendingNotification:
    id: int
    request_id: str
    event: Event


class Outbox(Protocol):
    def add(self, request_id: str, event: Event, at: datetime) -> int: ...

    def mark_delivered(self, notification_id: int, at: datetime) -> None: ...

    def claim_undelivered(
        self,
        now: datetime,
        *,
        older_than: timedelta,
        owner: str,
        lease: timedelta,
        limit: int = 100,
    ) -> list[PendingNotification]: ...

    def release_all(self, *, owner: str) -> int: ...


class ReplayCache(Protocol):
    def remember(self, slack_timestamp: int, signature: str, at: datetime) -> bool:
        """True the first time this (timestamp, signature) is seen by any replica."""
        ...

    def forget_before(self, slack_timestamp: int) -> int:
        """Drop entries signed before ``slack_timestamp`` (Unix seconds); how many went."""
        ...


# --- delegated mode: people sign in and act as themselves --------------------------------------


@dataclass(frozen=True)
class SignInStart:
    auth_uri: str
    flow: dict[str, Any] = field(repr=False)  # the auth-code flow: holds the PKCE verifier


@dataclass(frozen=True)
class CompletedSignIn:
    """Who signed in and what the sign-in proved; ``cache`` is their token cache (secret)."""

    entra_id: str
    tenant_id: str
    username: str
    display_name: str | None
    mfa: bool
    acrs: tuple[str, ...]
    expires_at: datetime | None
    cache: str = field(repr=False)


@dataclass(frozen=True)
class DeviceCodeStart:
    """A device-code sign-in: the person enters ``user_code`` at ``verification_uri``."""

    user_code: str
    verification_uri: str
    expires_at: datetime
    flow: dict[str, Any] = field(repr=False)  # holds the device code: keep sealed


class SignInService(Protocol):
    """The identity platform's sign-ins (auth code with PKCE, or device code where pimbot has
    no public URL) and people's tokens (msal)."""

    redirect_uri: str | None  # None: no public URL, people sign in by device code

    def begin(
        self, tenant: str, *, claims: str | None = None, login_hint: str | None = None
    ) -> SignInStart: ...

    def complete(
        self, tenant: str, flow: Mapping[str, Any], params: Mapping[str, str]
    ) -> CompletedSignIn:
        """SignInFailed (words for the person) when the sign-in did not complete."""
        ...

    def access_token(
        self, tenant: str, cache_state: str, *, entra_id: str, claims: str | None = None
    ) -> tuple[str, str | None]:
        """A Graph token as the person and the cache to store back if it changed;
        SignInRequired when only a new sign-in will do."""
        ...

    def begin_device(self, tenant: str, *, claims: str | None = None) -> DeviceCodeStart: ...

    def poll_device(self, tenant: str, flow: Mapping[str, Any]) -> CompletedSignIn | None:
        """One poll: the sign-in when the person completed it, None while pending;
        SignInFailed when it was declined, expired or refused."""
        ...


class TokenSource(Protocol):
    """Bearer tokens for Graph as someone (the app, or one signed-in person)."""

    def token(self, claims_challenge: str | None = None) -> str: ...


@dataclass(frozen=True)
class SignInPrompt:
    """What the person is sent to sign in: a link (auth code), or a code to enter at
    Microsoft's device login page (device code, where pimbot has no public URL)."""

    expires_at: datetime
    url: str | None = None
    user_code: str | None = None
    verification_uri: str | None = None


class SignInMessages(Protocol):
    """What delegated mode tells a person directly (by DM), outside any request's events."""

    def sign_in_link(self, person: Person, prompt: SignInPrompt, *, why: str) -> None: ...

    def notice(self, person: Person, words: str) -> None: ...

    def signed_in(
        self, person: Person, sign_in: StoredSignIn, *, resumed: ElevationRequest | None
    ) -> None: ...


class Sealer(Protocol):
    """Authenticated encryption for what must never rest in the clear (token caches, the PKCE
    verifier of a sign-in in progress). ``open`` raises SealBroken for a forged, damaged or
    unknown-key value."""

    def seal(self, plaintext: str) -> str: ...

    def open(self, sealed: str) -> str: ...


@dataclass(frozen=True)
class SignInLink:
    """A sign-in in progress: made for one Slack user, usable once, until ``expires_at``.

    ``sealed_flow`` is the msal auth-code flow (state, PKCE verifier, nonce), sealed: the
    database never holds the verifier in the clear."""

    state: str  # random and unguessable: the ``state`` of the authorize URL
    slack_team: str
    slack_user: str
    tenant: str  # tenant id (or verified domain) the person signs in to
    purpose: str  # "connect" | "step_up"
    created_at: datetime
    expires_at: datetime
    sealed_flow: str
    claims: str | None = None  # the claims challenge this sign-in must satisfy (JSON)
    request_id: str | None = None  # the activation to retry once signed in (step-up)
    used_at: datetime | None = None


class SignInLinks(Protocol):
    def add(self, link: SignInLink) -> None: ...

    def take(self, state: str, *, at: datetime) -> SignInLink | None:
        """Mark the link used and return it as it was stored; None when unknown or used
        already (of two racing takes exactly one gets it). Expiry is the caller's to judge."""
        ...

    def delete_for(self, slack_team: str, slack_user: str) -> int:
        """Remove every link made for this Slack user, used or not; how many there were."""
        ...

    def pending_device(self) -> list[SignInLink]:
        """Device-code sign-ins not finished yet (``state`` starts with ``device-``)."""
        ...


@dataclass(frozen=True)
class StoredSignIn:
    """A person's msal token cache for one tenant, sealed, and what the sign-in proved."""

    slack_team: str
    slack_user: str
    tenant: str  # tenant id
    entra_id: str  # the signed-in user's object id in ``tenant``
    username: str  # preferred_username, e.g. ada@contoso.com
    sealed_cache: str
    signed_in_at: datetime
    mfa: bool  # the sign-in completed multi-factor authentication (amr has "mfa")
    acrs: tuple[str, ...]  # authentication contexts satisfied (acrs claim)
    usable_until: datetime | None  # best knowledge of when a fresh sign-in is needed
    updated_at: datetime


class SignIns(Protocol):
    def get(self, slack_team: str, slack_user: str, tenant: str) -> StoredSignIn | None: ...

    def list_for(self, slack_team: str, slack_user: str) -> list[StoredSignIn]: ...

    def put(self, sign_in: StoredSignIn) -> None:
        """Insert, or replace the one stored for (team, user, tenant)."""
        ...

    def delete_for(self, slack_team: str, slack_user: str) -> int:
        """Remove every stored sign-in of this Slack user; how many there were."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Rolls back unless ``commit()`` was called inside the ``with`` block."""

    # Read-only, so that an adapter may expose richer repositories than these protocols.
    @property
    def requests(self) -> RequestRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def identities(self) -> IdentityLinks: ...

    @property
    def messages(self) -> MessageLog: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def replays(self) -> ReplayCache: ...

    @property
    def signin_links(self) -> SignInLinks: ...

    @property
    def sign_ins(self) -> SignIns: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

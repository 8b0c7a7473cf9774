"""The elevation request and the one transition table that owns its lifecycle.

Nothing outside this module assigns ``status``: every change goes through an
intention-named method that checks ``TRANSITIONS`` and records an ``AuditEntry`` and the
``Event`` people must hear about (the repository writes both in the change's transaction).
Time is always a parameter (``at``); this module never reads the clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.errors import AlreadyDecided, InvalidTransition, NotAuthorized


class RequestStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    AWAITING_PIM = "awaiting_pim"
    # Delegated mode: approved, but pimbot needs a (fresh) sign-in of the requester to activate.
    AWAITING_SIGN_IN = "awaiting_sign_in"
    ACTIVE = "active"
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    DENIED = "denied"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ActivationMode(StrEnum):
    """Who asks PIM: pimbot's app (``adminAssign``) or the requester (``selfActivate``)."""

    BROKER = "broker"
    DELEGATED = "delegated"


class Action(StrEnum):
    APPROVE = "approve"  # the approval that reaches quorum
    DENY = "deny"
    CANCEL = "cancel"
    TIME_OUT = "time_out"  # nobody decided in time
    ACTIVATE = "activate"
    SCHEDULE = "schedule"
    AWAIT_PIM = "await_pim"  # delegated mode: PIM runs its own approval
    ASK_SIGN_IN = "ask_sign_in"  # delegated mode: the requester must sign in (again) first
    RESUME = "resume"  # delegated mode: they did; activation goes ahead
    FAIL = "fail"
    EXTEND = "extend"
    DEACTIVATE = "deactivate"
    EXPIRE = "expire"


class Event(StrEnum):
    """What just happened to a request; the notifier decides who hears about it and how.

    Recorded by the request's own methods (``ElevationRequest.new_events``), so a change that
    alters what a person sees cannot forget to say so.
    """

    SUBMITTED = "submitted"
    APPROVAL_RECORDED = "approval_recorded"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    SCHEDULED = "scheduled"
    # Delegated mode: the requester must sign in before pimbot can activate as them, and PIM
    # is running its own approval of the activation.
    SIGN_IN_NEEDED = "sign_in_needed"
    AWAITING_PIM = "awaiting_pim"
    ACTIVE = "active"
    FAILED = "failed"
    EXTENDED = "extended"
    # PIM's end moved outside pimbot (an admin in the portal) and pimbot adopted it.
    END_MOVED = "end_moved"
    # Delegated mode: a stage of PIM's own approval was approved; the next stage's turn.
    PIM_STAGE_APPROVED = "pim_stage_approved"
    PIM_ESCALATED = "pim_escalated"  # the stage's escalation approvers may decide now
    EXTENSION_REQUESTED = "extension_requested"
    EXTENSION_DENIED = "extension_denied"
    DEACTIVATION_SCHEDULED = "deactivation_scheduled"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    TIMED_OUT = "timed_out"
    REMINDER = "reminder"
    NUDGE = "nudge"
    # Break-glass review: approvers reminded to acknowledge, and an approver acknowledged.
    REVIEW_NUDGE = "review_nudge"
    REVIEWED = "reviewed"


S = RequestStatus
TRANSITIONS: dict[tuple[RequestStatus, Action], RequestStatus] = {
    (S.PENDING_APPROVAL, Action.APPROVE): S.APPROVED,
    (S.PENDING_APPROVAL, Action.DENY): S.DENIED,
    (S.PENDING_APPROVAL, Action.CANCEL): S.CANCELLED,
    (S.PENDING_APPROVAL, Action.TIME_OUT): S.EXPIRED,
    (S.APPROVED, Action.ACTIVATE): S.ACTIVE,
    (S.APPROVED, Action.SCHEDULE): S.SCHEDULED,
    (S.APPROVED, Action.AWAIT_PIM): S.AWAITING_PIM,
    (S.APPROVED, Action.FAIL): S.FAILED,
    (S.APPROVED, Action.ASK_SIGN_IN): S.AWAITING_SIGN_IN,
    # A second step-up (MFA first, then an authentication context) keeps waiting.
    (S.AWAITING_SIGN_IN, Action.ASK_SIGN_IN): S.AWAITING_SIGN_IN,
    (S.AWAITING_SIGN_IN, Action.RESUME): S.APPROVED,
    (S.AWAITING_SIGN_IN, Action.CANCEL): S.CANCELLED,
    (S.AWAITING_SIGN_IN, Action.FAIL): S.FAILED,
    (S.SCHEDULED, Action.ACTIVATE): S.ACTIVE,
    (S.SCHEDULED, Action.CANCEL): S.CANCELLED,
    (S.SCHEDULED, Action.FAIL): S.FAILED,
    (S.AWAITING_PIM, Action.ACTIVATE): S.ACTIVE,
    (S.AWAITING_PIM, Action.SCHEDULE): S.SCHEDULED,
    (S.AWAITING_PIM, Action.DENY): S.DENIED,
    (S.AWAITING_PIM, Action.CANCEL): S.CANCELLED,
    (S.AWAITING_PIM, Action.FAIL): S.FAILED,
    (S.ACTIVE, Action.EXTEND): S.ACTIVE,
    (S.ACTIVE, Action.DEACTIVATE): S.DEACTIVATED,
    (S.ACTIVE, Action.EXPIRE): S.EXPIRED,
}
TERMINAL_STATUSES = frozenset({S.EXPIRED, S.DEACTIVATED, S.DENIED, S.CANCELLED, S.FAILED})
# Statuses in which the role is (or is about to be) granted: no second request may overlap.
LIVE_STATUSES = frozenset(
    {S.PENDING_APPROVAL, S.APPROVED, S.AWAITING_SIGN_IN, S.SCHEDULED, S.AWAITING_PIM, S.ACTIVE}
)


def next_status(current: RequestStatus, action: Action) -> RequestStatus:
    """The status ``action`` leads to from ``current``; InvalidTransition when not allowed."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        raise InvalidTransition(
            f"This request is {current.value.replace('_', ' ')}; it cannot be {_PAST[action]} now."
        ) from None


_PAST = {
    Action.APPROVE: "approved",
    Action.DENY: "denied",
    Action.CANCEL: "cancelled",
    Action.TIME_OUT: "timed out",
    Action.ACTIVATE: "activated",
    Action.SCHEDULE: "scheduled",
    Action.AWAIT_PIM: "handed to PIM",
    Action.ASK_SIGN_IN: "held for a sign-in",
    Action.RESUME: "resumed",
    Action.FAIL: "marked failed",
    Action.EXTEND: "extended",
    Action.DEACTIVATE: "deactivated",
    Action.EXPIRE: "expired",
}


@dataclass(frozen=True)
class Person:
    """A Slack user as pimbot knows them: (team or enterprise, user id) plus their Entra id."""

    slack_team: str
    slack_user: str
    entra_id: str | None = None
    display_name: str | None = None
    # Known at click time only (use_cases.identity), never stored: an Entra guest (userType Guest)
    # and how the Slack account was linked ("email" | "operator" | "signin").
    guest: bool = field(default=False, compare=False)
    linked_by: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        return f"{self.slack_team}/{self.slack_user}"

    @property
    def mention(self) -> str:
        return f"<@{self.slack_user}>"

    def is_same_as(self, other: Person) -> bool:
        """Two Slack accounts are the same person when their Slack ids or Entra ids match."""
        if self.slack_team == other.slack_team and self.slack_user == other.slack_user:
            return True
        return self.entra_id is not None and self.entra_id == other.entra_id


SYSTEM = Person(slack_team="pimbot", slack_user="pimbot", display_name="pimbot")


@dataclass(frozen=True)
class RoleRef:
    """An Entra directory role as PIM names it."""

    role_definition_id: str
    display_name: str
    directory_scope_id: str = "/"


@dataclass(frozen=True)
class Ticket:
    number: str
    system: str | None = None


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True)
class ApprovalDecision:
    approver: Person
    decision: Decision
    at: datetime
    reason: str | None = None
    round: int = 0  # 0: the request itself; n > 0: its n-th extension
    # n > 0: the decision was made in PIM (delegated mode), for the n-th stage of its approval.
    pim_stage: int = 0


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit trail: who did what, from which state to which, why."""

    request_id: str | None
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    at: datetime
    detail: str | None = None


@dataclass(frozen=True)
class Extension:
    """Where a request's extensions stand. Replaced whole, never edited in place."""

    count: int = 0  # extensions applied to the role in PIM
    # Decision rounds opened for extensions that need approval again; the n-th round's
    # decisions carry ``round=n``.
    round: int = 0
    # The extension waiting for approval while the role stays active, and why it was asked.
    pending: timedelta | None = None
    reason: str | None = None
    requested_at: datetime | None = None
    # The idempotency key of the last extension form applied (Slack's view id): the same
    # submission arriving twice must not extend twice.
    last_key: str | None = None


@dataclass(frozen=True)
class Timers:
    """When the sweep owes a request something (``ports.TIMERS`` names the due columns), and
    when it last did. Replaced whole, never edited in place."""

    remind_at: datetime | None = None  # the pre-expiry reminder
    reminded_at: datetime | None = None
    nudged_at: datetime | None = None  # approvers last reminded of a pending request
    deactivate_at: datetime | None = None  # early end asked for before PIM allows it
    review_due_at: datetime | None = None  # next break-glass review nudge


@dataclass(frozen=True)
class PimApproval:
    """PIM's own approval of a self-activation (delegated mode): its id and where it stands.
    Stages are serial; ``stage`` is the one waiting now (1-based)."""

    approval_id: str
    stage: int = 1
    stages: int = 1
    stage_started_at: datetime | None = None  # when the current stage began
    escalated: bool = False  # the current stage's escalation approvers were brought in


@dataclass(frozen=True)
class Review:
    """An approver acknowledged a break-glass activation after the fact."""

    at: datetime
    by: Person


@dataclass
class ElevationRequest:
    """A person's request for a time-bound role activation, and everything that happened to it."""

    id: str
    requester: Person
    role: RoleRef
    duration: timedelta
    reason: str
    created_at: datetime
    ticket: Ticket | None = None
    requested_start: datetime | None = None
    quorum: int = 1
    approver_specs: tuple[str, ...] = ()
    break_glass: bool = False
    # Delegated: activated with the requester's own sign-in; ``tenant`` None is the home tenant.
    mode: ActivationMode = ActivationMode.BROKER
    tenant: str | None = None
    status: RequestStatus = RequestStatus.PENDING_APPROVAL
    version: int = 0
    updated_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    decided_at: datetime | None = None
    graph_request_id: str | None = None
    deny_reason: str | None = None
    failure_reason: str | None = None
    extension: Extension = Extension()
    timers: Timers = Timers()
    # Break-glass: an approver must acknowledge it after the fact (``timers.review_due_at``
    # nudges until one does).
    review: Review | None = None
    # Delegated mode: PIM runs its own approval of the activation (``awaiting_pim``).
    pim_approval: PimApproval | None = None
    decisions: list[ApprovalDecision] = field(default_factory=list)
    # Filled by the methods below, drained by the repository in the same transaction.
    new_audit_entries: list[AuditEntry] = field(default_factory=list)
    new_decisions: list[ApprovalDecision] = field(default_factory=list)
    # What Slack must hear about, in order: the repository writes it to the outbox.
    new_events: list[Event] = field(default_factory=list)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        requester: Person,
        role: RoleRef,
        duration: timedelta,
        reason: str,
        at: datetime,
        ticket: Ticket | None = None,
        requested_start: datetime | None = None,
        quorum: int = 1,
        approver_specs: tuple[str, ...] = (),
        break_glass: bool = False,
        mode: ActivationMode = ActivationMode.BROKER,
        tenant: str | None = None,
    ) -> ElevationRequest:
        request = cls(
            id=str(uuid.uuid4()),
            requester=requester,
            role=role,
            duration=duration,
            reason=reason,
            created_at=at,
            updated_at=at,
            ticket=ticket,
            requested_start=requested_start,
            quorum=max(1, quorum),
            approver_specs=approver_specs,
            break_glass=break_glass,
            mode=mode,
            tenant=tenant,
        )
        request._audit(requester.key, "submit", None, request.status, at, _submit_detail(request))
        request._tell(Event.SUBMITTED, at)
        return request

    # --- queries ------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def approvals(self, round: int = 0) -> list[ApprovalDecision]:
        return [d for d in self.decisions if d.decision is Decision.APPROVE and d.round == round]

    def approvals_needed(self) -> int:
        return max(0, self.quorum - _people(self.approvals()))

    def decided_by(self, round: int = 0) -> list[Person]:
        """Who decided the request (or one of its extensions), for "already decided by …"."""
        denials = [
            d.approver for d in self.decisions if d.decision is Decision.DENY and d.round == round
        ]
        return denials or [d.approver for d in self.approvals(round)]

    def has_decided(self, person: Person, round: int = 0) -> bool:
        """By Slack account or by Entra id: two accounts of one person decide once."""
        return any(
            d.round == round
            and (
                d.approver.key == person.key
                or (person.entra_id is not None and d.approver.entra_id == person.entra_id)
            )
            for d in self.decisions
        )

    def approval_lapsed(self, *, at: datetime, ttl: timedelta) -> bool:
        """An ``approved`` request not activated within ``ttl`` of its approval (or of the start
        it asked for): the yes was given for then, not for whenever activation finally works."""
        if self.status is not S.APPROVED or self.decided_at is None:
            return False
        valid_from = max(self.decided_at, self.requested_start or self.decided_at)
        return at > valid_from + ttl

    @property
    def timed_out(self) -> bool:
        """Closed by ``time_out``: it expired while nobody had decided (one place says so)."""
        return self.status is S.EXPIRED and self.decided_at is None

    def moment(self, name: str) -> datetime | None:
        """The timestamp the stored row keeps under column ``name`` (a due column of the timer
        table), wherever this object groups it."""
        if name == "reviewed_at":
            return self.review.at if self.review is not None else None
        if name in _TIMER_FIELDS:
            value: datetime | None = getattr(self.timers, name)
            return value
        if name in _OWN_MOMENTS:
            own: datetime | None = getattr(self, name)
            return own
        raise AttributeError(f"an elevation request keeps no timestamp called {name!r}")

    @property
    def extendable(self) -> bool:
        """pimbot can move the end later: broker mode only (PIM extends no self-activation)."""
        return self.status is S.ACTIVE and self.mode is ActivationMode.BROKER

    @property
    def awaits_extension_approval(self) -> bool:
        return self.status is S.ACTIVE and self.extension.pending is not None

    # --- transitions --------------------------------------------------------------------------

    def approve(self, approver: Person, *, at: datetime, note: str | None = None) -> bool:
        """Count one approval; True when it reached quorum and the request became approved."""
        self._check_decidable(approver)
        decision = ApprovalDecision(approver, Decision.APPROVE, at, note)
        self.decisions.append(decision)
        self.new_decisions.append(decision)
        if self.approvals_needed() > 0:
            counted = _people(self.approvals())
            self._audit(
                approver.key,
                "approval_recorded",
                self.status,
                self.status,
                at,
                f"{counted} of {self.quorum} approvals",
            )
            self.updated_at = at
            self._tell(Event.APPROVAL_RECORDED, at)
            return False
        self._move(Action.APPROVE, approver.key, at, note)
        self.decided_at = at
        self._tell(Event.APPROVED, at)
        return True

    def auto_approve(self, *, actor: str, at: datetime, why: str) -> None:
        """Approval without a person: the role needs none, or break-glass was invoked.

        Part of the submission (its SUBMITTED event shows the request approved): no event."""
        self._move(Action.APPROVE, actor, at, why)
        self.decided_at = at

    def deny(self, approver: Person, *, reason: str, at: datetime) -> None:
        self._check_decidable(approver)
        decision = ApprovalDecision(approver, Decision.DENY, at, reason)
        self.decisions.append(decision)
        self.new_decisions.append(decision)
        self.deny_reason = reason
        self._move(Action.DENY, approver.key, at, reason)
        self.decided_at = at
        self._tell(Event.DENIED, at)

    def cancel(self, actor: Person, *, at: datetime, reason: str | None = None) -> None:
        if actor.key != self.requester.key:
            raise NotAuthorized("Only the person who asked can cancel this request.")
        self._move(Action.CANCEL, actor.key, at, reason)
        self._tell(Event.CANCELLED, at)

    def time_out(self, *, at: datetime) -> None:
        self._move(Action.TIME_OUT, SYSTEM.key, at, "no decision before the approval deadline")
        self._tell(Event.TIMED_OUT, at)

    def schedule(
        self, *, starts_at: datetime, ends_at: datetime, graph_request_id: str | None, at: datetime
    ) -> None:
        self._move(Action.SCHEDULE, SYSTEM.key, at, f"starts {starts_at.isoformat()}")
        self.starts_at, self.ends_at = starts_at, ends_at
        self.graph_request_id = graph_request_id
        self._tell(Event.SCHEDULED, at)

    def await_pim(
        self,
        *,
        graph_request_id: str,
        at: datetime,
        approval_id: str | None = None,
        stages: int = 1,
    ) -> None:
        """Delegated mode: PIM took the activation but runs its own approval first."""
        self._move(Action.AWAIT_PIM, SYSTEM.key, at, "waiting for PIM's own approval")
        self.graph_request_id = graph_request_id
        if approval_id:
            self.pim_approval = PimApproval(approval_id, 1, max(1, stages), at)
        self._tell(Event.AWAITING_PIM, at)

    @property
    def decidable_in_pim(self) -> bool:
        """PIM waits for an approver, and pimbot knows PIM's approval to decide it from Slack."""
        return self.status is S.AWAITING_PIM and self.pim_approval is not None

    def record_pim_review(
        self, approver: Person, decision: Decision, *, at: datetime, reason: str | None = None
    ) -> None:
        """An approver decided the current stage of PIM's approval, in PIM, as themselves.

        A denial ends the request at once (PIM denies it too). Approving a stage that is not
        the last moves to the next one (its approvers get the card); the last one leaves PIM
        to provision the role, which the activation that follows records."""
        if not self.decidable_in_pim:
            raise AlreadyDecided("PIM is no longer waiting for an approval of this request.")
        if approver.is_same_as(self.requester):
            raise NotAuthorized("Nobody approves their own request.")
        assert self.pim_approval is not None
        stage = self.pim_approval.stage
        if any(d.pim_stage == stage and d.approver.is_same_as(approver) for d in self.decisions):
            raise AlreadyDecided("You already decided this stage.")
        made = ApprovalDecision(approver, decision, at, reason, 0, stage)
        self.decisions.append(made)
        self.new_decisions.append(made)
        of = f"stage {stage} of {self.pim_approval.stages}"
        if decision is Decision.DENY:
            self.deny_reason = reason
            self._move(Action.DENY, approver.key, at, f"denied in PIM ({of}): {reason or ''}")
            self.decided_at = at
            self._tell(Event.DENIED, at)
            return
        self._audit(approver.key, "pim_stage_approved", self.status, self.status, at, of)
        if stage < self.pim_approval.stages:
            self.pim_approval = replace(
                self.pim_approval, stage=stage + 1, stage_started_at=at, escalated=False
            )
            self._tell(Event.PIM_STAGE_APPROVED, at)
        else:
            self._tell(Event.APPROVAL_RECORDED, at)

    def close_in_pim(self, *, outcome: str, at: datetime) -> None:
        """PIM ended its own approval without activating: ``Denied``, ``Canceled``,
        ``TimedOut``, ``Failed``… (Graph's status string)."""
        if self.status is not S.AWAITING_PIM:
            raise InvalidTransition("Only a request waiting for PIM's approval is closed by PIM.")
        if outcome.lower() == "denied":
            self.deny_reason = "denied in PIM"
            self._move(Action.DENY, SYSTEM.key, at, "denied in PIM")
            self.decided_at = at
            self._tell(Event.DENIED, at)
            return
        reason = f"PIM ended the request without activating it ({outcome})"
        self._move(Action.FAIL, SYSTEM.key, at, reason)
        self.failure_reason = reason
        self._tell(Event.FAILED, at)

    def escalate_pim_stage(self, *, at: datetime) -> None:
        """The current stage went unanswered for its escalation time: PIM lets its escalation
        approvers decide too, and pimbot brings them the card at the same moment."""
        if not self.decidable_in_pim or self.pim_approval is None:
            raise InvalidTransition("PIM is not waiting for an approval of this request.")
        if self.pim_approval.escalated:
            raise AlreadyDecided("This stage was escalated already.")
        self.pim_approval = replace(self.pim_approval, escalated=True)
        self._audit(
            SYSTEM.key,
            "pim_stage_escalated",
            self.status,
            self.status,
            at,
            f"stage {self.pim_approval.stage} of {self.pim_approval.stages}",
        )
        self._tell(Event.PIM_ESCALATED, at)

    def ask_sign_in(self, *, why: str, at: datetime) -> None:
        """Delegated mode: activating as the requester needs a (fresh) sign-in of theirs; the
        request waits, approved, until they complete it."""
        self._move(Action.ASK_SIGN_IN, SYSTEM.key, at, why)
        self._tell(Event.SIGN_IN_NEEDED, at)

    def resume(self, actor: Person, *, at: datetime) -> None:
        """The requester signed in: activation goes ahead (its outcome is the next event)."""
        if actor.key != self.requester.key:
            raise NotAuthorized("Only the person who asked can sign in for this request.")
        self._move(Action.RESUME, actor.key, at, "signed in")

    def mark_active(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        graph_request_id: str | None,
        at: datetime,
        remind_at: datetime | None = None,
    ) -> None:
        self._move(Action.ACTIVATE, SYSTEM.key, at, f"active until {ends_at.isoformat()}")
        self.starts_at, self.ends_at = starts_at, ends_at
        self.graph_request_id = graph_request_id or self.graph_request_id
        self.timers = replace(self.timers, remind_at=remind_at, reminded_at=None)
        self._tell(Event.ACTIVE, at)

    def mark_failed(self, *, reason: str, at: datetime) -> None:
        self._move(Action.FAIL, SYSTEM.key, at, reason)
        self.failure_reason = reason
        self._tell(Event.FAILED, at)

    def extend(
        self, actor: Person, *, new_end: datetime, at: datetime, remind_at: datetime | None = None
    ) -> None:
        """pimbot extended the role in PIM (asked by the requester, or approved)."""
        self._move_end(actor, new_end=new_end, at=at, remind_at=remind_at)
        self._tell(Event.EXTENDED, at)

    def adopt_end(
        self, *, new_end: datetime, at: datetime, remind_at: datetime | None = None
    ) -> None:
        """PIM shows a later end than ours, moved outside pimbot: follow it, and say so."""
        self._move_end(SYSTEM, new_end=new_end, at=at, remind_at=remind_at)
        self._tell(Event.END_MOVED, at)

    def _move_end(
        self, actor: Person, *, new_end: datetime, at: datetime, remind_at: datetime | None
    ) -> None:
        if self.ends_at is not None and new_end <= self.ends_at:
            raise InvalidTransition("An extension must move the end time later.")
        old_end = self.ends_at
        self._move(
            Action.EXTEND,
            actor.key,
            at,
            f"end moved from {old_end.isoformat() if old_end else '?'} to {new_end.isoformat()}",
        )
        self.ends_at = new_end
        self.extension = replace(self.extension, count=self.extension.count + 1, pending=None)
        self.timers = replace(self.timers, remind_at=remind_at, reminded_at=None)

    def deactivate(self, actor: Person, *, at: datetime, reason: str | None = None) -> None:
        self._move(Action.DEACTIVATE, actor.key, at, reason)
        self.ends_at = at
        self._stop_following()
        self._tell(Event.DEACTIVATED, at)

    def expire(self, *, at: datetime, reason: str = "PIM ended the assignment") -> None:
        self._move(Action.EXPIRE, SYSTEM.key, at, reason)
        self._stop_following()
        self._tell(Event.EXPIRED, at)

    def ask_extension(self, actor: Person, *, extra: timedelta, reason: str, at: datetime) -> None:
        """The role needs approval again to run longer: open a new round of decisions."""
        next_status(self.status, Action.EXTEND)
        if self.extension.pending is not None:
            raise InvalidTransition("An extension of this role is already waiting for approval.")
        self.extension = replace(
            self.extension,
            round=self.extension.round + 1,
            pending=extra,
            reason=reason,
            requested_at=at,
        )
        self.updated_at = at
        self._audit(
            actor.key,
            "extension_requested",
            self.status,
            self.status,
            at,
            f"+{int(extra.total_seconds() // 60)}m: {reason}",
        )
        self._tell(Event.EXTENSION_REQUESTED, at)

    def approve_extension(self, approver: Person, *, at: datetime) -> bool:
        """Count one approval of the pending extension; True once it reaches quorum.

        At quorum no event: the role is not longer yet. ``extend`` says EXTENDED once PIM
        has moved the end (until then the extension stays pending, see ``extension_ready``).
        """
        self._check_extension_decidable(approver)
        decision = ApprovalDecision(approver, Decision.APPROVE, at, None, self.extension.round)
        self.decisions.append(decision)
        self.new_decisions.append(decision)
        count = _people(self.approvals(self.extension.round))
        reached = count >= self.quorum
        self._audit(
            approver.key,
            "extension_approved" if reached else "approval_recorded",
            self.status,
            self.status,
            at,
            f"extension: {count} of {self.quorum}",
        )
        self.updated_at = at
        if not reached:
            self._tell(Event.APPROVAL_RECORDED, at)
        return reached

    @property
    def extension_ready(self) -> bool:
        """The pending extension has its quorum and waits only for PIM to apply it."""
        return (
            self.awaits_extension_approval
            and _people(self.approvals(self.extension.round)) >= self.quorum
        )

    def deny_extension(self, approver: Person, *, reason: str, at: datetime) -> None:
        self._check_extension_decidable(approver)
        decision = ApprovalDecision(approver, Decision.DENY, at, reason, self.extension.round)
        self.decisions.append(decision)
        self.new_decisions.append(decision)
        self.extension = replace(self.extension, pending=None)
        self.updated_at = at
        self._audit(approver.key, "extension_denied", self.status, self.status, at, reason)
        self._tell(Event.EXTENSION_DENIED, at)

    def _check_extension_decidable(self, approver: Person) -> None:
        if not self.awaits_extension_approval:
            names = ", ".join(p.mention for p in self.decided_by(self.extension.round))
            raise AlreadyDecided(
                f"This extension was already decided by {names}."
                if names
                else "No extension of this role is waiting for a decision."
            )
        if self.has_decided(approver, self.extension.round):
            raise AlreadyDecided("You already approved this extension.")

    # --- break-glass review (after the fact; not a status change) ----------------------------

    @property
    def awaits_review(self) -> bool:
        return self.break_glass and self.review is None

    def open_review(self, *, due: datetime, at: datetime) -> None:
        """Break glass was invoked: approvers must acknowledge it; the first nudge is ``due``.

        Part of the submission, whose SUBMITTED event raises the alarm: no event of its own."""
        if not self.break_glass:
            raise InvalidTransition("Only a break-glass request is reviewed after the fact.")
        self.timers = replace(self.timers, review_due_at=due)
        self._audit(
            self.requester.key,
            "break_glass_invoked",
            self.status,
            self.status,
            at,
            f"activated without approval; review required, first reminder {due.isoformat()}",
        )

    def mark_review_nudged(self, *, next_due: datetime, at: datetime) -> None:
        if not self.awaits_review:
            raise InvalidTransition("This break-glass activation was already acknowledged.")
        self.timers = replace(self.timers, review_due_at=next_due)
        self.updated_at = at
        self._audit(SYSTEM.key, "break_glass_review_nudged", self.status, self.status, at, None)
        self._tell(Event.REVIEW_NUDGE, at)

    def acknowledge_review(self, reviewer: Person, *, at: datetime) -> None:
        """An approver has looked at the break-glass activation (authority checked by caller)."""
        if not self.break_glass:
            raise InvalidTransition("This request did not break glass; there is nothing to review.")
        if self.review is not None:
            raise AlreadyDecided(
                f"Already acknowledged by {self.review.by.mention} "
                f"at {self.review.at.strftime('%H:%M UTC')}."
            )
        self.review = Review(at=at, by=reviewer)
        self.timers = replace(self.timers, review_due_at=None)
        self.updated_at = at
        self._audit(
            reviewer.key,
            "break_glass_acknowledged",
            self.status,
            self.status,
            at,
            reviewer.entra_id,
        )
        self._tell(Event.REVIEWED, at)

    def claim_extension_key(self, key: str, *, at: datetime) -> None:
        """Record that the extension form ``key`` is being applied; a second one is refused.

        Nobody sees a claim: no event (the extension that follows has its own)."""
        if self.extension.last_key == key:
            raise AlreadyDecided(
                "That extension form was already sent and handled; "
                "open Extend again if you need more time."
            )
        next_status(self.status, Action.EXTEND)
        self.extension = replace(self.extension, last_key=key)
        self.updated_at = at

    @property
    def active_total(self) -> timedelta | None:
        """How long the role has been granted for in all, from its start to its current end."""
        if self.starts_at is None or self.ends_at is None:
            return None
        return self.ends_at - self.starts_at

    def approved_extension_rounds(self) -> list[int]:
        """The extension rounds that reached quorum, oldest first."""
        return [
            r
            for r in range(1, self.extension.round + 1)
            if len(self.approvals(r)) >= self.quorum
            and not (self.awaits_extension_approval and r == self.extension.round)
        ]

    def mark_nudged(self, *, at: datetime) -> None:
        """Approvers were reminded that the request still waits for them."""
        if self.status is not S.PENDING_APPROVAL:
            raise InvalidTransition("Only a pending request can nudge its approvers.")
        self.timers = replace(self.timers, nudged_at=at)
        self._audit(SYSTEM.key, "nudged", self.status, self.status, at, None)
        self._tell(Event.NUDGE, at)

    def schedule_deactivation(self, actor: Person, *, when: datetime, at: datetime) -> None:
        """Deactivation asked for before PIM allows it: remember when to do it."""
        next_status(self.status, Action.DEACTIVATE)
        self.timers = replace(self.timers, deactivate_at=when)
        self.updated_at = at
        self._audit(
            actor.key,
            "deactivation_scheduled",
            self.status,
            self.status,
            at,
            f"at {when.isoformat()}",
        )
        self._tell(Event.DEACTIVATION_SCHEDULED, at)

    def mark_reminded(self, *, at: datetime) -> None:
        """The pre-expiry reminder went out; not a status change, but audited."""
        # remind_at cleared: keeps the sweep's reminder range to rows still due
        self.timers = replace(self.timers, remind_at=None, reminded_at=at)
        self._audit(SYSTEM.key, "reminded", self.status, self.status, at, None)
        self._tell(Event.REMINDER, at)

    # --- internals ----------------------------------------------------------------------------

    def _check_decidable(self, approver: Person) -> None:
        if self.status is not S.PENDING_APPROVAL:
            raise AlreadyDecided(self._why_not_pending())
        if self.has_decided(approver):
            raise AlreadyDecided("You already approved this request.")

    def _why_not_pending(self) -> str:
        if self.status is S.CANCELLED:
            return "The requester cancelled this request."
        if self.timed_out:
            return "This request timed out before anyone decided."
        names = ", ".join(p.mention for p in self.decided_by())
        verb = "denied" if self.status is S.DENIED else "approved"
        return f"Already {verb} by {names}." if names else f"Already {verb} by pimbot."

    def _move(self, action: Action, actor: str, at: datetime, detail: str | None) -> None:
        target = next_status(self.status, action)
        self._audit(actor, action.value, self.status, target, at, detail)
        self.status = target
        self.updated_at = at

    def _stop_following(self) -> None:
        """The role ended: no reminder is owed and no extension can still be applied."""
        self.timers = replace(self.timers, remind_at=None)
        self.extension = replace(self.extension, pending=None)

    def _tell(self, event: Event, at: datetime) -> None:
        """Record what people must hear about; ``updated_at`` stamps its outbox row."""
        self.new_events.append(event)
        self.updated_at = at

    def _audit(
        self,
        actor: str,
        action: str,
        before: RequestStatus | None,
        after: RequestStatus | None,
        at: datetime,
        detail: str | None,
    ) -> None:
        self.new_audit_entries.append(
            AuditEntry(
                request_id=self.id,
                actor=actor,
                action=action,
                from_status=before.value if before else None,
                to_status=after.value if after else None,
                at=at,
                detail=detail,
            )
        )

    def snapshot(self) -> ElevationRequest:
        """A copy safe to hand to presentation code (no pending audit state or events)."""
        return replace(
            self,
            decisions=list(self.decisions),
            new_audit_entries=[],
            new_decisions=[],
            new_events=[],
        )


_TIMER_FIELDS = frozenset(f.name for f in fields(Timers))
_OWN_MOMENTS = frozenset(
    {"created_at", "updated_at", "requested_start", "starts_at", "ends_at", "decided_at"}
)


def _people(approvals: list[ApprovalDecision]) -> int:
    """Quorum counts people: distinct Entra object ids (the Slack key where none is known)."""
    return len({d.approver.entra_id or d.approver.key for d in approvals})


def _submit_detail(request: ElevationRequest) -> str:
    parts = [f"{request.role.display_name} for {int(request.duration.total_seconds() // 60)}m"]
    if request.break_glass:
        parts.append("break-glass")
    return ", ".join(parts)

"""Where rules come from: PIM's role settings, tightened (never loosened) by the policy file.

``RoleSettings`` is what Graph says about a role; ``RolePolicy`` is what the operator wrote;
``effective_rules`` combines them; ``validate_request`` checks a person's form against the
result and answers with one message per field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.durations import humanize
from bot.elevation import RoleRef

PIM_MAX_ACTIVATION = timedelta(hours=24)
# PIM refuses to end an activation in its first five minutes, so shorter ones make no sense.
MIN_DURATION = timedelta(minutes=5)
MAX_REASON_LENGTH = 500  # PIM's justification limit
MIN_REASON_LENGTH = 5
MAX_TICKET_LENGTH = 100
MAX_START_AHEAD = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=1)
DEFAULT_REMINDER_LEAD = timedelta(minutes=10)


@dataclass(frozen=True)
class PimApprover:
    """An approver PIM lists for a role: a user or the members of a group."""

    kind: str  # "user" | "group"
    id: str
    display_name: str | None = None


@dataclass(frozen=True)
class RoleSettings:
    """A role's PIM settings for end-user activation (Graph's roleManagementPolicy rules)."""

    role_definition_id: str
    max_duration: timedelta = timedelta(hours=8)
    justification_required: bool = True
    ticket_required: bool = False
    mfa_required: bool = False
    authentication_context: str | None = None
    approval_required: bool = False
    approval_required_for_extension: bool = False
    approvers: tuple[PimApprover, ...] = ()
    policy_id: str | None = None


class ApproverKind(StrEnum):
    SLACK_USER = "slack_user"
    SLACK_USERGROUP = "slack_usergroup"
    ENTRA_GROUP = "entra_group"
    ENTRA_USER = "entra_user"  # one Entra user by object id (the way to let a guest approve)
    PIM = "pim"


class ApproverLink(StrEnum):
    """How an approver's Slack account must be linked to Entra before they may decide."""

    ANY = "any"  # a first-contact link by Slack email is enough
    OPERATOR_OR_SIGN_IN = "operator_or_sign_in"  # `pimbot link` or `/pim connect`, not email


@dataclass(frozen=True)
class ApproverSpec:
    """Who may approve, as the policy file names them."""

    kind: ApproverKind
    value: str = ""

    def as_text(self) -> str:
        return (
            self.kind.value if self.kind is ApproverKind.PIM else f"{self.kind.value}:{self.value}"
        )

    @classmethod
    def from_text(cls, text: str) -> ApproverSpec:
        kind, _, value = text.partition(":")
        return cls(ApproverKind(kind), value)


PIM_APPROVERS = ApproverSpec(ApproverKind.PIM)


class ApprovalMode(StrEnum):
    PIM = "pim"  # follow PIM: approval when the role's settings require it
    REQUIRED = "required"  # always ask, even where PIM would not
    AUTO = "auto"  # activate at once; only honoured where PIM itself requires no approval


@dataclass(frozen=True)
class RolePolicy:
    """What the policy file says about one role (defaults already merged in)."""

    approvers: tuple[ApproverSpec, ...] = ()
    approval: ApprovalMode = ApprovalMode.PIM
    approvals_channel: str | None = None
    quorum: int = 1
    max_duration: timedelta | None = None
    ticket_required: bool = False
    ticket_pattern: str | None = None
    reminder_lead: timedelta | None = None
    extension_requires_approval: bool = False
    break_glass_requesters: tuple[str, ...] = ()
    approver_link: ApproverLink = ApproverLink.ANY


@dataclass(frozen=True)
class EffectiveRules:
    """The rules pimbot enforces for one role: PIM's floor plus the policy file's tightening."""

    role: RoleRef
    max_duration: timedelta
    max_duration_source: str  # "PIM" or "policy", to explain a refusal
    justification_required: bool
    ticket_required: bool
    ticket_pattern: str | None
    mfa_required: bool
    authentication_context: str | None
    approval_required: bool
    approval_required_for_extension: bool
    approvers: tuple[ApproverSpec, ...]
    pim_approvers: tuple[PimApprover, ...]
    quorum: int
    approvals_channel: str | None
    reminder_lead: timedelta
    break_glass_requesters: tuple[str, ...]
    approver_link: ApproverLink = ApproverLink.ANY

    @property
    def needs_user_proof(self) -> bool:
        """MFA or an authentication context: only a user's own sign-in can satisfy these."""
        return self.mfa_required or self.authentication_context is not None


def effective_rules(
    role: RoleRef, settings: RoleSettings, policy: RolePolicy, *, default_channel: str | None = None
) -> EffectiveRules:
    """Combine PIM's settings with the policy file; the stricter value always wins."""
    max_duration, source = min(settings.max_duration, PIM_MAX_ACTIVATION), "PIM"
    if policy.max_duration is not None and policy.max_duration < max_duration:
        max_duration, source = policy.max_duration, "policy"
    approval_required = settings.approval_required or policy.approval is ApprovalMode.REQUIRED
    if policy.approval is ApprovalMode.PIM and not settings.approval_required:
        approval_required = False
    return EffectiveRules(
        role=role,
        max_duration=max_duration,
        max_duration_source=source,
        justification_required=True,  # pimbot always asks why: the audit trail needs it
        ticket_required=settings.ticket_required or policy.ticket_required,
        ticket_pattern=policy.ticket_pattern,
        mfa_required=settings.mfa_required,
        authentication_context=settings.authentication_context,
        approval_required=approval_required,
        approval_required_for_extension=(
            settings.approval_required_for_extension or policy.extension_requires_approval
        ),
        approvers=policy.approvers or (PIM_APPROVERS,),
        pim_approvers=settings.approvers,
        quorum=max(1, policy.quorum),
        approvals_channel=policy.approvals_channel or default_channel,
        reminder_lead=policy.reminder_lead or DEFAULT_REMINDER_LEAD,
        break_glass_requesters=policy.break_glass_requesters,
        approver_link=policy.approver_link,
    )


class Mode(StrEnum):
    BROKER = "broker"
    DELEGATED = "delegated"


@dataclass(frozen=True)
class RequestForm:
    """What a person typed into the request modal (or the CLI), before any checks."""

    role_definition_id: str
    duration: timedelta | None
    reason: str
    ticket_number: str = ""
    ticket_system: str = ""
    start: datetime | None = None
    break_glass: bool = False


# Form field names; the Slack modal uses the same names as block ids.
ROLE, DURATION, REASON, TICKET_NUMBER, TICKET_SYSTEM, START = (
    "role",
    "duration",
    "reason",
    "ticket_number",
    "ticket_system",
    "start",
)


def validate_request(
    form: RequestForm,
    rules: EffectiveRules,
    *,
    now: datetime,
    mode: Mode = Mode.BROKER,
    requester_slack_id: str = "",
) -> dict[str, str]:
    """Every problem with the form, keyed by field; an empty dict means it may go ahead."""
    errors: dict[str, str] = {}
    role = rules.role.display_name
    if mode is Mode.BROKER and rules.needs_user_proof:
        needs = (
            "an authentication context (Conditional Access)"
            if rules.authentication_context
            else "multi-factor authentication"
        )
        errors[ROLE] = (
            f"{role} requires {needs} on activation, which pimbot cannot prove for "
            "you. Activate it in the Azure portal (My roles), or run `/pim connect` "
            "once delegated mode is enabled."
        )
    if form.break_glass and requester_slack_id not in rules.break_glass_requesters:
        errors[ROLE] = f"You are not on the break-glass list for {role}."
    if form.duration is None:
        errors[DURATION] = "Choose how long you need the role."
    elif form.duration < MIN_DURATION:
        errors[DURATION] = f"Too short: PIM needs at least {humanize(MIN_DURATION)}."
    elif form.duration > rules.max_duration:
        errors[DURATION] = (
            f"Too long: {role} allows at most {humanize(rules.max_duration)} "
            f"(set by {rules.max_duration_source})."
        )
    reason = form.reason.strip()
    if len(reason) < MIN_REASON_LENGTH:
        errors[REASON] = f"Say why you need {role} (at least {MIN_REASON_LENGTH} characters)."
    elif len(reason) > MAX_REASON_LENGTH:
        errors[REASON] = f"Keep the reason under {MAX_REASON_LENGTH} characters (PIM's limit)."
    errors.update(_ticket_errors(form, rules))
    if form.start is not None:
        if form.start < now - CLOCK_SKEW:
            errors[START] = "That start time is in the past. Leave it empty to start now."
        elif form.start > now + MAX_START_AHEAD:
            errors[START] = f"Start within {MAX_START_AHEAD.days} days from now."
    return errors


def _ticket_errors(form: RequestForm, rules: EffectiveRules) -> dict[str, str]:
    number = form.ticket_number.strip()
    role = rules.role.display_name
    if not number:
        return {TICKET_NUMBER: f"{role} needs a ticket number."} if rules.ticket_required else {}
    if len(number) > MAX_TICKET_LENGTH:
        return {TICKET_NUMBER: f"Ticket numbers are at most {MAX_TICKET_LENGTH} characters."}
    if rules.ticket_pattern and not re.fullmatch(rules.ticket_pattern, number):
        return {
            TICKET_NUMBER: f"{number!r} does not look like a ticket for {role} "
            f"(expected to match {rules.ticket_pattern})."
        }
    if len(form.ticket_system.strip()) > MAX_TICKET_LENGTH:
        return {TICKET_SYSTEM: f"Ticket system names are at most {MAX_TICKET_LENGTH} characters."}
    return {}

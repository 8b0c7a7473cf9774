"""Where rules come from: PIM's role settings, tightened (never loosened) by the policy file.

``RoleSettings`` is what Graph says about a role; ``RolePolicy`` is what the operator wrote;
``effective_rules`` combines them; ``validate_request`` checks a person's form against the
result and answers with one message per field.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.durations import humanize
from bot.domain.elevation import ActivationMode, RoleRef

PIM_MAX_ACTIVATION = timedelta(hours=24)
# PIM's five-minute minimum, the one place pimbot writes it: PIM refuses to end an activation
# in its first five minutes (ActiveDurationTooShort), so no activation, extension or policy
# limit may be shorter, and an early deactivation waits until then.
MIN_DURATION = timedelta(minutes=5)
# PIM's justification field holds 500 characters (as pimbot has always assumed; the Graph docs
# state no limit). pimbot appends the request and who approved it (``justification_suffix``)
# so that PIM's own record stands alone; the reason a person types gets a fixed share, and is
# refused beyond it rather than silently cut.
PIM_JUSTIFICATION_LIMIT = 500
# Room for "approved by <UPNs>" (shortened to "… and N more" when more approvers do not fit).
JUSTIFICATION_WHO_ROOM = 139
MIN_REASON_LENGTH = 5
# A break-glass reason is read after the fact by the approvers who review it: ask for a real one.
MIN_BREAK_GLASS_REASON_LENGTH = 20
# Deny and extension reasons stay in pimbot (cards, DMs, the audit trail); PIM never sees them.
MAX_NOTE_LENGTH = 500
MAX_TICKET_LENGTH = 100
# Ticket numbers and systems are identifiers: letters, digits, spaces and a little punctuation.
TICKET_NUMBER_CHARACTERS = re.compile(r"[\w .:/#+-]+")
TICKET_SYSTEM_CHARACTERS = re.compile(r"[\w .:/#+&()-]+")


def justification_suffix(request_id: str, who: str) -> str:
    """What pimbot appends to the reason in the justification PIM stores and audits."""
    return f" (via pimbot, request {request_id}; {who})"


MAX_REASON_LENGTH = PIM_JUSTIFICATION_LIMIT - len(
    justification_suffix("0" * 36, "x" * JUSTIFICATION_WHO_ROOM)
)


def unstorable_text(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be kept as typed (NUL and other control characters, broken
    Unicode), or None. PostgreSQL refuses NUL outright; the rest garbles cards and logs."""
    allowed = {"\n", "\t", "\r"} if multiline else set()
    for char in value:
        category = unicodedata.category(char)
        if char in allowed:
            continue
        if category == "Cc":
            return "contains a control character (such as NUL); retype it without"
        if category == "Cs":  # a lone surrogate: not encodable as UTF-8 at all
            return "contains characters that are not valid text; retype it"
    return None


def note_problem(note: str, what: str) -> str | None:
    """The one problem with a deny or extension reason, or None."""
    bad = unstorable_text(note, multiline=True)
    if bad:
        return f"The {what} {bad}."
    if len(note) > MAX_NOTE_LENGTH:
        return f"Keep the {what} to {MAX_NOTE_LENGTH} characters (it has {len(note)})."
    return None


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
class PimApprovalStage:
    """One stage of PIM's own approval (``approvalStages``; serial when there are several)."""

    approvers: tuple[PimApprover, ...]
    escalation_approvers: tuple[PimApprover, ...] = ()
    escalation_after: timedelta | None = None  # isEscalationEnabled + escalationTimeInMinutes
    times_out_after: timedelta | None = None  # approvalStageTimeOutInDays
    justification_required: bool = False  # isApproverJustificationRequired


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
    approval_stages: tuple[PimApprovalStage, ...] = ()


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
    # Break-glass on a role whose PIM settings require approval bypasses PIM itself: only where
    # the operator said so for that very role.
    break_glass_overrides_pim_approval: bool = False
    security_channel: str | None = None
    # A role that needed approval may be extended without a new round only up to this total
    # active time (``self_extension: {up_to: 2h}``); None: every extension needs approval.
    self_extension_up_to: timedelta | None = None
    approver_link: ApproverLink = ApproverLink.ANY
    # Pins how this role is activated whatever the deployment's ``auto`` would choose.
    mode: ActivationMode | None = None


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
    pim_approval_required: bool = False  # PIM's own setting, before the policy file
    break_glass_overrides_pim_approval: bool = False
    security_channel: str | None = None  # break-glass alerts, besides the approvals channel
    self_extension_up_to: timedelta | None = None
    approver_link: ApproverLink = ApproverLink.ANY
    pinned_mode: ActivationMode | None = None  # the policy file's ``mode`` for this role
    # PIM's own approval stages (serial), and whether the policy file demands an approval in
    # Slack of its own (``approval: required``) besides PIM's.
    pim_approval_stages: tuple[PimApprovalStage, ...] = ()
    approval_by_policy: bool = False

    def pim_decides(self, mode: ActivationMode) -> bool:
        """Activated as the person, PIM runs the approval itself (its approvers decide it from
        Slack, as themselves); pimbot asks for no approval of its own unless the policy file
        demands one."""
        return (
            mode is ActivationMode.DELEGATED
            and self.pim_approval_required
            and not self.approval_by_policy
        )

    def pim_stage(self, number: int) -> PimApprovalStage | None:
        """The ``number``-th stage (1-based) of PIM's approval, when PIM's settings list it."""
        if 1 <= number <= len(self.pim_approval_stages):
            return self.pim_approval_stages[number - 1]
        return None

    @property
    def needs_user_proof(self) -> bool:
        """MFA or an authentication context: only a user's own sign-in can satisfy these."""
        return self.mfa_required or self.authentication_context is not None

    def break_glass_problem(self, requester_slack_id: str) -> str | None:
        """Why this person may not break glass on this role, or None when they may."""
        role = self.role.display_name
        if requester_slack_id not in self.break_glass_requesters:
            return f"You are not on the break-glass list for {role}."
        if not self.approval_required:
            return f"{role} activates without approval; untick break glass."
        if self.pim_approval_required and not self.break_glass_overrides_pim_approval:
            return (
                f"PIM requires approval for {role}, and break glass would bypass it: the policy "
                "file does not allow that for this role. Ask for approval instead."
            )
        return None

    def offers_break_glass(self, requester_slack_id: str) -> bool:
        return bool(requester_slack_id) and self.break_glass_problem(requester_slack_id) is None


def effective_rules(
    role: RoleRef,
    settings: RoleSettings,
    policy: RolePolicy,
    *,
    default_channel: str | None = None,
    default_security_channel: str | None = None,
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
        pim_approval_required=settings.approval_required,
        break_glass_overrides_pim_approval=policy.break_glass_overrides_pim_approval,
        security_channel=policy.security_channel or default_security_channel,
        self_extension_up_to=policy.self_extension_up_to,
        approver_link=policy.approver_link,
        pinned_mode=policy.mode,
        pim_approval_stages=settings.approval_stages,
        approval_by_policy=policy.approval is ApprovalMode.REQUIRED,
    )


def extension_needs_approval(
    rules: EffectiveRules, *, approved_by_people: bool, total: timedelta
) -> bool:
    """Whether an extension to ``total`` active time must go to the approvers again.

    An elevation that needed approval was approved for what it asked, not for more: running
    longer needs a new round, unless the policy file lets the requester extend it themselves
    up to a stated total. PIM's isApprovalRequiredForExtension (or the policy's
    ``extension_requires_approval``) asks for a round every time, whatever the role.
    """
    if rules.approval_required_for_extension:
        return True
    if not (approved_by_people or rules.approval_required):
        return False
    return rules.self_extension_up_to is None or total > rules.self_extension_up_to


# How a request is activated (defined beside the request, which records it): re-exported here.
Mode = ActivationMode


class DeploymentMode(StrEnum):
    """``PIMBOT_MODE``: how this deployment activates roles.

    BROKER: always with the app's own token (roles needing MFA or an authentication context
    are refused). DELEGATED: always as the person, with their own sign-in. AUTO: as the person
    where the role's PIM settings need the person's own proof, through the broker otherwise."""

    BROKER = "broker"
    DELEGATED = "delegated"
    AUTO = "auto"


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
ROLE, DURATION, REASON, TICKET_NUMBER, TICKET_SYSTEM, START, BREAK_GLASS = (
    "role",
    "duration",
    "reason",
    "ticket_number",
    "ticket_system",
    "start",
    "break_glass",
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
    if form.break_glass:
        problem = rules.break_glass_problem(requester_slack_id)
        if problem:
            errors[BREAK_GLASS] = problem
    if form.duration is None:
        errors[DURATION] = "Choose how long you need the role."
    elif form.duration < MIN_DURATION:
        errors[DURATION] = f"Too short: PIM needs at least {humanize(MIN_DURATION)}."
    elif form.duration > rules.max_duration:
        errors[DURATION] = (
            f"Too long: {role} allows at most {humanize(rules.max_duration)} "
            f"(set by {rules.max_duration_source})."
        )
    reason_problem = _reason_problem(form, role)
    if reason_problem:
        errors[REASON] = reason_problem
    errors.update(_ticket_errors(form, rules))
    if form.start is not None:
        if form.start < now - CLOCK_SKEW:
            errors[START] = "That start time is in the past. Leave it empty to start now."
        elif form.start > now + MAX_START_AHEAD:
            errors[START] = f"Start within {MAX_START_AHEAD.days} days from now."
    return errors


def _reason_problem(form: RequestForm, role: str) -> str | None:
    reason = form.reason.strip()
    bad = unstorable_text(reason, multiline=True)
    if bad:
        return f"The reason {bad}."
    if form.break_glass and len(reason) < MIN_BREAK_GLASS_REASON_LENGTH:
        return (
            f"Break glass needs a real reason (at least {MIN_BREAK_GLASS_REASON_LENGTH} "
            "characters): the approvers review it afterwards."
        )
    if len(reason) < MIN_REASON_LENGTH:
        return f"Say why you need {role} (at least {MIN_REASON_LENGTH} characters)."
    if len(reason) > MAX_REASON_LENGTH:
        return (
            f"PIM keeps at most {MAX_REASON_LENGTH} characters of reason (this one has "
            f"{len(reason)}); shorten it."
        )
    return None


def _ticket_errors(form: RequestForm, rules: EffectiveRules) -> dict[str, str]:
    errors: dict[str, str] = {}
    number = form.ticket_number.strip()
    system = form.ticket_system.strip()
    role = rules.role.display_name
    if system:
        problem = _identifier_problem(system, "Ticket system names", TICKET_SYSTEM_CHARACTERS)
        if problem:
            errors[TICKET_SYSTEM] = problem
    if not number:
        if rules.ticket_required:
            errors[TICKET_NUMBER] = f"{role} needs a ticket number."
        elif system:
            errors[TICKET_NUMBER] = "A ticket system needs a ticket number too."
        return errors
    problem = _identifier_problem(number, "Ticket numbers", TICKET_NUMBER_CHARACTERS)
    if problem:
        errors[TICKET_NUMBER] = problem
    elif rules.ticket_pattern and not re.fullmatch(rules.ticket_pattern, number):
        errors[TICKET_NUMBER] = (
            f"{number!r} does not look like a ticket for {role} "
            f"(expected to match {rules.ticket_pattern})."
        )
    return errors


def _identifier_problem(value: str, what: str, allowed: re.Pattern[str]) -> str | None:
    if len(value) > MAX_TICKET_LENGTH:
        return f"{what} are at most {MAX_TICKET_LENGTH} characters (this one has {len(value)})."
    if unstorable_text(value):
        return f"{what} may not contain control characters (such as NUL) or broken text."
    if not allowed.fullmatch(value):
        return f"{what} may hold letters, digits, spaces and {_punctuation(allowed)} only."
    return None


def _punctuation(allowed: re.Pattern[str]) -> str:
    inner = allowed.pattern.removeprefix("[\\w ").removesuffix("]+")
    return " ".join(inner.replace("\\", ""))


def activation_mode(
    rules: EffectiveRules, *, delegated_available: bool, auto: bool
) -> ActivationMode:
    """How a request for this role is activated.

    Without delegated mode, always the broker (``validate_request`` then refuses roles that
    need the person's own proof). With it: the policy file's pin if any; else in ``auto`` the
    person for roles that require MFA or an authentication context on activation (only their
    own sign-in satisfies PIM there) and the broker for the rest; else always the person.
    """
    if not delegated_available:
        return ActivationMode.BROKER
    if rules.pinned_mode is not None:
        return rules.pinned_mode
    if not auto or rules.needs_user_proof:
        return ActivationMode.DELEGATED
    return ActivationMode.BROKER


# Claims challenges for a new sign-in (JSON, as msal's ``claims_challenge`` takes them): MFA, and
# the authentication context PIM names in its RoleAssignmentRequestAcrsValidationFailed.
MFA_CLAIMS = '{"access_token":{"amr":{"values":["mfa"]}}}'


def acrs_claims(context: str) -> str:
    return json.dumps({"access_token": {"acrs": {"essential": True, "value": context}}})

"""Use cases: one plain function per thing a person (or the scheduler) asks pimbot to do.

Each state change is one unit of work with its audit entries in the same transaction, and no
transaction is ever open during a Graph or Slack call: approve commits ``approved``, calls
Graph, then commits ``active`` or ``failed``. Slack hears about a change only after it is
committed, and a failure to tell Slack never undoes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.authority import check_is_requester, check_may_decide, is_same_person
from bot.domain.durations import humanize
from bot.domain.elevation import Action as LifecycleAction
from bot.domain.elevation import (
    ElevationRequest,
    Person,
    RequestStatus,
    RoleRef,
    Ticket,
    next_status,
)
from bot.domain.errors import (
    ActiveDurationTooShort,
    AssignmentExists,
    AssignmentNotFound,
    AuthenticationContextRequired,
    ConcurrentUpdate,
    IdentityError,
    InvalidTransition,
    LiveRequestExists,
    NotAuthorized,
    PimbotError,
    PimError,
    PimUnavailable,
    PolicyValidationFailed,
    RequestNotFound,
    SignInRequired,
    ValidationFailed,
)
from bot.domain.ports import (
    ActivationRequest,
    ActivationResult,
    ApproverResolver,
    Clock,
    EligibleRole,
    Event,
    Notifier,
    PimClient,
    RulesSource,
    StoredSignIn,
    UnitOfWork,
)
from bot.domain.rules import (
    DURATION,
    JUSTIFICATION_WHO_ROOM,
    MFA_CLAIMS,
    MIN_DURATION,
    PIM_JUSTIFICATION_LIMIT,
    ROLE,
    ApproverSpec,
    EffectiveRules,
    Mode,
    RequestForm,
    acrs_claims,
    activation_mode,
    extension_needs_approval,
    justification_suffix,
    note_problem,
    validate_request,
)
from bot.use_cases.signing_in import (
    STEP_UP,
    Delegation,
    PersonToken,
    make_sign_in_link,
    stored_sign_in,
)

log = logging.getLogger(__name__)

# A scheduled start this close to now is treated as "now" (PIM's clock and ours differ a little).
_START_SLACK = timedelta(minutes=1)
_SAVE_ATTEMPTS = 5
# PIM's selfExtend is for assignments near their end (and needs an admin's approval), not for
# activations: an activation made as the person cannot run longer, only be made again.
NO_SELF_EXTENSION = (
    "PIM does not let an activation you made yourself run longer. When {role} ends, ask for "
    "it again with `/pim request` (pimbot reminds you before it ends)."
)


@dataclass(frozen=True)
class Ports:
    """Everything the use cases talk to, built once by the composition root."""

    uow: Callable[[], UnitOfWork]
    pim: PimClient
    notifier: Notifier
    clock: Clock
    approvers: ApproverResolver
    rules: RulesSource
    # Delegated mode (people's own sign-in), when configured.
    delegation: Delegation | None = None
    # How often approvers are reminded of a break-glass activation nobody acknowledged yet.
    review_nudge_every: timedelta = timedelta(hours=1)
    # An approved request not activated within this (of its approval or requested start) fails.
    approval_ttl: timedelta = timedelta(hours=1)


# --- requesting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedRequest:
    """A form that passed every check, ready to store (see ``check_request``)."""

    form: RequestForm
    requester: Person
    role: RoleRef
    rules: EffectiveRules
    mode: Mode = Mode.BROKER


def mode_for(rules: EffectiveRules, ports: Ports) -> Mode:
    """How a request for this role will be activated in this deployment."""
    delegation = ports.delegation
    return activation_mode(
        rules,
        delegated_available=delegation is not None,
        auto=delegation.auto if delegation is not None else True,
    )


def check_request(form: RequestForm, requester: Person, *, ports: Ports) -> CheckedRequest:
    """Eligibility, current assignments and the effective rules; ValidationFailed per field.

    Kept apart from ``store_request`` so that a Slack modal can answer field errors inside its
    3-second acknowledgement and do the rest afterwards.
    """
    if requester.entra_id is None:
        raise IdentityError("Your Slack account is not linked to a Microsoft Entra account yet.")
    role = _eligible_role(form.role_definition_id, requester.entra_id, ports)
    _refuse_if_already_active(role, requester.entra_id, ports)
    rules = ports.rules.rules_for(role)
    if rules.approval_required:
        # Break glass too: someone must be able to review it afterwards.
        _require_approvers(rules, ports)
    mode = mode_for(rules, ports)
    errors = validate_request(
        form, rules, now=ports.clock.now(), mode=mode, requester_slack_id=requester.slack_user
    )
    if errors:
        raise ValidationFailed(errors)
    return CheckedRequest(form, requester, role, rules, mode)


def submit_request(form: RequestForm, requester: Person, *, ports: Ports) -> ElevationRequest:
    """Check the form against eligibility and the effective rules, then store the request."""
    return store_request(check_request(form, requester, ports=ports), ports=ports)


def store_request(checked: CheckedRequest, *, ports: Ports) -> ElevationRequest:
    """Store a checked request, route it, and activate at once when no approval is needed."""
    form, requester, role, rules = checked.form, checked.requester, checked.role, checked.rules
    assert form.duration is not None  # validate_request refuses a missing duration
    now = ports.clock.now()
    ticket = (
        Ticket(form.ticket_number.strip(), form.ticket_system.strip() or None)
        if form.ticket_number.strip()
        else None
    )
    start = form.start if form.start and form.start > now + _START_SLACK else None
    with ports.uow() as uow:
        live = uow.requests.list_live_for_role(requester, role.role_definition_id)
        if live:
            state = live[0].status.value.replace("_", " ")
            raise ValidationFailed(
                {ROLE: f"You already have a request for {role.display_name} that is {state}."}
            )
        request = ElevationRequest.submit(
            requester=requester,
            role=role,
            duration=form.duration,
            reason=form.reason.strip(),
            at=now,
            ticket=ticket,
            requested_start=start,
            quorum=rules.quorum,
            approver_specs=tuple(spec.as_text() for spec in rules.approvers),
            break_glass=form.break_glass,
            mode=checked.mode,
        )
        if form.break_glass:
            request.auto_approve(
                actor=requester.key,
                at=now,
                why="break-glass: activated without waiting for approval",
            )
            request.open_review(due=now + ports.review_nudge_every, at=now)
        elif rules.pim_decides(checked.mode):
            # Its approvers decide it in PIM, from Slack, once pimbot has asked PIM as the
            # requester: pimbot adds no approval round of its own.
            request.auto_approve(actor="pimbot", at=now, why="PIM runs its own approval")
        elif not rules.approval_required:
            request.auto_approve(actor="pimbot", at=now, why="no approval required for this role")
        try:
            queued = uow.requests.add(request)
        except LiveRequestExists:
            raced = True  # another submission of the same role committed first
        else:
            raced = False
            uow.commit()
    if raced:
        with ports.uow() as uow:
            live = uow.requests.list_live_for_role(requester, role.role_definition_id)
        state = live[0].status.value.replace("_", " ") if live else "live"
        raise ValidationFailed(
            {ROLE: f"You already have a request for {role.display_name} that is {state}."}
        )
    log.info("request submitted", extra={"request_id": request.id, "status": request.status})
    for notification in queued:
        deliver(ports, request, notification.event, notification.id)
    if request.status is RequestStatus.APPROVED:
        return activate_request(request.id, ports=ports)
    return request


def _eligible_role(role_definition_id: str, principal_id: str, ports: Ports) -> RoleRef:
    for eligible in ports.pim.list_eligible_roles(principal_id):
        if eligible.role.role_definition_id == role_definition_id:
            return eligible.role
    raise ValidationFailed(
        {
            ROLE: "You are not eligible for that role in PIM. Ask an admin to "
            "make you eligible, or pick another role."
        }
    )


def _refuse_if_already_active(role: RoleRef, principal_id: str, ports: Ports) -> None:
    for assignment in ports.pim.list_active_assignments(principal_id):
        if assignment.role.role_definition_id != role.role_definition_id:
            continue
        if assignment.is_permanent:
            raise ValidationFailed({ROLE: f"You hold {role.display_name} permanently already."})
        until = assignment.ends_at.strftime("%H:%M UTC") if assignment.ends_at else "?"
        raise ValidationFailed(
            {
                ROLE: f"{role.display_name} is already active for you until "
                f"{until}. Extend it instead of asking again."
            }
        )


# --- deciding ------------------------------------------------------------------------------------


def approve_request(request_id: str, approver: Person, *, ports: Ports) -> ElevationRequest:
    """Count ``approver``'s approval; at quorum, activate the role in PIM."""
    request = _decide(request_id, approver, ports, lambda req, at: req.approve(approver, at=at))
    if request.status is RequestStatus.APPROVED:  # this approval reached quorum
        return activate_request(request_id, ports=ports)
    return request


def deny_request(
    request_id: str, approver: Person, reason: str, *, ports: Ports
) -> ElevationRequest:
    why = _denial_reason(reason, "request")
    return _decide(
        request_id, approver, ports, lambda req, at: req.deny(approver, reason=why, at=at)
    )


def _decide(
    request_id: str,
    approver: Person,
    ports: Ports,
    decision: Callable[[ElevationRequest, datetime], object],
) -> ElevationRequest:
    """Apply an approver's decision after re-checking their authority against fresh state.

    Approvers are resolved outside the transaction (Slack and Graph lookups); the check and
    the decision run inside it, so a double click or a race becomes "already decided by …".
    The decision records its own events; what it led to is read from the returned state.
    """
    request = load_request(request_id, ports)
    approvers = ports.approvers.resolve(_specs(request), ports.rules.rules_for(request.role))
    now = ports.clock.now()

    def decide(req: ElevationRequest) -> None:
        check_may_decide(req, approver, approvers)
        decision(req, now)

    return change_request(request_id, decide, ports)


def _denial_reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise ValidationFailed({"reason": f"Say why you deny the {what}; the requester sees it."})
    problem = note_problem(reason.strip(), "reason")
    if problem:
        raise ValidationFailed({"reason": problem})
    return reason.strip()


def acknowledge_break_glass(request_id: str, reviewer: Person, *, ports: Ports) -> ElevationRequest:
    """An approver of the role acknowledges a break-glass activation after the fact.

    Authority is checked from the clicking person against the approvers resolved now, as for
    a decision: never the requester, never someone who could not have approved it.
    """
    request = load_request(request_id, ports)
    approvers = ports.approvers.resolve(_specs(request), ports.rules.rules_for(request.role))
    now = ports.clock.now()

    def acknowledge(req: ElevationRequest) -> None:
        if is_same_person(reviewer, req.requester):
            raise NotAuthorized("You cannot review your own break-glass activation.")
        if reviewer not in approvers:
            raise NotAuthorized(
                f"Only an approver of {req.role.display_name} can acknowledge this break-glass "
                "activation."
            )
        req.acknowledge_review(reviewer, at=now)

    return change_request(request_id, acknowledge, ports)


def nudge_break_glass_review(request_id: str, *, ports: Ports) -> ElevationRequest:
    """Nobody acknowledged a break-glass activation yet: remind the approvers, and again later."""
    now = ports.clock.now()
    request = load_request(request_id, ports)
    if not request.awaits_review:
        return request
    return change_request(
        request_id,
        lambda req: req.mark_review_nudged(next_due=now + ports.review_nudge_every, at=now),
        ports,
    )


def cancel_request(request_id: str, actor: Person, *, ports: Ports) -> ElevationRequest:
    """The requester withdraws a request that is not active yet. One PIM holds for its own
    approval is cancelled in PIM first, as the requester (PIM's ``cancel``), so its approvers
    are not left deciding a request nobody wants."""
    request = load_request(request_id, ports)
    check_is_requester(request, actor)
    next_status(request.status, LifecycleAction.CANCEL)  # refuse early what cannot be cancelled
    delegation = ports.delegation
    if (
        request.status is RequestStatus.AWAITING_PIM
        and delegation is not None
        and request.graph_request_id is not None
    ):
        tenant = request.tenant or delegation.home_tenant
        token = PersonToken(delegation, ports.uow, ports.clock, request.requester, tenant)
        delegation.approvals_as(token).cancel_request(request.graph_request_id)
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.cancel(actor, at=now), ports)


# --- activating and ending -----------------------------------------------------------------------


def activate_request(request_id: str, *, ports: Ports) -> ElevationRequest:
    """Turn an ``approved`` request into a PIM assignment; commit ``active`` or ``failed``."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.APPROVED:
        return request  # someone else (a racing click, the sweeper) got here first
    if request.approval_lapsed(at=ports.clock.now(), ttl=ports.approval_ttl):
        # Fail rather than reopen the decision: the requester is told plainly to ask again,
        # the approvers' card says why, and nobody is activated on a yes given hours ago.
        decided = request.decided_at.strftime("%Y-%m-%d %H:%M UTC") if request.decided_at else "?"
        return _fail(
            request_id,
            f"the approval given at {decided} lapsed before {request.role.display_name} could "
            f"be activated (approvals are good for {humanize(ports.approval_ttl)}). "
            "Ask again with `/pim request`.",
            ports,
        )
    assert request.requester.entra_id is not None
    try:
        refusal = _requester_refusal(request, ports)
    except PimUnavailable as exc:
        log.warning("activation deferred: %s", exc.user_message, extra={"request_id": request_id})
        return request  # the sweeper tries again; nothing was sent to PIM
    if refusal is not None:
        return _fail(request_id, refusal, ports)
    rules = ports.rules.rules_for(request.role)
    if request.mode is Mode.DELEGATED:
        return _activate_as_requester(request, rules, ports)
    try:
        result = ports.pim.activate(_activation(request, request.requester.entra_id, ports))
    except PimUnavailable as exc:
        # Ambiguous: the assignment may or may not exist. Leave ``approved`` for the sweeper,
        # which asks Graph before doing anything (never a second blind activation).
        log.warning("activation deferred: %s", exc.user_message, extra={"request_id": request_id})
        return request
    except AssignmentExists as exc:
        return _fail(
            request_id,
            f"{request.role.display_name} is already active for you in "
            f"PIM (activated outside pimbot?). {exc.user_message}",
            ports,
        )
    except PimError as exc:
        return _fail(request_id, exc.user_message, ports)
    return record_activation(request_id, result, rules, ports=ports)


def _activate_as_requester(
    request: ElevationRequest, rules: EffectiveRules, ports: Ports
) -> ElevationRequest:
    """Delegated mode: ``selfActivate`` with the requester's own sign-in, so PIM applies its
    MFA, authentication context and approval to them and records them as the actor. A
    sign-in that cannot satisfy the role is never tried: the requester gets a sign-in link
    asking for what is missing, and activation resumes by itself once they complete it."""
    delegation = ports.delegation
    if delegation is None:
        return _fail(
            request.id,
            f"{request.role.display_name} must be activated as you, but delegated mode is no "
            "longer configured. Ask again with `/pim request`.",
            ports,
        )
    tenant = request.tenant or delegation.home_tenant
    stored = stored_sign_in(ports.uow, request.requester, tenant)
    shortfall = _sign_in_shortfall(stored, rules, ports)
    if shortfall is not None:
        why, claims = shortfall
        return ask_requester_to_sign_in(request.id, why=why, claims=claims, ports=ports)
    assert stored is not None
    as_requester = delegation.pim_as(
        PersonToken(delegation, ports.uow, ports.clock, request.requester, tenant)
    )
    try:
        result = as_requester.activate(_activation(request, stored.entra_id, ports))
    except SignInRequired as exc:
        return ask_requester_to_sign_in(
            request.id, why=exc.user_message, claims=exc.claims, ports=ports
        )
    except AuthenticationContextRequired as exc:
        context = rules.authentication_context or "the required"
        return ask_requester_to_sign_in(
            request.id,
            why=f"PIM asks for the {context} authentication context (Conditional Access).",
            claims=exc.claims or acrs_claims(context),
            ports=ports,
        )
    except PolicyValidationFailed as exc:
        if "MfaRule" not in exc.failed_rules:
            return _fail(request.id, exc.user_message, ports)
        return ask_requester_to_sign_in(
            request.id,
            why="PIM asks for multi-factor authentication.",
            claims=MFA_CLAIMS,
            ports=ports,
        )
    except PimUnavailable as exc:
        log.warning("activation deferred: %s", exc.user_message, extra={"request_id": request.id})
        return request
    except AssignmentExists as exc:
        return _fail(
            request.id,
            f"{request.role.display_name} is already active for you in PIM (activated outside "
            f"pimbot?). {exc.user_message}",
            ports,
        )
    except PimError as exc:
        return _fail(request.id, exc.user_message, ports)
    if result.status.lower().startswith("pending"):
        now = ports.clock.now()
        stages = max(1, len(rules.pim_approval_stages))
        return change_request(
            request.id,
            lambda req: req.await_pim(
                graph_request_id=result.graph_request_id,
                at=now,
                approval_id=result.approval_id,
                stages=stages,
            ),
            ports,
        )
    return record_activation(request.id, result, rules, ports=ports)


def _sign_in_shortfall(
    stored: StoredSignIn | None, rules: EffectiveRules, ports: Ports
) -> tuple[str, str | None] | None:
    """Why the stored sign-in cannot activate this role, and the claims a new one needs."""
    role = rules.role.display_name
    context = rules.authentication_context
    wanted = acrs_claims(context) if context else MFA_CLAIMS if rules.mfa_required else None
    if stored is None:
        return f"To activate {role} as you, pimbot needs you to sign in.", wanted
    if context and context not in stored.acrs:
        return (
            f"{role} requires the {context} authentication context (Conditional Access); "
            "your last sign-in did not include it.",
            acrs_claims(context),
        )
    if rules.mfa_required and not stored.mfa:
        return (
            f"{role} requires multi-factor authentication; your last sign-in did not use it.",
            MFA_CLAIMS,
        )
    if stored.usable_until is not None and stored.usable_until <= ports.clock.now():
        return "Your pimbot sign-in has expired.", wanted
    return None


def ask_requester_to_sign_in(
    request_id: str, *, why: str, claims: str | None, ports: Ports
) -> ElevationRequest:
    """Hold the approved request for a sign-in: DM the requester a fresh single-use link
    (carrying ``claims``); completing it resumes the activation (``resume_after_sign_in``)."""
    delegation = ports.delegation
    assert delegation is not None
    request = load_request(request_id, ports)
    assert request.requester.entra_id is not None
    tenant = request.tenant or delegation.home_tenant
    prompt = make_sign_in_link(
        delegation,
        ports.uow,
        ports.clock,
        request.requester,
        tenant=tenant,
        purpose=STEP_UP,
        expect={"entra_id": request.requester.entra_id},
        request_id=request_id,
        claims=claims,
    )
    now = ports.clock.now()
    held = change_request(request_id, lambda req: req.ask_sign_in(why=why, at=now), ports)
    delegation.messages.sign_in_link(held.requester, prompt, why=why)
    return held


def resume_after_sign_in(request_id: str, person: Person, *, ports: Ports) -> ElevationRequest:
    """The requester completed the sign-in a held request asked for: activate it now."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.AWAITING_SIGN_IN:
        return request  # cancelled, failed or resumed meanwhile
    now = ports.clock.now()
    change_request(request_id, lambda req: req.resume(person, at=now), ports)
    return activate_request(request_id, ports=ports)


def _activation(request: ElevationRequest, principal_id: str, ports: Ports) -> ActivationRequest:
    return ActivationRequest(
        principal_id=principal_id,
        role=request.role,
        duration=request.duration,
        justification=_justification(request, ports),
        ticket=request.ticket,
        start=request.requested_start,
    )


def _requester_refusal(request: ElevationRequest, ports: Ports) -> str | None:
    """Approval takes time: the requester's Entra account may have been disabled or deleted
    since they asked. Checked afresh just before PIM is asked, like every click is."""
    assert request.requester.entra_id is not None
    user = ports.pim.resolve_user(request.requester.entra_id)
    if user is None:
        return (
            f"{request.role.display_name} was not activated: the requester's Microsoft Entra "
            "account no longer exists."
        )
    if not user.account_enabled:
        return (
            f"{request.role.display_name} was not activated: the requester's Microsoft Entra "
            "account is disabled."
        )
    return None


def record_activation(
    request_id: str, result: ActivationResult, rules: EffectiveRules, *, ports: Ports
) -> ElevationRequest:
    """Store what PIM answered: active now, or scheduled for a later start."""
    now = ports.clock.now()
    request = load_request(request_id, ports)
    starts_at = result.starts_at or request.requested_start or now
    ends_at = result.ends_at or starts_at + request.duration

    def store(req: ElevationRequest) -> None:
        if starts_at > now + _START_SLACK:
            req.schedule(
                starts_at=starts_at,
                ends_at=ends_at,
                graph_request_id=result.graph_request_id,
                at=now,
            )
        else:
            req.mark_active(
                starts_at=starts_at,
                ends_at=ends_at,
                graph_request_id=result.graph_request_id,
                at=now,
                remind_at=reminder_time(starts_at, ends_at, rules.reminder_lead),
            )

    return change_request(request_id, store, ports)


def reminder_time(starts_at: datetime, ends_at: datetime, lead: timedelta) -> datetime:
    """When to warn before expiry: ``lead`` ahead, but never before half of a short activation."""
    return ends_at - min(lead, (ends_at - starts_at) / 2)


def deactivate_request(
    request_id: str, actor: Person, *, ports: Ports, reason: str | None = None
) -> ElevationRequest:
    """End an active elevation early in PIM, then record it.

    PIM refuses to end an activation in its first five minutes; asked earlier, pimbot
    schedules the deactivation for the first moment PIM allows and says so.
    """
    request = load_request(request_id, ports)
    check_is_requester(request, actor)
    next_status(request.status, LifecycleAction.DEACTIVATE)  # refuse early if not active
    assert request.requester.entra_id is not None
    now = ports.clock.now()
    earliest = (request.starts_at or now) + MIN_DURATION
    if now < earliest:
        return _schedule_deactivation(request_id, actor, earliest, ports)
    detail = reason or "ended early by the requester"
    try:
        _end_in_pim(request, ports)
    except AssignmentNotFound:
        detail = "PIM no longer had the assignment"
    except ActiveDurationTooShort:
        # Our clock ran ahead of PIM's: try again shortly after the boundary.
        return _schedule_deactivation(request_id, actor, now + timedelta(minutes=1), ports)
    now = ports.clock.now()
    request = change_request(
        request_id,
        lambda req: req.deactivate(actor, at=now, reason=detail),
        ports,
    )
    return request


def _end_in_pim(request: ElevationRequest, ports: Ports) -> None:
    """End the role in PIM the way it was activated: ``selfDeactivate`` as the requester in
    delegated mode. Ending access early must not wait for a sign-in: without a usable one,
    the app ends it (``adminRemove``) where it holds the permission."""
    assert request.requester.entra_id is not None
    delegation = ports.delegation
    if request.mode is Mode.DELEGATED and delegation is not None:
        tenant = request.tenant or delegation.home_tenant
        token = PersonToken(delegation, ports.uow, ports.clock, request.requester, tenant)
        try:
            delegation.pim_as(token).deactivate(request.requester.entra_id, request.role)
            return
        except SignInRequired:
            log.info(
                "no usable sign-in to deactivate as the requester; ending it as the app",
                extra={"request_id": request.id},
            )
    ports.pim.deactivate(request.requester.entra_id, request.role)


def _schedule_deactivation(
    request_id: str, actor: Person, when: datetime, ports: Ports
) -> ElevationRequest:
    now = ports.clock.now()
    request = change_request(
        request_id,
        lambda req: req.schedule_deactivation(actor, when=when, at=now),
        ports,
    )
    return request


def extend_request(
    request_id: str,
    actor: Person,
    extra: timedelta,
    *,
    ports: Ports,
    reason: str = "",
    key: str | None = None,
) -> ElevationRequest:
    """Move the end of an active elevation later, with no gap in access.

    A role that needed approval was approved for what it asked: running longer goes to the
    approvers again (a new round; the role stays active meanwhile), unless the policy file's
    ``self_extension`` allows this total. PIM's isApprovalRequiredForExtension or the policy's
    ``extension_requires_approval`` send every extension to them. ``key`` (the Slack form's
    view id) makes a replayed submission a no-op answered "already sent".
    """
    request = load_request(request_id, ports)
    check_is_requester(request, actor)
    next_status(request.status, LifecycleAction.EXTEND)
    if not request.extendable:
        raise InvalidTransition(NO_SELF_EXTENSION.format(role=request.role.display_name))
    rules = ports.rules.rules_for(request.role)
    now = ports.clock.now()
    _check_extension_bounds(request, extra, rules, now)
    assert request.ends_at is not None
    needs_approval = extension_needs_approval(
        rules,
        approved_by_people=bool(request.approvals()),
        total=request.ends_at + extra - (request.starts_at or now),
    )
    if needs_approval:
        _require_approvers(rules, ports)
    if key is not None:
        # Claimed in its own conditional save before Graph is called: of two identical
        # submissions racing, exactly one gets past this point.
        change_request(request_id, lambda req: req.claim_extension_key(key, at=now), ports)
    if needs_approval:
        why = reason.strip() or request.reason
        request = change_request(
            request_id,
            lambda req: req.ask_extension(actor, extra=extra, reason=why, at=now),
            ports,
        )
        return request
    return _apply_extension(request_id, actor, extra, rules, ports)


def approve_extension(request_id: str, approver: Person, *, ports: Ports) -> ElevationRequest:
    """Count an approval of a pending extension; at quorum, extend the role in PIM."""
    request = _decide(
        request_id, approver, ports, lambda req, at: req.approve_extension(approver, at=at)
    )
    if not request.extension_ready:  # not this approval's quorum (EXTENDED comes from PIM)
        return request
    assert request.extension.pending is not None
    rules = ports.rules.rules_for(request.role)
    return _apply_extension(request_id, approver, request.extension.pending, rules, ports)


def deny_extension(
    request_id: str, approver: Person, reason: str, *, ports: Ports
) -> ElevationRequest:
    why = _denial_reason(reason, "extension")
    return _decide(
        request_id, approver, ports, lambda req, at: req.deny_extension(approver, reason=why, at=at)
    )


def _require_approvers(rules: EffectiveRules, ports: Ports) -> None:
    """Refuse up front what nobody could ever approve, instead of letting it wait forever."""
    if not ports.approvers.resolve(rules.approvers, rules):
        raise ValidationFailed(
            {
                ROLE: f"Nobody can approve {rules.role.display_name}: PIM lists no approvers "
                "for it and the policy file names none. Ask your pimbot admin to add approvers."
            }
        )


def _check_extension_bounds(
    request: ElevationRequest, extra: timedelta, rules: EffectiveRules, now: datetime
) -> None:
    assert request.ends_at is not None
    if extra < MIN_DURATION:
        raise ValidationFailed({DURATION: f"Extend by at least {humanize(MIN_DURATION)}."})
    if request.ends_at + extra - now > rules.max_duration:
        raise ValidationFailed(
            {
                DURATION: f"Too long: {request.role.display_name} may be active "
                f"at most {humanize(rules.max_duration)} from now."
            }
        )


def _apply_extension(
    request_id: str, actor: Person, extra: timedelta, rules: EffectiveRules, ports: Ports
) -> ElevationRequest:
    request = load_request(request_id, ports)
    now = ports.clock.now()
    assert request.ends_at is not None and request.requester.entra_id is not None
    # Time passed while approvers decided: never exceed the role's maximum from now.
    new_end = min(request.ends_at + extra, now + rules.max_duration)
    result = ports.pim.extend(
        request.requester.entra_id,
        request.role,
        new_end=new_end,
        justification=_justification(request, ports, extension=True),
        ticket=request.ticket,
    )
    final_end = result.ends_at or new_end
    start = request.starts_at or now
    request = change_request(
        request_id,
        lambda req: req.extend(
            actor,
            new_end=final_end,
            at=now,
            remind_at=reminder_time(start, final_end, rules.reminder_lead),
        ),
        ports,
    )
    return request


def expire_request(
    request_id: str, *, ports: Ports, reason: str = "PIM ended the assignment"
) -> ElevationRequest:
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.expire(at=now, reason=reason), ports)


# --- reading -------------------------------------------------------------------------------------


def get_request(request_id: str, *, ports: Ports) -> ElevationRequest:
    return load_request(request_id, ports)


def open_for_decision(
    request_id: str, approver: Person, *, ports: Ports, extension: bool = False
) -> ElevationRequest:
    """The request, if ``approver`` may decide it now; checked before any form shows it.

    A deny form shows who asked for what and why: nobody else may even open it.
    """
    request = load_request(request_id, ports)
    approvers = ports.approvers.resolve(_specs(request), ports.rules.rules_for(request.role))
    check_may_decide(request, approver, approvers)
    if extension and not request.awaits_extension_approval:
        raise InvalidTransition("No extension of this role is waiting for a decision.")
    if not extension and request.status is not RequestStatus.PENDING_APPROVAL:
        next_status(request.status, LifecycleAction.DENY)
    return request


def open_for_extension(request_id: str, actor: Person, *, ports: Ports) -> ElevationRequest:
    """The request, if ``actor`` may extend it now; checked before the extend form opens."""
    request = load_request(request_id, ports)
    check_is_requester(request, actor)
    next_status(request.status, LifecycleAction.EXTEND)
    return request


def list_my_requests(person: Person, *, ports: Ports, limit: int = 10) -> list[ElevationRequest]:
    with ports.uow() as uow:
        return uow.requests.list_for_requester(person, limit=limit)


def list_pending_for_approver(approver: Person, *, ports: Ports) -> list[ElevationRequest]:
    """Pending requests this person may decide (never their own)."""
    with ports.uow() as uow:
        pending = uow.requests.list_pending()
    mine = []
    for request in pending:
        approvers = ports.approvers.resolve(_specs(request), ports.rules.rules_for(request.role))
        try:
            check_may_decide(request, approver, approvers)
        except NotAuthorized:
            continue
        if not request.has_decided(approver):
            mine.append(request)
    return mine


def list_eligible_roles(person: Person, *, ports: Ports) -> list[EligibleRole]:
    if person.entra_id is None:
        raise IdentityError("Your Slack account is not linked to a Microsoft Entra account yet.")
    return ports.pim.list_eligible_roles(person.entra_id)


# --- internals -----------------------------------------------------------------------------------


def load_request(request_id: str, ports: Ports) -> ElevationRequest:
    with ports.uow() as uow:
        request = uow.requests.get(request_id)
    if request is None:
        raise RequestNotFound("That request does not exist (any more).")
    return request


def change_request(
    request_id: str, mutate: Callable[[ElevationRequest], None], ports: Ports
) -> ElevationRequest:
    """Load, apply ``mutate``, save conditionally, commit; reload and retry if someone raced us.

    The retry re-runs ``mutate`` against the fresh state, so a lost race turns into the
    domain's own answer ("already approved by …") rather than a storage error. The events the
    domain methods recorded (what Slack must hear) are written to the outbox by the same save
    and delivered after the commit, in order, so a crash in between loses nothing.
    """
    for _attempt in range(_SAVE_ATTEMPTS):
        with ports.uow() as uow:
            request = uow.requests.get(request_id)
            if request is None:
                raise RequestNotFound("That request does not exist (any more).")
            mutate(request)
            try:
                queued = uow.requests.save(request)
            except ConcurrentUpdate:
                continue
            uow.commit()
        changed = request.snapshot()
        for notification in queued:
            deliver(ports, changed, notification.event, notification.id)
        return changed
    raise ConcurrentUpdate(request_id)


def _fail(request_id: str, reason: str, ports: Ports) -> ElevationRequest:
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.mark_failed(reason=reason, at=now), ports)


def _specs(request: ElevationRequest) -> list[ApproverSpec]:
    return [ApproverSpec.from_text(text) for text in request.approver_specs]


def _justification(request: ElevationRequest, ports: Ports, *, extension: bool = False) -> str:
    """What PIM's own audit log shows: the reason, the request, and who approved it.

    Approvers are named by UPN (their Entra object id when Graph cannot say), so PIM's record
    stands on its own. Never longer than PIM accepts: the reason is cut, with an ellipsis,
    before anything that identifies the request or its approvers is."""
    round_ = request.extension.round if extension else 0
    approvals = request.approvals(round_) or (request.approvals(0) if extension else [])
    names = [_approver_name(d.approver, ports) for d in approvals]
    if names:
        who = "approved by " + _fit_names(names, room=JUSTIFICATION_WHO_ROOM - 12)
    elif request.break_glass:
        who = "break-glass, no approval"
    else:
        who = "no approval required"
    suffix = justification_suffix(request.id, who[:JUSTIFICATION_WHO_ROOM])
    # The form keeps reasons within MAX_REASON_LENGTH, which always fits whole; only a reason
    # stored before that limit existed can be longer.
    room = PIM_JUSTIFICATION_LIMIT - len(suffix)
    reason = request.reason.strip()
    if len(reason) > room:
        reason = reason[: room - 1].rstrip() + "…"
    return reason + suffix


def _approver_name(approver: Person, ports: Ports) -> str:
    if approver.entra_id is None:
        return approver.key
    try:
        user = ports.pim.resolve_user(approver.entra_id)
    except PimbotError as exc:
        log.warning("approver's UPN unknown, naming their object id: %s", exc.user_message)
        return approver.entra_id
    return user.user_principal_name if user and user.user_principal_name else approver.entra_id


def _fit_names(names: list[str], *, room: int) -> str:
    shown = list(names)
    while len(shown) > 1:
        text = ", ".join(shown) + (f" and {len(names) - len(shown)} more" if names != shown else "")
        if len(text) <= room:
            return text
        shown.pop()
    text = shown[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")
    return text if len(text) <= room else text[: room - 1] + "…"


def deliver(ports: Ports, request: ElevationRequest, event: Event, notification: int) -> bool:
    """Tell Slack about a committed change and mark the outbox row delivered.

    A Slack outage must not undo the change: a failed delivery stays in the outbox and the
    sweep tries again later.
    """
    try:
        ports.notifier.request_changed(request, event)
    except Exception:
        log.exception(
            "could not notify Slack; will retry",
            extra={"request_id": request.id, "event": event.value},
        )
        return False
    with ports.uow() as uow:
        uow.outbox.mark_delivered(notification, ports.clock.now())
        uow.commit()
    return True

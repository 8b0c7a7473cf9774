"""Use cases the scheduler runs when a timer is due. Each asks Graph before acting, so pimbot's
state follows what PIM really did (removed elsewhere, extended elsewhere, started late)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.domain.elevation import Decision, ElevationRequest, Person, RequestStatus
from bot.domain.errors import PimbotError, PimUnavailable
from bot.domain.ports import ActivationResult, ActiveAssignment
from bot.domain.rules import EffectiveRules
from bot.use_cases.services import (
    Ports,
    activate_request,
    change_request,
    deactivate_request,
    expire_request,
    load_request,
    record_activation,
    reminder_time,
)
from bot.use_cases.signing_in import PersonToken

log = logging.getLogger(__name__)

# PIM's clock and ours may differ a little; an end this close counts as reached.
END_SLACK = timedelta(seconds=30)


def remind_before_expiry(request_id: str, *, ports: Ports) -> ElevationRequest:
    """DM the requester before the role expires, unless PIM already took it away."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.ACTIVE or request.timers.reminded_at is not None:
        return request
    if request.ends_at is not None and request.ends_at <= ports.clock.now() + END_SLACK:
        return sync_expiry(request_id, ports=ports)  # too late to remind: it has ended
    assignment = _assignment(request, ports)
    if assignment is None:
        return expire_request(
            request_id, ports=ports, reason="the assignment was removed outside pimbot"
        )
    if (
        assignment.ends_at is not None
        and request.ends_at is not None
        and assignment.ends_at > request.ends_at + END_SLACK
    ):
        # Moved later in PIM: say so now, and remind before the real end instead.
        return _adopt_end(request, assignment.ends_at, ports)
    # Recorded and queued in one transaction, then delivered: a crash before delivery leaves it
    # in the outbox for the sweep, so it is never lost (and repeated only if pimbot dies in
    # the instant between Slack's answer and marking it delivered).
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.mark_reminded(at=now), ports)


def sync_expiry(request_id: str, *, ports: Ports) -> ElevationRequest:
    """The end time has come: mark it expired, or adopt a later end PIM knows about."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.ACTIVE:
        return request
    assignment = _assignment(request, ports)
    now = ports.clock.now()
    if assignment is not None and (
        assignment.ends_at is None or assignment.ends_at > now + END_SLACK
    ):
        if assignment.ends_at is None:
            return request  # made permanent outside pimbot: nothing of ours expires
        return _adopt_end(request, assignment.ends_at, ports)
    return expire_request(request_id, ports=ports)


def _adopt_end(request: ElevationRequest, new_end: datetime, ports: Ports) -> ElevationRequest:
    """Moved outside pimbot (an admin in the portal): follow PIM; the domain's END_MOVED
    event updates the cards and tells the requester the new end."""
    now = ports.clock.now()
    rules = ports.rules.rules_for(request.role)
    start = request.starts_at or now
    return change_request(
        request.id,
        lambda req: req.adopt_end(
            new_end=new_end,
            at=now,
            remind_at=reminder_time(start, new_end, rules.reminder_lead),
        ),
        ports,
    )


def start_scheduled(request_id: str, *, ports: Ports) -> ElevationRequest:
    """A future start has come: once PIM shows the assignment, announce it as active."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.SCHEDULED:
        return request
    assignment = _assignment(request, ports)
    if assignment is None:
        raise PimUnavailable("PIM does not show the scheduled assignment yet.")
    result = ActivationResult(
        request.graph_request_id or "",
        "Provisioned",
        assignment.starts_at or request.starts_at,
        assignment.ends_at,
    )
    return record_activation(request_id, result, ports.rules.rules_for(request.role), ports=ports)


def reconcile_approved(request_id: str, *, ports: Ports) -> ElevationRequest:
    """An ``approved`` row outlived its activation call (a crash, a timeout): ask Graph first,
    and activate only if the assignment really does not exist (never a second activation)."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.APPROVED:
        return request
    assignment = _assignment(request, ports)
    if assignment is not None:
        result = ActivationResult(
            request.graph_request_id or "", "Provisioned", assignment.starts_at, assignment.ends_at
        )
        return record_activation(
            request_id, result, ports.rules.rules_for(request.role), ports=ports
        )
    return activate_request(request_id, ports=ports)


def nudge_approvers(request_id: str, *, ports: Ports) -> ElevationRequest:
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.mark_nudged(at=now), ports)


def time_out_pending(request_id: str, *, ports: Ports) -> ElevationRequest:
    now = ports.clock.now()
    return change_request(request_id, lambda req: req.time_out(at=now), ports)


def run_scheduled_deactivation(request_id: str, *, ports: Ports) -> ElevationRequest:
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.ACTIVE:
        return request
    return deactivate_request(
        request_id,
        request.requester,
        ports=ports,
        reason="ended early by the requester (scheduled)",
    )


def _assignment(request: ElevationRequest, ports: Ports) -> ActiveAssignment | None:
    assert request.requester.entra_id is not None
    for assignment in ports.pim.list_active_assignments(request.requester.entra_id):
        if assignment.role.role_definition_id == request.role.role_definition_id:
            return assignment
    return None


def follow_pim_approval(request_id: str, *, ports: Ports) -> ElevationRequest:
    """Delegated mode: PIM runs its own approval of the activation. Ask PIM where it stands
    and follow it: granted → active (reminder scheduled as usual); denied, cancelled, timed
    out or failed → closed with PIM's word; still pending → ask again next sweep. Decided in
    Slack, in the Azure portal or by email: PIM's answer is the same."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.AWAITING_PIM or request.graph_request_id is None:
        return request
    try:
        result = ports.pim.get_request(request.graph_request_id)
    except PimUnavailable as exc:
        log.info("PIM's approval not read: %s", exc.user_message, extra={"request_id": request_id})
        return request
    status = result.status.lower()
    rules = ports.rules.rules_for(request.role)
    request = _note_reviews_made_outside_slack(request, ports)
    if request.status is not RequestStatus.AWAITING_PIM:
        return request  # a denial read from PIM's steps closed it
    if result.is_granted:
        return record_activation(request_id, result, rules, ports=ports)
    if status.startswith("pending"):
        return _escalate_when_due(request, rules, ports)
    now = ports.clock.now()
    return change_request(
        request_id, lambda req: req.close_in_pim(outcome=result.status, at=now), ports
    )


def _note_reviews_made_outside_slack(request: ElevationRequest, ports: Ports) -> ElevationRequest:
    """Stages decided in the Azure portal or from PIM's email: read PIM's steps (as the
    requester, whose own request it is) and record who decided each, in order, so the card
    says "approved in PIM by Grace Hopper" and a next stage's approvers get theirs. Without a
    usable sign-in of the requester nothing is read, and PIM's final answer still lands."""
    delegation = ports.delegation
    approval = request.pim_approval
    if delegation is None or approval is None:
        return request
    tenant = request.tenant or delegation.home_tenant
    reader = delegation.approvals_as(
        PersonToken(delegation, ports.uow, ports.clock, request.requester, tenant)
    )
    try:
        steps = reader.approval_stages(approval.approval_id)
    except PimbotError as exc:
        log.info("PIM's approval steps not read: %s", exc.user_message)
        return request
    for number, step in enumerate(steps, start=1):
        current = request.pim_approval
        if request.status is not RequestStatus.AWAITING_PIM or current is None:
            break
        reviewed = step.review_result.lower()
        if number != current.stage or reviewed == "notreviewed" or not step.reviewed_by_id:
            continue
        if any(d.pim_stage == number for d in request.decisions):
            continue  # decided from Slack: recorded already
        reviewer = _reviewer(step.reviewed_by_id, step.reviewed_by, ports)
        decision = Decision.APPROVE if reviewed.startswith("approve") else Decision.DENY
        request = _record_review(request.id, reviewer, decision, step.justification, ports)
    return request


def _record_review(
    request_id: str, reviewer: Person, decision: Decision, reason: str | None, ports: Ports
) -> ElevationRequest:
    now = ports.clock.now()
    return change_request(
        request_id,
        lambda req: req.record_pim_review(reviewer, decision, at=now, reason=reason),
        ports,
    )


def _reviewer(entra_id: str, name: str | None, ports: Ports) -> Person:
    """The person who decided in PIM: their Slack account when one is linked to them."""
    with ports.uow() as uow:
        link = uow.identities.for_entra(entra_id)
    if link is not None:
        return Person(link.slack_team, link.slack_user, entra_id, name)
    # No Slack account: keyed by the Entra id (its 32 hex digits fit the stored Slack id).
    return Person("entra", entra_id.replace("-", "")[:32], entra_id, name)


def _escalate_when_due(
    request: ElevationRequest, rules: EffectiveRules, ports: Ports
) -> ElevationRequest:
    """PIM lets a stage's escalation approvers decide once it has gone unanswered for its
    escalation time; pimbot brings them the card at that moment."""
    approval = request.pim_approval
    if approval is None or approval.escalated or approval.stage_started_at is None:
        return request
    stage = rules.pim_stage(approval.stage)
    if stage is None or stage.escalation_after is None or not stage.escalation_approvers:
        return request
    now = ports.clock.now()
    if now < approval.stage_started_at + stage.escalation_after:
        return request
    return change_request(request.id, lambda req: req.escalate_pim_stage(at=now), ports)


def time_out_sign_in(request_id: str, *, ports: Ports) -> ElevationRequest:
    """The sign-in a held request asked for never came: it fails, saying so."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.AWAITING_SIGN_IN:
        return request
    now = ports.clock.now()
    return change_request(
        request_id,
        lambda req: req.mark_failed(
            reason=(
                f"the sign-in needed to activate {req.role.display_name} as you was not "
                "completed in time. Ask again with `/pim request`."
            ),
            at=now,
        ),
        ports,
    )

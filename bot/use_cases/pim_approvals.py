"""PIM's own approvals, decided from Slack by the approvers themselves (delegated mode).

When a request is activated as the requester and the role's PIM settings require approval,
PIM holds it (``awaiting_pim``) and pimbot posts the card to the approvers PIM lists for the
current stage. A click decides the stage *in PIM, with the approver's own token*: PIM checks
that they are an approver of that stage (``assignedToMe``), applies its rules (Conditional
Access included) and records them; pimbot never decides it for them. An approver who has not
signed in gets a sign-in link, and the decision is made right after they sign in.
"""

from __future__ import annotations

import logging

from bot.domain.elevation import Decision, ElevationRequest, Person, RequestStatus
from bot.domain.errors import (
    AlreadyDecided,
    IdentityError,
    NotAuthorized,
    PimbotError,
    SignInRequired,
)
from bot.use_cases import services
from bot.use_cases.services import Ports, change_request, load_request
from bot.use_cases.signing_in import PIM_DECISION, PersonToken, audit_event, make_sign_in_link
from bot.use_cases.timers import follow_pim_approval

log = logging.getLogger(__name__)


class SignInToDecide(PimbotError):
    """The approver must sign in before PIM takes their decision; a link is in their DMs."""


def approve(request_id: str, approver: Person, *, ports: Ports) -> ElevationRequest:
    """Approve: in PIM as the approver when PIM runs the approval, else pimbot's own."""
    if load_request(request_id, ports).status is RequestStatus.AWAITING_PIM:
        return decide_in_pim(request_id, approver, approve=True, justification="", ports=ports)
    return services.approve_request(request_id, approver, ports=ports)


def deny(request_id: str, approver: Person, reason: str, *, ports: Ports) -> ElevationRequest:
    if load_request(request_id, ports).status is RequestStatus.AWAITING_PIM:
        return decide_in_pim(request_id, approver, approve=False, justification=reason, ports=ports)
    return services.deny_request(request_id, approver, reason, ports=ports)


def needs_justification(request_id: str, approver: Person, *, ports: Ports) -> bool:
    """Approving this request decides a stage of PIM's approval whose settings require the
    approver's justification (``isApproverJustificationRequired``): ask for it first."""
    request = load_request(request_id, ports)
    if not request.decidable_in_pim or request.pim_approval is None:
        return False
    if approver.is_same_as(request.requester):
        raise NotAuthorized("Nobody approves their own request.")
    stage = ports.rules.rules_for(request.role).pim_stage(request.pim_approval.stage)
    return stage is not None and stage.justification_required


def approve_in_pim(
    request_id: str, approver: Person, justification: str, *, ports: Ports
) -> ElevationRequest:
    return decide_in_pim(
        request_id, approver, approve=True, justification=justification, ports=ports
    )


def open_for_decision(request_id: str, approver: Person, *, ports: Ports) -> ElevationRequest:
    """The request, if ``approver`` may open its deny form; for PIM's approval PIM itself
    says who is an approver (checked when the decision is sent), pimbot refuses only the
    requester."""
    request = load_request(request_id, ports)
    if request.status is not RequestStatus.AWAITING_PIM:
        return services.open_for_decision(request_id, approver, ports=ports)
    if not request.decidable_in_pim:
        raise AlreadyDecided("PIM is no longer waiting for an approval of this request.")
    if approver.is_same_as(request.requester):
        raise NotAuthorized("Nobody approves their own request.")
    return request


def decide_in_pim(
    request_id: str,
    approver: Person,
    *,
    approve: bool,
    justification: str,
    ports: Ports,
) -> ElevationRequest:
    """Send ``approver``'s decision on the current stage to PIM, as them, and record it."""
    delegation = ports.delegation
    request = load_request(request_id, ports)
    if delegation is None or not request.decidable_in_pim:
        raise AlreadyDecided("PIM is no longer waiting for an approval of this request.")
    if approver.is_same_as(request.requester):
        raise NotAuthorized("Nobody approves their own request.")
    if approver.entra_id is None:
        raise IdentityError("pimbot does not know your Microsoft Entra account yet.")
    assert request.pim_approval is not None
    words = justification.strip() or f"Approved from Slack by {approver.display_name or 'me'}"
    tenant = request.tenant or delegation.home_tenant
    as_approver = delegation.approvals_as(
        PersonToken(delegation, ports.uow, ports.clock, approver, tenant)
    )
    try:
        stages = as_approver.approval_stages(request.pim_approval.approval_id)
        current = next((s for s in stages if s.status.lower() == "inprogress"), None)
        if current is None:
            follow_pim_approval(request_id, ports=ports)
            raise AlreadyDecided("PIM is not waiting for this approval any more.")
        if not current.assigned_to_me:
            audit_event(
                ports.uow,
                ports.clock,
                request_id=request_id,
                actor=approver.key,
                action="pim_decision_refused",
                detail="not an approver in PIM",
            )
            raise NotAuthorized("You are not an approver for this request in PIM.")
        as_approver.review_stage(
            request.pim_approval.approval_id, current.id, approve=approve, justification=words
        )
    except SignInRequired as exc:
        _ask_to_sign_in(request, approver, approve=approve, justification=words, ports=ports)
        raise SignInToDecide(
            "PIM needs you to sign in before it takes your decision: I sent you a sign-in "
            "link. Your decision is made as soon as you have signed in."
        ) from exc
    now = ports.clock.now()
    decision = Decision.APPROVE if approve else Decision.DENY
    decided = change_request(
        request_id,
        lambda req: req.record_pim_review(approver, decision, at=now, reason=words),
        ports,
    )
    if (
        approve
        and decided.status is RequestStatus.AWAITING_PIM
        and (
            decided.pim_approval is not None
            and decided.pim_approval.stage == request.pim_approval.stage  # the last stage
        )
    ):
        # PIM provisions the role at once: record it now rather than at the next sweep.
        return follow_pim_approval(request_id, ports=ports)
    return decided


def _ask_to_sign_in(
    request: ElevationRequest,
    approver: Person,
    *,
    approve: bool,
    justification: str,
    ports: Ports,
) -> None:
    delegation = ports.delegation
    assert delegation is not None and approver.entra_id is not None
    prompt = make_sign_in_link(
        delegation,
        ports.uow,
        ports.clock,
        approver,
        tenant=request.tenant or delegation.home_tenant,
        purpose=PIM_DECISION,
        # The decision rides sealed with the link: nothing in the URL can change it.
        expect={
            "entra_id": approver.entra_id,
            "decision": "approve" if approve else "deny",
            "justification": justification,
        },
        request_id=request.id,
    )
    verb = "approve" if approve else "deny"
    delegation.messages.sign_in_link(
        approver,
        prompt,
        why=(
            f"Sign in to {verb} {request.requester.mention}'s request for "
            f"{request.role.display_name} in PIM as yourself."
        ),
    )


def decide_after_sign_in(
    request_id: str, approver: Person, expect: dict[str, str], *, ports: Ports
) -> ElevationRequest | None:
    """The approver signed in for a decision: make it now (None if PIM moved on meanwhile)."""
    try:
        return decide_in_pim(
            request_id,
            approver,
            approve=expect.get("decision") == "approve",
            justification=expect.get("justification", ""),
            ports=ports,
        )
    except PimbotError as exc:
        log.warning("decision after sign-in not made: %s", exc.user_message)
        return None

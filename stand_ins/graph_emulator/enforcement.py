"""The role-policy checks PIM runs on a schedule request, and the errors it answers with.

End users (``self*`` actions) meet the EndUser rules: eligibility, expiration, justification,
ticket, MFA and authentication context. An app's ``admin*`` actions meet the Admin assignment
rules only: PIM does not ask an admin for eligibility, and pimbot itself refuses MFA or
authentication-context roles before it would assign them.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta

from stand_ins.graph_emulator.errors import GraphError
from stand_ins.graph_emulator.faults import PolicyMessageFormat
from stand_ins.graph_emulator.schedule_requests import ScheduleRequest
from stand_ins.graph_emulator.tenant import Role
from stand_ins.graph_emulator.token import Caller

# PIM refuses to end an activation in its first five minutes. The emulator models Microsoft's
# rule on its own (pimbot's copy is bot.domain.rules.MIN_DURATION): a change on one side must not
# silently move the other.
MINIMUM_ACTIVE_DURATION = timedelta(minutes=5)

_DESCRIPTIONS = {
    "EligibilityRule": "No valid eligibility was found for the principal",
    "ExpirationRule": "The requested expiration does not meet the policy",
    "JustificationRule": "Justification is required",
    "TicketingRule": "Ticket information is required",
    "MfaRule": "Multi-factor authentication is required",
}


@dataclass(frozen=True)
class RuleFailure:
    rule: str

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.rule]


def _expiration_fails(request: ScheduleRequest, required: bool, maximum: timedelta) -> bool:
    schedule = request.schedule
    if schedule is None:
        return required
    length = schedule.length
    if length is None:
        return required
    return length > maximum


def end_user_failures(
    request: ScheduleRequest,
    role: Role,
    *,
    eligible: bool,
    caller: Caller,
    check_eligibility: bool = True,
) -> list[RuleFailure]:
    """Failed EndUser rules, in the order PIM lists them."""
    settings = role.activation
    failed = []
    if check_eligibility and not eligible:
        failed.append("EligibilityRule")
    if _expiration_fails(request, True, settings.maximum):
        failed.append("ExpirationRule")
    if settings.require_justification and not (request.justification or "").strip():
        failed.append("JustificationRule")
    if settings.require_ticket and not (request.ticket_number or "").strip():
        failed.append("TicketingRule")
    # An app token has no user sign-in, so it can never carry the MFA claim.
    if settings.require_mfa and not (caller.is_user and "mfa" in caller.amr):
        failed.append("MfaRule")
    return [RuleFailure(rule) for rule in failed]


def admin_failures(request: ScheduleRequest, role: Role) -> list[RuleFailure]:
    settings = role.admin_assignment
    failed = []
    if _expiration_fails(request, settings.expiration_required, settings.maximum):
        failed.append("ExpirationRule")
    if settings.require_justification and not (request.justification or "").strip():
        failed.append("JustificationRule")
    return [RuleFailure(rule) for rule in failed]


def policy_validation_failed(failures: list[RuleFailure], style: PolicyMessageFormat) -> GraphError:
    if style == "described":
        detail = ", ".join(f"{f.rule} - {f.description}" for f in failures)
    else:
        detail = json.dumps([f.rule for f in failures], separators=(",", ":"))
    return GraphError(
        400,
        "RoleAssignmentRequestPolicyValidationFailed",
        f"The following policy rules failed: {detail}",
    )


def authentication_context_failure(role: Role, caller: Caller) -> GraphError | None:
    """PIM's 400 with the claims challenge URL-encoded inside the message, not a 401 header."""
    claim_value = role.activation.authentication_context
    if claim_value is None or (caller.is_user and claim_value in caller.acrs):
        return None
    # The spacing after the comma is as seen in real challenges.
    claims = '{"access_token":{"acrs":{"essential":true, "value":' + json.dumps(claim_value) + "}}}"

    return GraphError(
        400,
        "RoleAssignmentRequestAcrsValidationFailed",
        "The role assignment request requires the authentication context "
        f"'{claim_value}'. Sign in again satisfying the claims challenge: "
        f"&claims={urllib.parse.quote(claims, safe='')}",
    )


def role_assignment_exists() -> GraphError:
    return GraphError(400, "RoleAssignmentExists", "The Role assignment already exists.")


def role_assignment_does_not_exist() -> GraphError:
    return GraphError(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")


def active_duration_too_short() -> GraphError:
    # "Miniumum" is how the service spells it.
    return GraphError(
        400,
        "ActiveDurationTooShort",
        "The Active duration is too short. Miniumum Required is 5 minutes.",
    )

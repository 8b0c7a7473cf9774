"""Graph JSON → domain values. Tolerant: enum strings in any case, optional fields missing.

Microsoft's own examples disagree on casing (``afterDuration``/``AfterDuration``,
``"operations": ["all"]``/``["All"]``) and leave fields out, so every lookup here has a default.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.durations import parse_duration
from bot.domain.elevation import RoleRef
from bot.domain.ports import (
    AccessPolicy,
    ActivationResult,
    ActiveAssignment,
    ApprovalStageView,
    DirectoryUser,
    EligibleRole,
)
from bot.domain.rules import PimApprovalStage, PimApprover, RoleSettings

logger = logging.getLogger(__name__)

Json = Mapping[str, Any]

_USER_TYPE = "#microsoft.graph.user"
_GROUP_TYPE = "#microsoft.graph.group"


def text(obj: Json, key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value != "" else None


def same(a: str | None, b: str) -> bool:
    """Graph enum strings compare case-insensitively (``selfActivate`` == ``SelfActivate``)."""
    return a is not None and a.lower() == b.lower()


def timestamp(value: object) -> datetime | None:
    """An ISO-8601 timestamp (``Z`` or offset, up to 7 fractional digits) as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        logger.warning("Graph sent an unreadable timestamp: %r", value)
        return None
    if parsed.tzinfo is None:  # Graph means UTC even when it forgets to say so
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def duration(value: object) -> timedelta | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        logger.warning("Graph sent an unreadable duration: %r", value)
        return None


def canonical(value: str | None, choices: Iterable[str], default: str) -> str:
    """Graph's enum value in the spelling the domain uses (``assigned`` → ``Assigned``)."""
    for choice in choices:
        if same(value, choice):
            return choice
    return value or default


# --- directory objects ----------------------------------------------------------------------


def directory_user(obj: Json) -> DirectoryUser | None:
    user_id = text(obj, "id")
    if user_id is None:
        return None
    upn = text(obj, "userPrincipalName") or ""
    return DirectoryUser(
        id=user_id,
        display_name=text(obj, "displayName") or upn or user_id,
        user_principal_name=upn,
        mail=text(obj, "mail"),
        account_enabled=obj.get("accountEnabled") is True,
        user_type=text(obj, "userType") or "Member",
    )


def is_user(obj: Json) -> bool:
    kind = text(obj, "@odata.type")
    return same(kind, _USER_TYPE) if kind else "userPrincipalName" in obj


def is_role_assignable_group(obj: Json) -> bool:
    """A group that can hold roles; when Graph omits the flag, assume it can (PIM will know)."""
    if not same(text(obj, "@odata.type"), _GROUP_TYPE):
        return False
    return obj.get("isAssignableToRole") is not False


# --- role schedules -------------------------------------------------------------------------


def role_ref(obj: Json) -> RoleRef | None:
    role_id = text(obj, "roleDefinitionId")
    if role_id is None:
        return None
    definition = obj.get("roleDefinition")
    name = text(definition, "displayName") if isinstance(definition, Mapping) else None
    return RoleRef(
        role_definition_id=role_id,
        display_name=name or role_id,
        directory_scope_id=text(obj, "directoryScopeId") or "/",
    )


def eligible_role(obj: Json, *, via_group_id: str | None = None) -> EligibleRole | None:
    role = role_ref(obj)
    if role is None:
        return None
    member_type = (
        "Group"
        if via_group_id
        else canonical(text(obj, "memberType"), ("Direct", "Group", "Inherited"), "Direct")
    )
    return EligibleRole(
        role=role,
        member_type=member_type,
        via_group_id=via_group_id,
        ends_at=timestamp(obj.get("endDateTime")),
    )


def active_assignment(obj: Json, *, via_group: bool = False) -> ActiveAssignment | None:
    role = role_ref(obj)
    if role is None:
        return None
    member_type = (
        "Group"
        if via_group
        else canonical(text(obj, "memberType"), ("Direct", "Group", "Inherited"), "Direct")
    )
    return ActiveAssignment(
        role=role,
        assignment_type=canonical(
            text(obj, "assignmentType"), ("Activated", "Assigned"), "Assigned"
        ),
        starts_at=timestamp(obj.get("startDateTime")),
        ends_at=timestamp(obj.get("endDateTime")),
        member_type=member_type,
    )


def activation_result(obj: Json) -> ActivationResult:
    """A roleAssignmentScheduleRequest as the domain sees it: id, status and window."""
    schedule = obj.get("scheduleInfo")
    schedule = schedule if isinstance(schedule, Mapping) else {}
    starts_at = timestamp(schedule.get("startDateTime"))
    return ActivationResult(
        graph_request_id=text(obj, "id") or text(obj, "targetScheduleId") or "",
        status=text(obj, "status") or "Unknown",
        approval_id=text(obj, "approvalId"),
        starts_at=starts_at,
        ends_at=schedule_end(schedule, starts_at),
    )


def schedule_end(schedule: Json, starts_at: datetime | None) -> datetime | None:
    expiration = schedule.get("expiration")
    if not isinstance(expiration, Mapping):
        return None
    end = timestamp(expiration.get("endDateTime"))
    if end is not None:
        return end
    length = duration(expiration.get("duration"))
    if length is not None and starts_at is not None:
        return starts_at + length
    return None


# --- policy rules ---------------------------------------------------------------------------


def role_settings(role_definition_id: str, assignment: Json) -> RoleSettings:
    """The end-user activation rules of one roleManagementPolicyAssignment (policy expanded)."""
    policy = assignment.get("policy")
    policy = policy if isinstance(policy, Mapping) else {}
    rules = {
        str(rule.get("id", "")).lower(): rule
        for rule in policy.get("rules") or []
        if isinstance(rule, Mapping)
    }
    defaults = RoleSettings(role_definition_id=role_definition_id)
    expiration = rules.get("expiration_enduser_assignment", {})
    enablement = rules.get("enablement_enduser_assignment")
    enabled = {str(r).lower() for r in (enablement or {}).get("enabledRules") or []}
    context = rules.get("authenticationcontext_enduser_assignment", {})
    approval = rules.get("approval_enduser_assignment", {}).get("setting")
    approval = approval if isinstance(approval, Mapping) else {}
    return RoleSettings(
        role_definition_id=role_definition_id,
        max_duration=duration(expiration.get("maximumDuration")) or defaults.max_duration,
        justification_required=(
            "justification" in enabled
            if enablement is not None
            else defaults.justification_required
        ),
        ticket_required="ticketing" in enabled,
        mfa_required="multifactorauthentication" in enabled,
        authentication_context=(
            text(context, "claimValue") if context.get("isEnabled") is True else None
        ),
        approval_required=approval.get("isApprovalRequired") is True,
        approval_required_for_extension=approval.get("isApprovalRequiredForExtension") is True,
        approvers=tuple(_approvers(approval)),
        policy_id=text(assignment, "policyId") or text(policy, "id"),
        approval_stages=tuple(_stages(approval)),
    )


def _approvers(setting: Json) -> Iterable[PimApprover]:
    seen: set[tuple[str, str]] = set()
    for stage in setting.get("approvalStages") or []:
        if not isinstance(stage, Mapping):
            continue
        for approver in stage.get("primaryApprovers") or []:
            if not isinstance(approver, Mapping):
                continue
            parsed = _approver(approver)
            if parsed is not None and (parsed.kind, parsed.id) not in seen:
                seen.add((parsed.kind, parsed.id))
                yield parsed


def _stages(setting: Json) -> Iterable[PimApprovalStage]:
    for stage in setting.get("approvalStages") or []:
        if not isinstance(stage, Mapping):
            continue
        escalation = stage.get("escalationTimeInMinutes")
        timeout = stage.get("approvalStageTimeOutInDays")
        yield PimApprovalStage(
            approvers=tuple(_listed(stage.get("primaryApprovers"))),
            escalation_approvers=tuple(_listed(stage.get("escalationApprovers"))),
            escalation_after=(
                timedelta(minutes=int(escalation))
                if stage.get("isEscalationEnabled") is True and isinstance(escalation, int)
                else None
            ),
            times_out_after=timedelta(days=int(timeout)) if isinstance(timeout, int) else None,
            justification_required=stage.get("isApproverJustificationRequired") is True,
        )


def _listed(approvers: object) -> Iterable[PimApprover]:
    for obj in approvers if isinstance(approvers, list) else []:
        if isinstance(obj, Mapping) and (parsed := _approver(obj)) is not None:
            yield parsed


def _approver(obj: Json) -> PimApprover | None:
    kind = (text(obj, "@odata.type") or "").rsplit(".", 1)[-1].lower()
    name = text(obj, "description") or text(obj, "displayName")
    if kind == "singleuser":
        user_id = text(obj, "userId") or text(obj, "id")
        return PimApprover("user", user_id, name) if user_id else None
    if kind == "groupmembers":
        group_id = text(obj, "groupId") or text(obj, "id")
        return PimApprover("group", group_id, name) if group_id else None
    logger.info("Ignoring a PIM approver of type %r (not a user or group)", kind)
    return None


def access_policy(obj: Json) -> AccessPolicy | None:
    """A conditionalAccessPolicy; the roles it targets from ``conditions.users.includeRoles``."""
    name = text(obj, "displayName")
    if not name:
        return None
    conditions = obj.get("conditions")
    users = conditions.get("users") if isinstance(conditions, Mapping) else None
    roles = users.get("includeRoles") if isinstance(users, Mapping) else None
    return AccessPolicy(
        display_name=name,
        state=text(obj, "state") or "enabled",
        include_roles=tuple(str(r).lower() for r in roles) if isinstance(roles, list) else (),
    )


def approval_stage(obj: Json) -> ApprovalStageView | None:
    """An approvalStage (Graph): who may decide it and what was decided."""
    stage_id = text(obj, "id")
    if not stage_id:
        return None
    reviewer = obj.get("reviewedBy")
    name = reviewer_id = None
    if isinstance(reviewer, Mapping):
        reviewer_id = text(reviewer, "id")
        if reviewer_id == "00000000-0000-0000-0000-000000000000":  # Graph's "nobody yet"
            reviewer_id = None
        name = (text(reviewer, "displayName") or reviewer_id) if reviewer_id else None
    return ApprovalStageView(
        id=stage_id,
        status=text(obj, "status") or "NotStarted",
        review_result=text(obj, "reviewResult") or "NotReviewed",
        assigned_to_me=obj.get("assignedToMe") is True,
        reviewed_by=name,
        justification=text(obj, "justification"),
        reviewed_by_id=reviewer_id,
    )

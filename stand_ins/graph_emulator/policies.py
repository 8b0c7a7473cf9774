"""A role's PIM settings as Graph renders them: one policy of 17 rules per directory role.

Rule ids, ``@odata.type``s, their order and the lower-case ``"all"`` operations follow the
DirectoryRole example of "List roleManagementPolicyAssignments" (v1.0 docs).
"""

from __future__ import annotations

import uuid
from typing import Any

from stand_ins.graph_emulator.tenant import Approver, Role, Tenant

_TYPE = "#microsoft.graph.unifiedRoleManagementPolicy"
_RECIPIENTS = ("Admin", "Requestor", "Approver")


def policy_id(tenant: Tenant, role: Role) -> str:
    policy_guid = uuid.uuid5(uuid.UUID(tenant.tenant_id), f"policy:{role.id}")
    return f"DirectoryRole_{tenant.tenant_id}_{policy_guid}"


def policy_assignment(tenant: Tenant, role: Role, *, expand_policy: bool) -> dict[str, Any]:
    """One unifiedRoleManagementPolicyAssignment, optionally with ``policy($expand=rules)``."""
    pid = policy_id(tenant, role)
    body: dict[str, Any] = {
        "id": f"{pid}_{role.id}",
        "policyId": pid,
        "scopeId": "/",
        "scopeType": "DirectoryRole",
        "roleDefinitionId": role.id,
    }
    if expand_policy:
        body["policy"] = {
            "id": pid,
            "displayName": "DirectoryRole",
            "description": "DirectoryRole",
            "isOrganizationDefault": False,
            "scopeId": "/",
            "scopeType": "DirectoryRole",
            "lastModifiedDateTime": None,
            "lastModifiedBy": {"displayName": None, "id": None},
            "rules": policy_rules(tenant, role),
        }
    return body


def _target(caller: str, level: str) -> dict[str, Any]:
    return {
        "caller": caller,
        "operations": ["all"],
        "level": level,
        "inheritableSettings": [],
        "enforcedSettings": [],
    }


def _expiration(
    rule_id: str, required: bool, maximum: str, caller: str, level: str
) -> dict[str, Any]:
    return {
        "@odata.type": f"{_TYPE}ExpirationRule",
        "id": rule_id,
        "isExpirationRequired": required,
        "maximumDuration": maximum,
        "target": _target(caller, level),
    }


def _enablement(rule_id: str, enabled: list[str], caller: str, level: str) -> dict[str, Any]:
    return {
        "@odata.type": f"{_TYPE}EnablementRule",
        "id": rule_id,
        "enabledRules": enabled,
        "target": _target(caller, level),
    }


def _notifications(suffix: str, caller: str, level: str) -> list[dict[str, Any]]:
    return [
        {
            "@odata.type": f"{_TYPE}NotificationRule",
            "id": f"Notification_{recipient}_{suffix}",
            "notificationType": "Email",
            "recipientType": recipient,
            "notificationLevel": "All",
            "isDefaultRecipientsEnabled": True,
            "notificationRecipients": [],
            "target": _target(caller, level),
        }
        for recipient in _RECIPIENTS
    ]


def _approvers(tenant: Tenant, listed: tuple[Approver, ...]) -> list[dict[str, Any]]:
    approvers: list[dict[str, Any]] = []
    for approver in listed:
        if approver.user is not None:
            user = tenant.find_user(approver.user)
            assert user is not None  # checked when the tenant was built
            approvers.append(
                {
                    "@odata.type": "#microsoft.graph.singleUser",
                    "userId": user.id,
                    "description": user.display_name,
                }
            )
        elif approver.group is not None:
            group = tenant.find_group(approver.group)
            assert group is not None
            approvers.append(
                {
                    "@odata.type": "#microsoft.graph.groupMembers",
                    "groupId": group.id,
                    "description": group.display_name,
                }
            )
    return approvers


def _approval(tenant: Tenant, role: Role) -> dict[str, Any]:
    settings = role.activation
    return {
        "@odata.type": f"{_TYPE}ApprovalRule",
        "id": "Approval_EndUser_Assignment",
        "target": _target("EndUser", "Assignment"),
        "setting": {
            "isApprovalRequired": settings.approval_required,
            "isApprovalRequiredForExtension": settings.approval_required_for_extension,
            "isRequestorJustificationRequired": True,
            "approvalMode": settings.approval_mode,
            "approvalStages": [
                {
                    "approvalStageTimeOutInDays": stage.timeout_days,
                    "isApproverJustificationRequired": stage.approver_justification_required,
                    "escalationTimeInMinutes": stage.escalation_minutes,
                    "isEscalationEnabled": stage.escalation_enabled,
                    "primaryApprovers": _approvers(tenant, stage.approvers),
                    "escalationApprovers": _approvers(tenant, stage.escalation_approvers),
                }
                for stage in settings.stages
            ],
        },
    }


def end_user_enabled_rules(role: Role) -> list[str]:
    settings = role.activation
    return [
        name
        for name, on in (
            ("MultiFactorAuthentication", settings.require_mfa),
            ("Justification", settings.require_justification),
            ("Ticketing", settings.require_ticket),
        )
        if on
    ]


def policy_rules(tenant: Tenant, role: Role) -> list[dict[str, Any]]:
    """The 17 rules, in the order the Graph docs example lists them."""
    admin = role.admin_assignment
    activation = role.activation
    return [
        _expiration("Expiration_Admin_Eligibility", False, "P365D", "Admin", "Eligibility"),
        _enablement("Enablement_Admin_Eligibility", [], "Admin", "Eligibility"),
        *_notifications("Admin_Eligibility", "Admin", "Eligibility"),
        _expiration(
            "Expiration_Admin_Assignment",
            admin.expiration_required,
            admin.maximum_duration,
            "Admin",
            "Assignment",
        ),
        _enablement(
            "Enablement_Admin_Assignment",
            ["Justification"] if admin.require_justification else [],
            "Admin",
            "Assignment",
        ),
        *_notifications("Admin_Assignment", "Admin", "Assignment"),
        _expiration(
            "Expiration_EndUser_Assignment",
            True,
            activation.maximum_duration,
            "EndUser",
            "Assignment",
        ),
        _enablement(
            "Enablement_EndUser_Assignment", end_user_enabled_rules(role), "EndUser", "Assignment"
        ),
        _approval(tenant, role),
        {
            "@odata.type": f"{_TYPE}AuthenticationContextRule",
            "id": "AuthenticationContext_EndUser_Assignment",
            "isEnabled": activation.authentication_context is not None,
            "claimValue": activation.authentication_context,
            "target": _target("EndUser", "Assignment"),
        },
        *_notifications("EndUser_Assignment", "EndUser", "Assignment"),
    ]

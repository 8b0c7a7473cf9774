"""``/identity/conditionalAccess/policies``: the tenant's Conditional Access policies, shaped as
Graph's conditionalAccessPolicy resource (v1.0)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from stand_ins.graph_emulator.errors import not_found
from stand_ins.graph_emulator.isotime import format_instant
from stand_ins.graph_emulator.odata_responses import GraphCall, apply_filter, collection, entity
from stand_ins.graph_emulator.tenant import ConditionalAccessPolicy, Tenant

# Any one of these lets a caller read the policies (list-policies permissions table).
POLICIES_READ = {"Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"}
_CONTEXT = "identity/conditionalAccess/policies"


def policy_json(policy: ConditionalAccessPolicy, tenant: Tenant) -> dict[str, Any]:
    roles = [role.id for r in policy.include_roles if (role := tenant.find_role(r)) is not None]
    users = []
    for ref in policy.include_users:
        user = None if ref == "All" else tenant.find_user(ref)
        users.append(user.id if user is not None else ref)  # "All" (the tenant checked the rest)
    created = format_instant(policy.created)
    return {
        "id": policy.id,
        "templateId": None,
        "displayName": policy.display_name,
        "createdDateTime": created,
        "modifiedDateTime": created,
        "state": policy.state,
        "sessionControls": None,
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": ["all"],
            "platforms": None,
            "locations": None,
            "devices": None,
            "clientApplications": None,
            "applications": {
                "includeApplications": [] if policy.include_authentication_contexts else ["All"],
                "excludeApplications": [],
                "includeUserActions": [],
                "includeAuthenticationContextClassReferences": list(
                    policy.include_authentication_contexts
                ),
                "applicationFilter": None,
            },
            "users": {
                "includeUsers": users,
                "excludeUsers": [],
                "includeGroups": [],
                "excludeGroups": [],
                "includeRoles": roles,
                "excludeRoles": [],
                "includeGuestsOrExternalUsers": None,
                "excludeGuestsOrExternalUsers": None,
            },
        },
        "grantControls": {
            "operator": policy.operator,
            "builtInControls": list(policy.built_in_controls),
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": None,
        },
    }


def list_policies(call: GraphCall) -> Response:
    items = [policy_json(p, call.tenant) for p in call.tenant.conditional_access_policies]
    return collection(call, call.context(_CONTEXT), apply_filter(call, items))


def get_policy(call: GraphCall, policy_id: str) -> Response:
    for policy in call.tenant.conditional_access_policies:
        if policy.id == policy_id.lower():
            return entity(
                call, call.context(f"{_CONTEXT}/$entity"), policy_json(policy, call.tenant)
            )
    raise not_found(policy_id)

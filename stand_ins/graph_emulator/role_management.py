"""Graph's PIM endpoints for directory roles: definitions, instances, requests, policies."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from stand_ins.graph_emulator.directory import directory_object
from stand_ins.graph_emulator.errors import DropConnection, bad_request, not_found
from stand_ins.graph_emulator.faults import Faults
from stand_ins.graph_emulator.odata import FilterSyntaxError, equalities, parse_filter
from stand_ins.graph_emulator.odata_responses import (
    GraphCall,
    apply_filter,
    check_expand,
    collection,
    entity,
)
from stand_ins.graph_emulator.pim import PimState
from stand_ins.graph_emulator.policies import policy_assignment, policy_id, policy_rules
from stand_ins.graph_emulator.tenant import Role

_DIRECTORY = "roleManagement/directory"
_EXPANDABLE = {"roleDefinition": "", "principal": "", "directoryScope": "", "appScope": ""}
_REQUEST_EXPANDABLE = {**_EXPANDABLE, "activatedUsing": "", "targetSchedule": ""}


def role_definition_json(role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "description": role.description,
        "displayName": role.display_name,
        "isBuiltIn": True,
        "isEnabled": True,
        "resourceScopes": ["/"],
        "templateId": role.id,
        "version": "1",
        "rolePermissions": [{"allowedResourceActions": [], "condition": None}],
    }


def list_role_definitions(call: GraphCall) -> Response:
    roles = [role_definition_json(r) for r in call.tenant.roles]
    return collection(
        call, call.context(f"{_DIRECTORY}/roleDefinitions"), apply_filter(call, roles)
    )


def get_role_definition(call: GraphCall, role_id: str) -> Response:
    role = call.tenant.find_role(role_id.lower())
    if role is None:
        raise not_found(role_id)
    return entity(
        call, call.context(f"{_DIRECTORY}/roleDefinitions/$entity"), role_definition_json(role)
    )


def _expanded(call: GraphCall, item: dict[str, Any], names: list[str]) -> dict[str, Any]:
    item = dict(item)
    for name in names:
        if name == "roleDefinition":
            role = call.tenant.find_role(item["roleDefinitionId"])
            item["roleDefinition"] = None if role is None else role_definition_json(role)
        elif name == "principal":
            item["principal"] = directory_object(call.tenant, item["principalId"])
        else:
            item[name] = None
    return item


def _context(call: GraphCall, entity_set: str, names: list[str], suffix: str = "") -> str:
    expanded = f"({','.join(f'{n}()' for n in names)})" if names else ""
    return call.context(f"{_DIRECTORY}/{entity_set}{expanded}{suffix}")


def _for_current_user(
    call: GraphCall, on: str | None, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if on is None:
        return items
    if on != "principal":
        raise bad_request(f"The value '{on}' of parameter 'on' is not supported.")
    if not call.caller.is_user:
        raise bad_request("filterByCurrentUser is only valid with delegated authentication flow.")
    # Like Graph, only the caller's own (direct) items: group-based ones are not returned.
    return [i for i in items if i["principalId"] == call.caller.object_id]


def list_instances(
    call: GraphCall, state: PimState, entity_set: str, on: str | None = None
) -> Response:
    entity_name = (
        "unifiedRoleEligibilityScheduleInstance"
        if "Eligibility" in entity_set
        else "unifiedRoleAssignmentScheduleInstance"
    )
    names = check_expand(call, _EXPANDABLE, entity_name)
    items = (
        state.eligibility_instances()
        if "Eligibility" in entity_set
        else state.assignment_instances()
    )
    items = apply_filter(call, _for_current_user(call, on, items))
    context = (
        call.context(f"Collection({entity_name})") if on else _context(call, entity_set, names)
    )
    return collection(call, context, items, lambda i: _expanded(call, i, names))


def list_requests(call: GraphCall, state: PimState, on: str | None = None) -> Response:
    names = check_expand(call, _REQUEST_EXPANDABLE, "unifiedRoleAssignmentScheduleRequest")
    if on == "approver":
        # "Only principal and approver are currently supported" (filterByCurrentUser docs).
        if not call.caller.is_user:
            raise bad_request(
                "filterByCurrentUser is only valid with delegated authentication flow."
            )
        items = apply_filter(call, state.requests_for_approver(call.caller.object_id))
    else:
        items = apply_filter(call, _for_current_user(call, on, state.list_requests()))
    context = (
        call.context("Collection(unifiedRoleAssignmentScheduleRequest)")
        if on
        else _context(call, "roleAssignmentScheduleRequests", names)
    )
    return collection(call, context, items, lambda i: _expanded(call, i, names))


def get_request(call: GraphCall, state: PimState, request_id: str) -> Response:
    names = check_expand(call, _REQUEST_EXPANDABLE, "unifiedRoleAssignmentScheduleRequest")
    item = _expanded(call, state.get_request(request_id), names)
    return entity(call, _context(call, "roleAssignmentScheduleRequests", names, "/$entity"), item)


def create_request(call: GraphCall, state: PimState, faults: Faults) -> Response:
    try:
        body = call.request.get_json(force=True, silent=False)
    except BadRequest:
        raise bad_request("The request body is not valid JSON.") from None
    drop_answer = faults.take_create_drop()
    try:
        created = state.create_request(body, call.caller)
    finally:
        if drop_answer:
            # The request was processed (or refused) in full; only the answer is lost.
            raise DropConnection("dropping the answer of a processed create")
    return entity(
        call, _context(call, "roleAssignmentScheduleRequests", [], "/$entity"), created, status=201
    )


def cancel_request(call: GraphCall, state: PimState, request_id: str) -> Response:
    state.cancel_request(request_id)
    return Response(status=204)


def list_policy_assignments(call: GraphCall) -> Response:
    raw = call.arg("$filter")
    try:
        given = equalities(parse_filter(raw)) if raw else {}
    except FilterSyntaxError as error:
        raise bad_request(str(error)) from None
    if "scopeId" not in given or "scopeType" not in given:
        raise bad_request("The filter on scopeId and scopeType is required.")
    names = check_expand(call, {"policy": ""}, "unifiedRoleManagementPolicyAssignment")
    with_rules = any("rules" in n for n in names)
    items = []
    if given["scopeId"] == "/" and str(given["scopeType"]) in ("DirectoryRole", "Directory"):
        items = [
            policy_assignment(call.tenant, r, expand_policy=bool(names)) for r in call.tenant.roles
        ]
    if not with_rules:
        for item in items:
            item.get("policy", {}).pop("rules", None)
    items = apply_filter(call, items)
    suffix = "(policy(rules()))" if with_rules else "(policy())" if names else ""
    return collection(
        call, call.context(f"policies/roleManagementPolicyAssignments{suffix}"), items
    )


def get_policy(call: GraphCall, requested_id: str) -> Response:
    role = next(
        (r for r in call.tenant.roles if policy_id(call.tenant, r).lower() == requested_id.lower()),
        None,
    )
    if role is None:
        raise not_found(requested_id)
    names = check_expand(call, {"rules": "", "effectiveRules": ""}, "unifiedRoleManagementPolicy")
    body = policy_assignment(call.tenant, role, expand_policy=True)["policy"]
    if not names:
        body.pop("rules")
    context = "policies/roleManagementPolicies" + ("(rules())" if names else "") + "/$entity"
    return entity(call, call.context(context), body)


def list_policy_rules(call: GraphCall, requested_id: str) -> Response:
    role = next(
        (r for r in call.tenant.roles if policy_id(call.tenant, r).lower() == requested_id.lower()),
        None,
    )
    if role is None:
        raise not_found(requested_id)
    context = call.context(f"policies/roleManagementPolicies('{requested_id}')/rules")
    return collection(call, context, policy_rules(call.tenant, role))

"""Routing of ``/v1.0/...``: bearer check, application-permission check, then the handler."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from werkzeug.wrappers import Request, Response

from stand_ins.graph_emulator import (
    approval_endpoints,
    conditional_access,
    directory,
    role_management,
)
from stand_ins.graph_emulator.errors import GraphError, bad_request
from stand_ins.graph_emulator.faults import Faults
from stand_ins.graph_emulator.odata_responses import GraphCall
from stand_ins.graph_emulator.pim import PimState
from stand_ins.graph_emulator.tenant import Tenant
from stand_ins.graph_emulator.token import SecurityTokenService

_RM_READ = {
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
}
_DIRECTORY_READ = {"Directory.Read.All", "Directory.ReadWrite.All"}
# Any one permission of a set lets the call through (the docs' "least to most privileged").
USERS_READ = {"User.Read.All", "User.ReadWrite.All", "User.ReadBasic.All", *_DIRECTORY_READ}
MEMBERS_READ = {
    "GroupMember.Read.All",
    "GroupMember.ReadWrite.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    *_DIRECTORY_READ,
}
ROLE_DEFINITIONS_READ = {*_RM_READ, *_DIRECTORY_READ}
ELIGIBILITY_READ = {
    "RoleEligibilitySchedule.Read.Directory",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    *_RM_READ,
}
ASSIGNMENTS_READ = {
    "RoleAssignmentSchedule.Read.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
    *_RM_READ,
}
ASSIGNMENTS_WRITE = {
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
}
POLICIES_READ = {
    "RoleManagementPolicy.Read.Directory",
    "RoleManagementPolicy.ReadWrite.Directory",
    *_RM_READ,
}
_NO_PERMISSION: set[str] = set()  # /me: any signed-in user
# Approvals of Entra role activations (beta): delegated permissions only, per the docs tables.
APPROVALS_READ = {
    "RoleAssignmentSchedule.Read.Directory",
    "RoleAssignmentSchedule.ReadWrite.Directory",
}
APPROVALS_WRITE = {"RoleAssignmentSchedule.ReadWrite.Directory"}
_BOTH = frozenset({"v1.0", "beta"})
_BETA = frozenset({"beta"})

_DIR = "/roleManagement/directory"
_ID = r"(?P<%s>[^/()]+)"
_ON = r"/filterByCurrentUser\(on='(?P<on>[^']*)'\)"
_REQUESTS = f"{_DIR}/roleAssignmentScheduleRequests"
_APPROVALS = f"{_DIR}/roleAssignmentApprovals/" + _ID % "approval_id"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    permissions: set[str]
    handler: Callable[..., Response]
    versions: frozenset[str] = _BOTH


class GraphApi:
    """The ``/v1.0`` surface of the emulator, mirrored under ``/beta`` (as Graph's beta mirrors
    v1.0), plus the beta-only approvals of Entra role activations."""

    def __init__(
        self, tenant: Tenant, state: PimState, sts: SecurityTokenService, faults: Faults
    ) -> None:
        self.tenant, self.state, self.sts, self.faults = tenant, state, sts, faults
        s = state
        self.routes = [
            self._route("GET", "/me", _NO_PERMISSION, directory.get_me),
            self._route("GET", "/users", USERS_READ, directory.list_users),
            self._route(
                "GET", r"/users(?:/|\(')(?P<ref>[^/]+?)(?:'\))?", USERS_READ, directory.get_user
            ),
            self._route(
                "GET",
                r"/users(?:/|\(')(?P<ref>[^/]+?)(?:'\))?"
                r"/(?:transitiveMemberOf|memberOf)(?:/microsoft\.graph\.group)?",
                USERS_READ | MEMBERS_READ,
                directory.user_groups,
            ),
            self._route("GET", "/groups/" + _ID % "group_id", MEMBERS_READ, directory.get_group),
            self._route(
                "GET",
                "/groups/"
                + _ID % "group_id"
                + r"/(?:members|transitiveMembers)(?:/microsoft\.graph\.user)?",
                MEMBERS_READ,
                directory.group_members,
            ),
            self._route(
                "GET",
                f"{_DIR}/roleDefinitions",
                ROLE_DEFINITIONS_READ,
                role_management.list_role_definitions,
            ),
            self._route(
                "GET",
                f"{_DIR}/roleDefinitions/" + _ID % "role_id",
                ROLE_DEFINITIONS_READ,
                role_management.get_role_definition,
            ),
            self._route(
                "GET",
                f"{_DIR}/(?P<entity_set>roleEligibilityScheduleInstances)(?:{_ON})?",
                ELIGIBILITY_READ,
                partial(role_management.list_instances, state=s),
            ),
            self._route(
                "GET",
                f"{_DIR}/(?P<entity_set>roleAssignmentScheduleInstances)(?:{_ON})?",
                ASSIGNMENTS_READ,
                partial(role_management.list_instances, state=s),
            ),
            self._route(
                "GET",
                f"{_REQUESTS}(?:{_ON})?",
                ASSIGNMENTS_READ,
                partial(role_management.list_requests, state=s),
            ),
            self._route(
                "POST",
                _REQUESTS,
                ASSIGNMENTS_WRITE,
                partial(role_management.create_request, state=s, faults=faults),
            ),
            self._route(
                "GET",
                f"{_REQUESTS}/" + _ID % "request_id",
                ASSIGNMENTS_READ,
                partial(role_management.get_request, state=s),
            ),
            self._route(
                "POST",
                f"{_REQUESTS}/" + _ID % "request_id" + "/cancel",
                ASSIGNMENTS_WRITE,
                partial(role_management.cancel_request, state=s),
            ),
            self._route(
                "GET",
                _APPROVALS,
                APPROVALS_READ,
                partial(approval_endpoints.get_approval, state=s),
                _BETA,
            ),
            self._route(
                "GET",
                _APPROVALS + "/steps",
                APPROVALS_READ,
                partial(approval_endpoints.list_steps, state=s),
                _BETA,
            ),
            self._route(
                "GET",
                _APPROVALS + "/steps/" + _ID % "step_id",
                APPROVALS_READ,
                partial(approval_endpoints.get_step, state=s),
                _BETA,
            ),
            self._route(
                "PATCH",
                _APPROVALS + "/steps/" + _ID % "step_id",
                APPROVALS_WRITE,
                partial(approval_endpoints.review_step, state=s),
                _BETA,
            ),
            self._route(
                "GET",
                "/policies/roleManagementPolicyAssignments",
                POLICIES_READ,
                role_management.list_policy_assignments,
            ),
            self._route(
                "GET",
                "/policies/roleManagementPolicies/" + _ID % "requested_id",
                POLICIES_READ,
                role_management.get_policy,
            ),
            self._route(
                "GET",
                "/policies/roleManagementPolicies/" + _ID % "requested_id" + "/rules",
                POLICIES_READ,
                role_management.list_policy_rules,
            ),
            self._route(
                "GET",
                "/identity/conditionalAccess/policies",
                conditional_access.POLICIES_READ,
                conditional_access.list_policies,
            ),
            self._route(
                "GET",
                "/identity/conditionalAccess/policies/" + _ID % "policy_id",
                conditional_access.POLICIES_READ,
                conditional_access.get_policy,
            ),
        ]

    @staticmethod
    def _route(
        method: str,
        pattern: str,
        permissions: set[str],
        handler: Callable[..., Response],
        versions: frozenset[str] = _BOTH,
    ) -> Route:
        return Route(
            method, re.compile(pattern.rstrip("/") + "/?$"), permissions, handler, versions
        )

    def handle(self, request: Request, base_url: str, path: str, version: str = "v1.0") -> Response:
        """Answer ``path`` (the part after ``/v1.0`` or ``/beta``); GraphError for refusals."""
        caller = self.sts.authenticate(request.headers.get("Authorization"), base_url)
        matched_path = False
        for route in self.routes:
            if version not in route.versions:
                continue
            match = route.pattern.match(path)
            if match is None:
                continue
            matched_path = True
            if route.method != request.method:
                continue
            if route.permissions and not (route.permissions & caller.permissions):
                raise GraphError(
                    403,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                )
            call = GraphCall(request, caller, f"{base_url}/{version}", path, self.tenant)
            kwargs = {k: v for k, v in match.groupdict().items() if v is not None}
            return route.handler(call, **kwargs)
        if matched_path:
            raise GraphError(
                405,
                "Request_BadRequest",
                f"The HTTP method '{request.method}' is not supported for this resource.",
            )
        segment = path.strip("/").split("/")[-1] if path.strip("/") else ""
        raise bad_request(f"Resource not found for the segment '{segment}'.")

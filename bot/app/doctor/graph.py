"""Doctor's Entra ID and Graph checks: token, permissions, policy roles and approver groups."""

from __future__ import annotations

import base64
import binascii
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.graph import (
    BearerAuth,
    MsalHttpClient,
    RetryPolicy,
    TokenProvider,
    build_http_client,
    build_token_provider,
)
from bot.adapters.graph.client import USER_FIELDS
from bot.adapters.graph.errors import GraphError
from bot.adapters.graph.odata import literal, query
from bot.adapters.graph.parsing import directory_user
from bot.adapters.graph.transport import GraphTransport
from bot.app.doctor.report import Finding, failed, not_checked, note, passed
from bot.app.policy_file import PolicyFile
from bot.app.settings import Settings
from bot.domain.errors import PimAuthError, PimError
from bot.domain.ports import IdentityLink
from bot.domain.rules import ApproverKind, ApproverLink
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork

ROLE_ADMIN = "Privileged Role Administrator"
# Built-in role template ids are the same in every tenant.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
NOBODY = "00000000-0000-0000-0000-000000000000"
ELIGIBILITY = "/roleManagement/directory/roleEligibilityScheduleInstances"
ASSIGNMENTS = "/roleManagement/directory/roleAssignmentScheduleInstances"
REQUESTS = "/roleManagement/directory/roleAssignmentScheduleRequests"
ROLE_DEFINITIONS = "/roleManagement/directory/roleDefinitions"
POLICY_ASSIGNMENTS = "/policies/roleManagementPolicyAssignments"
# Whether the app may write is only provable by writing. This request is refused by PIM's
# validation whatever happens: it is validation-only, removes rather than grants, targets the
# least powerful built-in role, and names no principal (the nil GUID). Graph checks the caller's
# permissions first, so a 403 means "may not write" and a 400 from PIM means "may write".
WRITE_PROBE = {
    "action": "adminRemove",
    "principalId": NOBODY,
    "roleDefinitionId": SECURITY_READER,
    "directoryScopeId": "/",
    "justification": "pimbot doctor: permission check (validation only, no principal)",
    "isValidationOnly": True,
}





@dataclass(frozen=True)
class Probe:
    """One Graph call that proves a permission; ``least`` is the least privileged that allows
    it, ``broader`` the usual alternative (graph-pim.md §3)."""

    what: str
    method: str
    path: str
    least: str
    broader: str
    body: Mapping[str, Any] | None = None
    # A 4xx other than 401/403 proves authorization passed (the probe names nothing real).
    refusal_is_pass: bool = False


PROBES = (
    Probe(
        "read role eligibility (roleEligibilityScheduleInstances)",
        "GET",
        f"{ELIGIBILITY}?$top=1",
        "RoleEligibilitySchedule.Read.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "read active role assignments (roleAssignmentScheduleInstances)",
        "GET",
        f"{ASSIGNMENTS}?$top=1",
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "read role settings (roleManagementPolicyAssignments)",
        "GET",
        POLICY_ASSIGNMENTS
        + "?"
        + query(
            {
                "$filter": "scopeId eq '/' and scopeType eq 'DirectoryRole' and "
                f"roleDefinitionId eq {literal(GLOBAL_ADMINISTRATOR)}"
            }
        ),
        "RoleManagementPolicy.Read.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "create role assignment schedule requests",
        "POST",
        REQUESTS,
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
        body=WRITE_PROBE,
        refusal_is_pass=True,
    ),
    Probe("read users", "GET", "/users?$top=1&$select=id", "User.Read.All", "Directory.Read.All"),
    Probe(
        "read groups and their members",
        "GET",
        f"/groups/{NOBODY}?$select=id",
        "GroupMember.Read.All",
        "Directory.Read.All",
        refusal_is_pass=True,
    ),
)


def check_microsoft(settings: Settings, policy: PolicyFile | None) -> Iterator[Finding]:
    if settings.problems_for_graph():
        yield not_checked("Entra ID and Microsoft Graph", "set the AZURE_* settings first")
        return
    http = build_http_client(settings)
    try:
        provider = build_token_provider(settings, MsalHttpClient(http))
        token, finding = entra_token(provider, settings)
        yield finding
        if token is None:
            yield not_checked(
                "Graph permissions, policy roles and approver groups", "needs a token from Entra ID"
            )
            return
        graph = GraphTransport(
            http, auth=BearerAuth(provider), policy=RetryPolicy(attempts=2, max_total_wait=5)
        )
        granted = granted_permissions(token)
        for probe in PROBES:
            yield check_permission(graph, probe, granted)
        yield check_access_policies(graph)
        if policy is not None:
            yield from check_policy_roles(graph, policy)
            yield from check_approver_groups(graph, policy)
            yield from check_approver_links(graph, policy, settings)
    finally:
        http.close()


def check_access_policies(graph: GraphTransport) -> Finding:
    """Optional: with Policy.Read.All the DM of an activated role lists the Conditional Access
    policies that target it (the seed's second half); without, pimbot says nothing of them."""
    what = "read Conditional Access policies (listed when a role becomes active)"
    try:
        answer = graph.request("GET", "/identity/conditionalAccess/policies?$top=1")
    except PimError as exc:
        return note(f"Graph: could not check whether pimbot may {what}", exc.user_message)
    if answer.is_success:
        return passed(f"Graph: pimbot may {what}")
    return note(
        f"Graph: pimbot may not {what}",
        f"HTTP {answer.status_code}: grant Policy.Read.All (application) to have them shown; "
        "without it pimbot leaves them out",
    )


def entra_token(provider: TokenProvider, settings: Settings) -> tuple[str | None, Finding]:
    app = f"app {settings.azure_client_id} in tenant {settings.azure_tenant_id}"
    try:
        token = provider.token()
    except PimAuthError as exc:
        return None, failed(
            f"Entra ID: no token for {app} ({exc.code or 'refused'})", exc.user_message
        )
    except PimError as exc:
        return None, failed(f"Entra ID: no token for {app}", exc.user_message)
    granted = granted_permissions(token)
    listed = (
        "the token does not list its permissions"
        if granted is None
        else "application permissions: " + (", ".join(granted) or "none")
    )
    return token, passed(f"Entra ID: token issued for {app} ({listed})")


def granted_permissions(token: str) -> tuple[str, ...] | None:
    """The ``roles`` claim of an app-only token (its consented application permissions).

    Read only to explain a 403, never to decide anything: the token is not verified here, and
    Microsoft may make its tokens opaque at any time, hence None when it cannot be read.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles") or []
    return tuple(sorted(str(r) for r in roles)) if isinstance(roles, list) else None


def check_permission(
    graph: GraphTransport, probe: Probe, granted: tuple[str, ...] | None
) -> Finding:
    try:
        response = graph.request(probe.method, probe.path, json=probe.body)
    except PimError as exc:
        return failed(f"Graph: cannot check whether pimbot may {probe.what}", exc.user_message)
    error = GraphError(response)
    status = response.status_code
    if response.is_success or (probe.refusal_is_pass and status in (400, 404)):
        refused = f" (a probe naming nothing real got {status} {error.code}, as intended)"
        answered = "" if response.is_success else refused
        return passed(f"Graph: pimbot may {probe.what}{answered}")
    if status == 403:
        return failed(
            f"Graph: pimbot may not {probe.what} (403 {error.code or 'Forbidden'})",
            _grant_fix(probe, granted),
        )
    if status == 401:
        return failed(
            f"Graph: did not accept pimbot's token (401 {error.code or ''})".rstrip(),
            "AZURE_AUTHORITY_HOST and PIMBOT_GRAPH_URL must belong to the same cloud",
        )
    return failed(
        f"Graph: unexpected answer {status} {error.code or ''} to {probe.what}".rstrip(),
        "try again in a few minutes; if it persists check PIMBOT_GRAPH_URL",
    )


def _grant_fix(probe: Probe, granted: tuple[str, ...] | None) -> str:
    fix = (
        f"add the Microsoft Graph application permission {probe.least} (or {probe.broader}) "
        "to the app registration and grant admin consent"
    )
    if probe.body is not None:
        fix += f"; admin actions also need the app to hold the {ROLE_ADMIN} directory role"
    if granted is not None:
        fix += f" (the token grants: {', '.join(granted) or 'nothing'})"
    return fix


# --- what the policy file names --------------------------------------------------------------


class _Forbidden(Exception):
    pass


def check_policy_roles(graph: GraphTransport, policy: PolicyFile) -> Iterator[Finding]:
    named = policy.named_roles()
    if not named:
        return
    try:
        known, source = _known_roles(graph)
    except _Forbidden:
        yield failed(
            "policy roles: Graph refused to list role definitions and eligibilities",
            "grant RoleEligibilitySchedule.Read.Directory (or RoleManagement.Read.Directory) "
            "with admin consent",
        )
        return
    except PimError as exc:
        yield failed("policy roles: cannot look them up in Entra ID", exc.user_message)
        return
    found = []
    for key in named:
        display = known.get(key)
        if display is not None:
            found.append(display)
            continue
        names = sorted(set(known.values()))
        close = difflib.get_close_matches(key, [n.casefold() for n in names], n=1)
        hint = f"did you mean {_original(close[0], names)!r}? " if close else ""
        yield failed(
            f"policy file names role {key!r}, which is not among the {source} in Entra ID",
            f"{hint}fix roles.{key} in {policy.source}: use the role's display name or its "
            "role definition ID",
        )
    if found:
        yield passed(f"policy roles exist in Entra ID: {', '.join(found)}")


def _known_roles(graph: GraphTransport) -> tuple[dict[str, str], str]:
    """Lower-cased id and case-folded name → display name, and where they came from.

    Listing role definitions needs RoleManagement.Read.Directory, which the least privileged
    set of permissions lacks; then the roles anyone is eligible for are what can be requested.
    """
    roles: dict[str, str] = {}
    try:
        for item in _pages(graph, f"{ROLE_DEFINITIONS}?$select=id,displayName,templateId"):
            _remember(roles, item)
        return roles, "role definitions"
    except _Forbidden:
        pass
    for item in _pages(graph, f"{ELIGIBILITY}?$expand=roleDefinition"):
        definition = item.get("roleDefinition")
        if isinstance(definition, Mapping):
            _remember(roles, definition)
    return roles, "roles anyone is eligible for"


def _remember(roles: dict[str, str], item: Mapping[str, Any]) -> None:
    name = str(item.get("displayName") or "")
    for key in (item.get("id"), item.get("templateId")):
        if key:
            roles[str(key).lower()] = name
    if name:
        roles[name.casefold()] = name


def _original(folded: str, names: list[str]) -> str:
    return next((n for n in names if n.casefold() == folded), folded)


def check_approver_groups(graph: GraphTransport, policy: PolicyFile) -> Iterator[Finding]:
    groups: dict[str, list[str]] = {}
    for role, rules in [("defaults", policy.defaults), *sorted(policy.roles.items())]:
        for spec in rules.approvers:
            if spec.kind is ApproverKind.ENTRA_GROUP and role not in groups.get(spec.value, []):
                groups.setdefault(spec.value, []).append(role)
    for group_id, roles in groups.items():
        yield _approver_group(graph, group_id, roles, policy)


def check_approver_links(
    graph: GraphTransport, policy: PolicyFile, settings: Settings
) -> Iterator[Finding]:
    """Approvers the policy names in Entra (groups, users) whose Slack account has no link
    made by an operator or by sign-in: they would be linked by their Slack email, which a
    Slack admin can set on any account. Where approver_link requires better, they cannot
    approve at all until linked."""
    roles_of: dict[str, set[str]] = {}
    strict: set[str] = set()
    for role, rules in [("defaults", policy.defaults), *sorted(policy.roles.items())]:
        for spec in rules.approvers:
            if spec.kind in (ApproverKind.ENTRA_GROUP, ApproverKind.ENTRA_USER):
                roles_of.setdefault(f"{spec.kind.value}:{spec.value}", set()).add(role)
                if rules.approver_link is ApproverLink.OPERATOR_OR_SIGN_IN:
                    strict.add(role)
    if not roles_of:
        return
    people: dict[str, tuple[str, set[str]]] = {}
    try:
        for key, roles in roles_of.items():
            kind, _, object_id = key.partition(":")
            path = (
                f"/groups/{object_id}/transitiveMembers?$select={USER_FIELDS}"
                if kind == ApproverKind.ENTRA_GROUP.value
                else f"/users/{object_id}?$select={USER_FIELDS}"
            )
            found = (
                list(_pages(graph, path))
                if kind == ApproverKind.ENTRA_GROUP.value
                else [_json(graph.request("GET", path))]
            )
            for obj in found:
                user = directory_user(obj)
                if user is not None and user.account_enabled:
                    name = f"{user.display_name} ({user.user_principal_name or user.id})"
                    people.setdefault(user.id, (name, set()))[1].update(roles)
    except (PimError, _Forbidden):
        yield not_checked("approver links", "cannot list the approvers in Entra ID")
        return
    links: dict[str, IdentityLink | None] = dict.fromkeys(people)
    fresh = settings.database_url is None and not (settings.data_dir / "pimbot.db").exists()
    try:
        if not fresh:  # no database yet: nobody is linked (and doctor creates nothing)
            engine = make_engine(settings.effective_database_url())
            try:
                with SqlUnitOfWork(make_session_factory(engine)) as uow:
                    links = {entra_id: uow.identities.for_entra(entra_id) for entra_id in people}
            finally:
                engine.dispose()
    except SQLAlchemyError:
        yield not_checked("approver links", "needs the database (see the database line)")
        return
    weak = sorted(
        (name, roles)
        for entra_id, (name, roles) in people.items()
        if (link := links[entra_id]) is None or link.source == "email"
    )
    if not weak:
        yield passed(
            "approver links: every approver the policy names in Entra is linked by "
            "an operator or by sign-in"
        )
        return
    listed = "; ".join(f"{name} for {', '.join(sorted(roles))}" for name, roles in weak)
    text = f"approver links: linked by Slack email only (or not yet): {listed}"
    fix = "link each with `pimbot link <team> <slack user id> <entra object id>`"
    if any(roles & strict for _, roles in weak):
        yield failed(text + " — approver_link: operator_or_sign_in refuses them", fix)
    else:
        yield passed(text + f" ({fix}, or set approver_link: operator_or_sign_in)")


def _approver_group(
    graph: GraphTransport, group_id: str, roles: list[str], policy: PolicyFile
) -> Finding:
    where = f"approver group {group_id} (for {', '.join(roles)})"
    try:
        response = graph.request("GET", f"/groups/{group_id}?$select=id,displayName")
    except PimError as exc:
        return failed(f"Graph: cannot look up {where}", exc.user_message)
    if response.status_code == 404:
        return failed(
            f"policy file names {where}, which Entra ID does not have",
            f"fix entra_group in {policy.source}: use the group's Object ID (Entra ID → Groups)",
        )
    if response.status_code == 403:
        return failed(
            f"Graph: pimbot may not read {where}", "grant GroupMember.Read.All with admin consent"
        )
    if not response.is_success:
        return failed(
            f"Graph: cannot look up {where} ({response.status_code})", "try again in a few minutes"
        )
    name = _json(response).get("displayName") or group_id
    return passed(f"policy approver group {name!r} ({group_id}) exists in Entra ID")


def _pages(graph: GraphTransport, path: str) -> Iterator[Mapping[str, Any]]:
    url: str | None = path
    for _ in range(100):
        if url is None:
            return
        response = graph.request("GET", url)
        if response.status_code == 403:
            raise _Forbidden(path)
        if not response.is_success:
            raise PimError(f"Graph answered {response.status_code} to {path.split('?')[0]}")
        page = _json(response)
        values = page.get("value")
        yield from (v for v in values if isinstance(v, Mapping)) if isinstance(values, list) else ()
        next_link = page.get("@odata.nextLink")
        url = next_link if isinstance(next_link, str) else None


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}

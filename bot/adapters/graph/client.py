"""GraphPimClient: ``bot.domain.ports.PimClient`` over Microsoft Graph (Entra directory roles).

Broker mode: an active, time-bound assignment is created with ``adminAssign`` and ended with
``adminRemove``; delegated mode (``acting_as``): the person's own ``selfActivate`` and
``selfDeactivate`` (DESIGN.md, "Two ways to activate"). Only domain values leave this module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from bot.adapters.graph import odata, parsing
from bot.adapters.graph.auth import BearerAuth, TokenProvider
from bot.adapters.graph.errors import error_from_response
from bot.adapters.graph.transport import (
    AmbiguousOutcome,
    GraphObserver,
    GraphTransport,
    Retry,
    RetryPolicy,
)
from bot.app.concurrency import ContextPreservingExecutor, SingleFlight
from bot.domain.durations import to_iso8601
from bot.domain.elevation import RoleRef, Ticket
from bot.domain.errors import (
    AlreadyDecided,
    AssignmentExists,
    AssignmentNotFound,
    NotAuthorized,
    PimRejected,
    PimUnavailable,
)
from bot.domain.ports import (
    AccessPolicy,
    ActivationRequest,
    ActivationResult,
    ActiveAssignment,
    ApprovalStageView,
    DirectoryUser,
    EligibleRole,
    PimClient,
)
from bot.domain.rules import RoleSettings

logger = logging.getLogger(__name__)

ROLES = "/roleManagement/directory"
REQUESTS = f"{ROLES}/roleAssignmentScheduleRequests"
ELIGIBILITY_INSTANCES = f"{ROLES}/roleEligibilityScheduleInstances"
ASSIGNMENT_INSTANCES = f"{ROLES}/roleAssignmentScheduleInstances"
POLICY_ASSIGNMENTS = "/policies/roleManagementPolicyAssignments"
CA_POLICIES = "/identity/conditionalAccess/policies"
USER_FIELDS = "id,displayName,userPrincipalName,mail,accountEnabled,userType"
MAX_PAGES = 200
CREATE_ATTEMPTS = 3
# How far back a request found after an ambiguous create may have been made (clock skew).
CREATE_LOOKBACK = timedelta(minutes=5)

Json = Mapping[str, Any]
# A person's role-assignable groups, kept this long: long enough to serve the reads of one
# form or one burst, short enough that timers see membership changes at once in practice.
GROUPS_TTL = 10.0
# Graph reads one listing may run side by side (a person's own list and each group's).
PARALLEL_READS = 8


class GraphPimClient:
    """Microsoft Graph PIM, app-only: one long-lived httpx client, tokens from a provider."""

    def __init__(
        self,
        http: httpx.Client,
        token_provider: TokenProvider,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
        observer: GraphObserver | None = None,
    ) -> None:
        self._transport = GraphTransport(
            http,
            auth=BearerAuth(token_provider),
            policy=retry,
            sleep=time.sleep if sleep is None else sleep,
            observer=observer,
        )
        self._now = now or (lambda: datetime.now(UTC))
        self._settings = (http, retry, sleep, now, observer)
        self._groups: SingleFlight[list[str]] = SingleFlight(GROUPS_TTL)
        # Broker mode asks PIM as the app (adminAssign); ``acting_as`` makes a client that
        # asks as the person (selfActivate).
        self._activate, self._deactivate = "adminAssign", "adminRemove"

    def acting_as(self, token_provider: TokenProvider) -> GraphPimClient:
        """The same Graph connection with a person's own token and PIM's *self* actions
        (delegated mode): activation is ``selfActivate`` and ending it ``selfDeactivate``, so
        PIM applies its MFA, authentication-context, justification, ticket and approval rules
        to the person, and records them, not the app, as the one who acted."""
        http, retry, sleep, now, observer = self._settings
        person = GraphPimClient(
            http, token_provider, retry=retry, sleep=sleep, now=now, observer=observer
        )
        person._activate, person._deactivate = "selfActivate", "selfDeactivate"
        return person

    @property
    def http(self) -> httpx.Client:
        """The connection pool to Graph (and to Entra ID, for msal)."""
        return self._transport.http

    def close(self) -> None:
        self._transport.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- users and groups -----------------------------------------------------------------

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        """By object id, then UPN, then mail; None when nobody matches."""
        ref = ref.strip()
        if not ref:
            return None
        if odata.is_guid(ref) or "@" in ref:
            found = self._get_user(ref)
            if found is not None or odata.is_guid(ref) or ref.startswith("$") or "#" in ref:
                return found
        # Slack gives an email, and mail ≠ UPN in many tenants.
        condition = f"mail eq {odata.literal(ref)} or userPrincipalName eq {odata.literal(ref)}"
        users = [
            user
            for obj in self._pages("/users", {"$filter": condition, "$select": USER_FIELDS})
            if (user := parsing.directory_user(obj)) is not None
        ]
        if len(users) > 1:
            logger.warning("%d directory users match %r; using the first", len(users), ref)
        return users[0] if users else None

    def users_by_email(self, email: str) -> list[DirectoryUser]:
        """Everyone an email could mean: mail or UPN (Graph compares them case-insensitively)."""
        email = email.strip()
        if not email or "@" not in email:
            return []
        condition = f"mail eq {odata.literal(email)} or userPrincipalName eq {odata.literal(email)}"
        found = {
            user.id: user
            for obj in self._pages("/users", {"$filter": condition, "$select": USER_FIELDS})
            if (user := parsing.directory_user(obj)) is not None
        }
        return list(found.values())

    def _get_user(self, ref: str) -> DirectoryUser | None:
        path = odata.with_query(odata.user_path(ref), {"$select": USER_FIELDS})
        response = self._transport.request("GET", path)
        if response.status_code == 404:
            return None
        return parsing.directory_user(self._json(response))

    def list_group_members(self, group_id: str) -> list[DirectoryUser]:
        path = f"/groups/{odata.segment(group_id)}/transitiveMembers"
        members = {}
        for obj in self._pages(path, {"$select": USER_FIELDS}):
            user = parsing.directory_user(obj) if parsing.is_user(obj) else None
            if user is not None:
                members[user.id] = user
        return list(members.values())

    def _role_assignable_groups(self, principal_id: str) -> list[str]:
        # Eligibility and active assignments both need it, read side by side for one form:
        # one call serves both (and a burst of the same person's clicks).
        return self._groups.get(principal_id, self._read_role_assignable_groups)

    def _read_role_assignable_groups(self, principal_id: str) -> list[str]:
        path = f"/users/{odata.segment(principal_id)}/transitiveMemberOf"
        params = {"$select": "id,displayName,isAssignableToRole"}
        groups = [
            group_id
            for obj in self._pages(path, params)
            if parsing.is_role_assignable_group(obj) and (group_id := parsing.text(obj, "id"))
        ]
        return list(dict.fromkeys(groups))

    # --- what a person holds ----------------------------------------------------------------

    def list_eligible_roles(self, principal_id: str) -> list[EligibleRole]:
        """Direct eligibilities first, then those through role-assignable groups (deduped)."""
        found: dict[tuple[str, str], EligibleRole] = {}
        for obj, group_id in self._instances(ELIGIBILITY_INSTANCES, principal_id):
            role = parsing.eligible_role(obj, via_group_id=group_id)
            if role is not None:
                found.setdefault((role.role.role_definition_id, role.role.directory_scope_id), role)
        return list(found.values())

    def list_active_assignments(self, principal_id: str) -> list[ActiveAssignment]:
        found: dict[tuple[str, str, str], ActiveAssignment] = {}
        for obj, group_id in self._instances(ASSIGNMENT_INSTANCES, principal_id):
            assignment = parsing.active_assignment(obj, via_group=group_id is not None)
            if assignment is not None:
                key = (
                    parsing.text(obj, "id") or "",
                    assignment.role.role_definition_id,
                    assignment.role.directory_scope_id,
                )
                found.setdefault(key, assignment)
        return list(found.values())

    def _instances(self, path: str, principal_id: str) -> Iterator[tuple[Json, str | None]]:
        """Schedule instances of the user, then of each role-assignable group they are in.

        The user's own list and their groups are asked for at once, then every group's list
        at once: two round trips to Graph whatever the number of groups, not 2 + groups."""
        with ContextPreservingExecutor(max_workers=PARALLEL_READS) as pool:
            own = pool.submit(self._listing, path, principal_id)
            groups = self._role_assignable_groups(principal_id)
            per_group = [
                (group_id, pool.submit(self._listing, path, group_id)) for group_id in groups
            ]
            for obj in own.result():
                yield obj, None
            for group_id, read in per_group:
                for obj in read.result():
                    yield obj, group_id

    def _listing(self, path: str, principal_id: str) -> list[Json]:
        return list(self._pages(path, _by_principal(principal_id)))

    # --- role settings ----------------------------------------------------------------------

    def get_role_settings(self, role: RoleRef) -> RoleSettings:
        condition = (
            "scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq "
            + odata.literal(role.role_definition_id)
        )
        params = {"$filter": condition, "$expand": "policy($expand=rules)"}
        for assignment in self._pages(POLICY_ASSIGNMENTS, params, role=role):
            if isinstance(assignment.get("policy"), Mapping):
                return parsing.role_settings(role.role_definition_id, assignment)
        raise PimRejected(
            f"PIM has no settings for {role.display_name}; is it a directory role PIM manages?",
            code="RoleManagementPolicyNotFound",
        )

    # --- conditional access -----------------------------------------------------------------

    def list_access_policies(self) -> list[AccessPolicy]:
        """Every Conditional Access policy of the tenant (needs Policy.Read.All)."""
        params = {"$select": "id,displayName,state,conditions"}
        policies = []
        for obj in self._pages(CA_POLICIES, params):
            policy = parsing.access_policy(obj)
            if policy is not None:
                policies.append(policy)
        return policies

    # --- PIM's own approvals (delegated: as the approver) ------------------------------------

    def approval_stages(self, approval_id: str) -> list[ApprovalStageView]:
        """The steps (stages) of PIM's approval of an Entra role activation, as the caller
        sees them: those started so far, each with ``assignedToMe`` for the caller."""
        path = f"{self._approvals_url()}/{odata.segment(approval_id)}/steps"
        return [
            stage
            for obj in self._pages(path, {})
            if (stage := parsing.approval_stage(obj)) is not None
        ]

    def review_stage(
        self, approval_id: str, stage_id: str, *, approve: bool, justification: str
    ) -> None:
        path = (
            f"{self._approvals_url()}/{odata.segment(approval_id)}/steps/{odata.segment(stage_id)}"
        )
        body = {"reviewResult": "Approve" if approve else "Deny", "justification": justification}
        response = self._transport.request("PATCH", path, json=body, retry=Retry.CREATE)
        if response.status_code == 403:
            raise NotAuthorized("You are not an approver for this request in PIM.")
        if response.status_code == 409:
            raise AlreadyDecided("Another approver already decided this stage in PIM.")
        if not response.is_success:
            raise error_from_response(response)

    def _approvals_url(self) -> str:
        """PIM's approvals of Entra role activations exist only in Graph's beta (the approval
        resource and its approvalStep ``steps``, roleManagement/directory/
        roleAssignmentApprovals); v1.0 has approvals for PIM for Groups and entitlement
        management only. This is the one beta address pimbot uses: move it to v1.0 here when
        Microsoft publishes it there."""
        version_root = str(self.http.base_url).rstrip("/").rsplit("/", 1)[0]
        return f"{version_root}/beta/roleManagement/directory/roleAssignmentApprovals"

    # --- schedule requests ------------------------------------------------------------------

    def activate(self, request: ActivationRequest) -> ActivationResult:
        start = request.start or self._now()
        body: dict[str, Any] = {
            **_target(self._activate, request.principal_id, request.role),
            "justification": request.justification,
            "scheduleInfo": {
                "startDateTime": _iso(start),
                "expiration": {"type": "afterDuration", "duration": to_iso8601(request.duration)},
            },
        }
        body.update(_ticket(request.ticket))
        return self._create(body, request.role)

    def deactivate(self, principal_id: str, role: RoleRef) -> ActivationResult:
        return self._create(_target(self._deactivate, principal_id, role), role)

    def extend(
        self,
        principal_id: str,
        role: RoleRef,
        *,
        new_end: datetime,
        justification: str,
        ticket: Ticket | None = None,
    ) -> ActivationResult:
        """Move the end of an active assignment later, without a gap in access.

        ``adminExtend`` is the action PIM defines for "extend expiring assignments": it acts on
        the existing assignment schedule, so the role stays granted throughout. The
        alternatives lose: ``adminRemove`` + ``adminAssign`` leaves a gap (and a window where a
        failure strands the person without the role); a second ``adminAssign`` is refused with
        RoleAssignmentExists; ``adminUpdate`` is meant for changing an assignment's settings,
        not for extensions, and is not what PIM's own Extend uses. The schedule keeps its
        original start and gets an explicit end (``afterDateTime``), so the new end is exact
        whatever the clock skew between pimbot and Graph.
        """
        current = self._active_instance(principal_id, role)
        if current is None:
            raise AssignmentNotFound(
                f"{role.display_name} is not active for this person, so it cannot be extended.",
                code="RoleAssignmentDoesNotExist",
            )
        start = parsing.timestamp(current.get("startDateTime")) or self._now()
        body: dict[str, Any] = {
            **_target("adminExtend", principal_id, role),
            "justification": justification,
            "scheduleInfo": {
                "startDateTime": _iso(start),
                "expiration": {"type": "afterDateTime", "endDateTime": _iso(new_end)},
            },
        }
        body.update(_ticket(ticket))
        return self._create(body, role)

    def get_request(self, graph_request_id: str) -> ActivationResult:
        path = f"{REQUESTS}/{odata.segment(graph_request_id)}"
        return parsing.activation_result(self._json(self._transport.request("GET", path)))

    def cancel_request(self, graph_request_id: str) -> None:
        """POST …/roleAssignmentScheduleRequests/{id}/cancel: 204 No Content; PIM refuses a
        request it has already provisioned, failed or closed (400)."""
        path = f"{REQUESTS}/{odata.segment(graph_request_id)}/cancel"
        response = self._transport.request("POST", path, retry=Retry.CREATE)
        if not response.is_success:
            raise error_from_response(response)

    def _active_instance(self, principal_id: str, role: RoleRef) -> Json | None:
        for obj in self._pages(ASSIGNMENT_INSTANCES, _by_principal(principal_id, role), role=role):
            if (parsing.text(obj, "directoryScopeId") or "/") == role.directory_scope_id:
                return obj
        return None

    def _create(self, body: Json, role: RoleRef) -> ActivationResult:
        """POST a schedule request; never twice for one intent.

        After an ambiguous failure (timeout, dropped connection, 5xx) Graph may or may not have
        processed the request, so the client looks for it before sending it again.
        """
        action = str(body["action"])
        since = self._now() - CREATE_LOOKBACK
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                response = self._transport.request("POST", REQUESTS, json=body, retry=Retry.CREATE)
            except AmbiguousOutcome as outcome:
                existing = self._find_request(body, since)
                if existing is not None:
                    logger.info(
                        "%s for %s: response lost (%s) but Graph has request %s",
                        action,
                        role.role_definition_id,
                        outcome.reason,
                        existing["id"],
                    )
                    return parsing.activation_result(existing)
                logger.warning(
                    "%s for %s failed ambiguously (%s), not found in Graph; "
                    "sending again (attempt %d)",
                    action,
                    role.role_definition_id,
                    outcome.reason,
                    attempt,
                )
                continue
            if not response.is_success and attempt > 1:
                # "Already exists" / "does not exist" after a lost first attempt most likely
                # means that attempt worked but was not yet listed when we looked.
                error = error_from_response(response, role=role)
                found = None
                if isinstance(error, AssignmentExists | AssignmentNotFound):
                    found = self._find_request(body, since)
                if found is None:
                    raise error
                return parsing.activation_result(found)
            result = parsing.activation_result(self._json(response, role=role))
            logger.info(
                "%s for %s: request %s is %s",
                action,
                role.role_definition_id,
                result.graph_request_id,
                result.status,
            )
            return result
        raise PimUnavailable(
            f"Microsoft Graph did not confirm the request for {role.display_name}. "
            "Nothing was changed; try again in a few minutes."
        )

    def _find_request(self, body: Json, since: datetime) -> Json | None:
        """The newest request matching ``body`` created after ``since``, if Graph has one."""
        condition = (
            f"principalId eq {odata.literal(str(body['principalId']))} and roleDefinitionId eq "
            + odata.literal(str(body["roleDefinitionId"]))
        )
        matches = [
            obj
            for obj in self._pages(REQUESTS, {"$filter": condition})
            if _same_intent(obj, body)
            and (parsing.timestamp(obj.get("createdDateTime")) or since) >= since
        ]
        matches.sort(key=lambda o: parsing.text(o, "createdDateTime") or "", reverse=True)
        return matches[0] if matches else None

    # --- plumbing -------------------------------------------------------------------------

    def _pages(
        self, path: str, params: Mapping[str, str], *, role: RoleRef | None = None
    ) -> Iterator[Json]:
        """Every item of a collection, following ``@odata.nextLink``."""
        url: str | None = odata.with_query(path, params)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page = self._json(self._transport.request("GET", url), role=role)
            for item in page.get("value") or []:
                if isinstance(item, Mapping):
                    yield item
            next_link = page.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) and next_link else None
        raise PimUnavailable("Microsoft Graph kept returning more pages; gave up.")

    @staticmethod
    def _json(response: httpx.Response, *, role: RoleRef | None = None) -> Json:
        if not response.is_success:
            raise error_from_response(response, role=role)
        try:
            body = response.json()
        except ValueError as exc:
            raise PimUnavailable("Microsoft Graph sent an unreadable answer.") from exc
        if not isinstance(body, Mapping):
            raise PimUnavailable("Microsoft Graph sent an unexpected answer.")
        return body


def _by_principal(principal_id: str, role: RoleRef | None = None) -> dict[str, str]:
    condition = f"principalId eq {odata.literal(principal_id)}"
    if role is not None:
        condition += f" and roleDefinitionId eq {odata.literal(role.role_definition_id)}"
    return {"$filter": condition, "$expand": "roleDefinition"}


def _target(action: str, principal_id: str, role: RoleRef) -> dict[str, Any]:
    return {
        "action": action,
        "principalId": principal_id,
        "roleDefinitionId": role.role_definition_id,
        "directoryScopeId": role.directory_scope_id,
    }


def _ticket(ticket: Ticket | None) -> dict[str, Any]:
    if ticket is None:
        return {}
    return {"ticketInfo": {"ticketNumber": ticket.number, "ticketSystem": ticket.system}}


def _same_intent(found: Json, body: Json) -> bool:
    return (
        parsing.same(parsing.text(found, "action"), str(body["action"]))
        and (parsing.text(found, "directoryScopeId") or "/") == body["directoryScopeId"]
        and (parsing.text(found, "justification") or None) == (body.get("justification") or None)
    )


def _iso(value: datetime) -> str:
    """UTC, whole seconds, ``Z``: the form Microsoft's examples send."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


if TYPE_CHECKING:

    def _implements_the_port(client: GraphPimClient) -> PimClient:
        return client  # mypy checks GraphPimClient against bot.domain.ports.PimClient

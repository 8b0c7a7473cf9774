"""GraphPimClient against httpx.MockTransport: exact URLs, bodies and parsed domain values."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from bot.app.concurrency import SingleFlight
from bot.domain.elevation import RoleRef, Ticket
from bot.domain.errors import AssignmentNotFound, PimUnavailable
from bot.domain.ports import ActivationRequest
from tests.graph.conftest import GRAPH, NOW, TOKEN, Graph, load, reply

ADA = "a04d60fe-235d-4247-b13c-0bc1b19bc3e4"
GROUP = "3a6e1f0c-8a57-4c3c-9d6e-2f1d7b0c9a11"
OTHER_GROUP = "7f6e5d4c-3b2a-4190-8877-665544332211"
GLOBAL_ADMIN = RoleRef("62e90394-69f5-4237-9190-012177145e10", "Global Administrator")
GROUPS_ADMIN = RoleRef("fdd7a751-b60b-444a-984c-02652fe8fa1c", "Groups Administrator")
SELECT = "$select=id,displayName,userPrincipalName,mail,accountEnabled,userType"


# --- users -----------------------------------------------------------------------------------


def test_resolve_user_by_object_id_reads_users_by_id(graph: Graph) -> None:
    graph.on("GET", "/users/48d31887", reply(200, load("get-user.json")))

    user = graph.client().resolve_user("48d31887-5fad-4d73-a9f5-3c356e68a038")

    assert user is not None
    assert (user.id, user.display_name) == ("48d31887-5fad-4d73-a9f5-3c356e68a038", "Megan Bowen")
    assert user.mail == "MeganB@M365x214355.onmicrosoft.com"
    assert graph.urls() == [f"{GRAPH}/users/48d31887-5fad-4d73-a9f5-3c356e68a038?{SELECT}"]
    assert graph.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_resolve_user_encodes_the_hash_of_a_guest_upn(graph: Graph) -> None:
    graph.on("GET", "/users/", reply(200, load("get-user.json")))

    graph.client().resolve_user("marie_partner.example#EXT#@contoso.example")

    assert graph.urls() == [
        f"{GRAPH}/users/marie_partner.example%23EXT%23@contoso.example?{SELECT}"
    ]


def test_resolve_user_uses_the_key_form_for_a_upn_starting_with_dollar(graph: Graph) -> None:
    graph.on("GET", "/users(", reply(200, load("get-user.json")))

    graph.client().resolve_user("$adele@contoso.example")

    assert graph.urls() == [f"{GRAPH}/users('$adele@contoso.example')?{SELECT}"]


def test_resolve_user_falls_back_to_mail_with_odata_quotes_doubled(graph: Graph) -> None:
    found = {
        "value": [
            {
                "id": ADA,
                "displayName": "Siobhan O'Brien",
                "userPrincipalName": "siobhan.obrien@contoso.example",
                "mail": "s.o'brien@contoso.example",
            }
        ]
    }
    graph.on("GET", "/users?", reply(200, found))

    user = graph.client().resolve_user("s.o'brien@contoso.example")

    assert user is not None and user.user_principal_name == "siobhan.obrien@contoso.example"
    assert graph.urls() == [
        f"{GRAPH}/users/s.o%27brien@contoso.example?{SELECT}",
        f"{GRAPH}/users?$filter=mail%20eq%20's.o''brien@contoso.example'%20or%20"
        f"userPrincipalName%20eq%20's.o''brien@contoso.example'&{SELECT}",
    ]


def test_resolve_user_percent_encodes_plus_addresses(graph: Graph) -> None:
    graph.on("GET", "/users?", reply(200, {"value": []}))

    assert graph.client().resolve_user("ada+pim@contoso.example") is None
    assert "mail%20eq%20'ada%2Bpim@contoso.example'" in graph.urls()[1]


def test_resolve_user_returns_none_for_an_unknown_object_id(graph: Graph) -> None:
    assert graph.client().resolve_user(ADA) is None
    assert len(graph.requests) == 1


def test_list_group_members_follows_next_link_and_keeps_only_users(graph: Graph) -> None:
    page2 = f"{GRAPH}/groups/{GROUP}/transitiveMembers?$skiptoken=X2"
    graph.on(
        "GET",
        f"/groups/{GROUP}/transitiveMembers?$skiptoken",
        reply(
            200,
            {
                "value": [
                    {
                        "@odata.type": "#microsoft.graph.user",
                        "id": "u2",
                        "displayName": "Grace",
                        "userPrincipalName": "grace@contoso.example",
                    }
                ]
            },
        ),
    )
    graph.on(
        "GET",
        f"/groups/{GROUP}/transitiveMembers",
        reply(
            200,
            {
                "value": [
                    {
                        "@odata.type": "#microsoft.graph.user",
                        "id": "u1",
                        "displayName": "Ada",
                        "userPrincipalName": "ada@contoso.example",
                        "mail": "ada@contoso.example",
                    },
                    {
                        "@odata.type": "#microsoft.graph.group",
                        "id": OTHER_GROUP,
                        "displayName": "Nested",
                    },
                ],
                "@odata.nextLink": page2,
            },
        ),
    )

    members = graph.client().list_group_members(GROUP)

    assert [m.id for m in members] == ["u1", "u2"]
    assert graph.urls()[1] == page2


def test_a_next_link_to_another_host_is_refused(graph: Graph) -> None:
    graph.on(
        "GET",
        f"/groups/{GROUP}/transitiveMembers",
        reply(200, {"value": [], "@odata.nextLink": "https://evil.example/v1.0/steal?token=1"}),
    )

    with pytest.raises(PimUnavailable, match="another host"):
        graph.client().list_group_members(GROUP)
    assert len(graph.requests) == 1


# --- eligibility and assignments -------------------------------------------------------------


def _with_role(payload: dict[str, object], name: str) -> dict[str, object]:
    for item in payload["value"]:  # type: ignore[attr-defined]
        item["roleDefinition"] = {"id": item["roleDefinitionId"], "displayName": name}
    return payload


def test_list_eligible_roles_includes_roles_through_role_assignable_groups(graph: Graph) -> None:
    direct = _with_role(load("list-roleeligibilityscheduleinstances.json"), "Attribute Admin")
    via_group = {
        "value": [
            {
                "id": "g-1",
                "principalId": GROUP,
                "roleDefinitionId": GLOBAL_ADMIN.role_definition_id,
                "directoryScopeId": "/",
                "startDateTime": "2024-01-01T00:00:00Z",
                "endDateTime": None,
                "memberType": "Direct",
                "roleDefinition": {"displayName": "Global Administrator"},
            },
            # the same role again, directly held: the direct one wins
            direct["value"][0],  # type: ignore[index]
        ]
    }
    graph.on(
        "GET",
        f"/users/{ADA}/transitiveMemberOf",
        reply(
            200,
            {
                "value": [
                    {
                        "@odata.type": "#microsoft.graph.group",
                        "id": GROUP,
                        "isAssignableToRole": True,
                    },
                    {
                        "@odata.type": "#microsoft.graph.group",
                        "id": OTHER_GROUP,
                        "isAssignableToRole": False,
                    },
                    {"@odata.type": "#microsoft.graph.directoryRole", "id": "r-1"},
                ]
            },
        ),
    )
    graph.on(
        "GET",
        "/roleManagement/directory/roleEligibilityScheduleInstances?$filter="
        f"principalId%20eq%20'{ADA}'",
        reply(200, direct),
    )
    graph.on(
        "GET",
        "/roleManagement/directory/roleEligibilityScheduleInstances?$filter="
        f"principalId%20eq%20'{GROUP}'",
        reply(200, via_group),
    )

    roles = graph.client().list_eligible_roles(ADA)

    assert [(r.role.display_name, r.member_type, r.via_group_id) for r in roles] == [
        ("Attribute Admin", "Direct", None),
        ("Global Administrator", "Group", GROUP),
    ]
    assert roles[0].ends_at is not None and roles[0].ends_at.year == 2024
    assert roles[1].ends_at is None
    assert graph.urls()[0] == (
        f"{GRAPH}/roleManagement/directory/roleEligibilityScheduleInstances"
        f"?$filter=principalId%20eq%20'{ADA}'&$expand=roleDefinition"
    )
    assert not any(OTHER_GROUP in url for url in graph.urls())


def test_list_active_assignments_parses_permanent_and_time_bound(graph: Graph) -> None:
    payload = _with_role(load("list-roleassignmentscheduleinstances.json"), "Global Administrator")
    payload["value"].append(
        {  # type: ignore[attr-defined]
            "id": "act-1",
            "principalId": ADA,
            "roleDefinitionId": GROUPS_ADMIN.role_definition_id,
            "directoryScopeId": "/",
            "startDateTime": "2024-05-02T10:00:00Z",
            "endDateTime": "2024-05-02T12:00:00.0000000Z",
            "assignmentType": "activated",
            "memberType": "Direct",
        }
    )
    graph.on(
        "GET", "/roleManagement/directory/roleAssignmentScheduleInstances", reply(200, payload)
    )
    graph.on("GET", f"/users/{ADA}/transitiveMemberOf", reply(200, {"value": []}))

    active = graph.client().list_active_assignments(ADA)

    assert [(a.assignment_type, a.is_permanent) for a in active] == [
        ("Assigned", True),
        ("Assigned", True),
        ("Activated", False),
    ]
    assert active[2].ends_at == NOW.replace(hour=12, minute=0)


# --- settings --------------------------------------------------------------------------------


def test_get_role_settings_reads_the_end_user_rules_of_the_docs_example(graph: Graph) -> None:
    graph.on(
        "GET",
        "/policies/roleManagementPolicyAssignments",
        reply(200, load("list-rolemanagementpolicyassignments-expand-rules.json")),
    )

    settings = graph.client().get_role_settings(GLOBAL_ADMIN)

    assert graph.urls() == [
        f"{GRAPH}/policies/roleManagementPolicyAssignments?$filter=scopeId%20eq%20'/'%20and%20"
        "scopeType%20eq%20'DirectoryRole'%20and%20roleDefinitionId%20eq%20"
        "'62e90394-69f5-4237-9190-012177145e10'&$expand=policy($expand=rules)"
    ]
    assert settings.max_duration == timedelta(hours=8)
    assert settings.mfa_required and settings.justification_required
    assert not settings.ticket_required and not settings.approval_required
    assert settings.authentication_context is None and settings.approvers == ()
    assert settings.policy_id is not None and settings.policy_id.startswith("DirectoryRole_")


def test_get_role_settings_reads_approvers_ticketing_and_auth_context(graph: Graph) -> None:
    graph.on(
        "GET",
        "/policies/roleManagementPolicyAssignments",
        reply(200, load("constructed-policy-approval-ticket-authcontext.json")),
    )

    settings = graph.client().get_role_settings(GROUPS_ADMIN)

    assert settings.max_duration == timedelta(hours=1, minutes=45)
    assert settings.ticket_required and settings.justification_required
    assert not settings.mfa_required
    assert settings.authentication_context == "c1"
    assert settings.approval_required and settings.approval_required_for_extension
    assert [(a.kind, a.id, a.display_name) for a in settings.approvers] == [
        ("user", "5846ce5e-e5bf-49f8-8732-e9c302694d9e", "Grace Hopper"),
        ("group", "1b2c3d4e-0000-4000-8000-00000000beef", "PIM approvers"),
    ]


# --- schedule requests -----------------------------------------------------------------------


def test_activate_posts_an_admin_assign_for_the_requested_duration(graph: Graph) -> None:
    graph.on(
        "POST",
        "/roleManagement/directory/roleAssignmentScheduleRequests",
        reply(201, load("post-roleassignmentschedulerequests-selfactivate.json")),
    )

    result = graph.client().activate(
        ActivationRequest(
            principal_id=ADA,
            role=GROUPS_ADMIN,
            duration=timedelta(hours=1, minutes=30),
            justification="Rotate the helpdesk group owners",
            ticket=Ticket("CHG-42", "ServiceNow"),
        )
    )

    assert graph.urls("POST") == [
        f"{GRAPH}/roleManagement/directory/roleAssignmentScheduleRequests"
    ]
    assert graph.bodies() == [
        {
            "action": "adminAssign",
            "principalId": ADA,
            "roleDefinitionId": GROUPS_ADMIN.role_definition_id,
            "directoryScopeId": "/",
            "justification": "Rotate the helpdesk group owners",
            "scheduleInfo": {
                "startDateTime": "2024-05-02T10:15:00Z",
                "expiration": {"type": "afterDuration", "duration": "PT1H30M"},
            },
            "ticketInfo": {"ticketNumber": "CHG-42", "ticketSystem": "ServiceNow"},
        }
    ]
    assert result.graph_request_id == "911bab8a-6912-4de2-9dc0-2648ede7dd6d"
    assert result.status == "Granted" and result.is_granted
    assert result.ends_at is not None and result.starts_at is not None
    assert result.ends_at - result.starts_at == timedelta(hours=5)  # afterDuration PT5H


def test_activate_with_a_future_start_sends_that_start(graph: Graph) -> None:
    graph.on(
        "POST",
        "/roleManagement",
        reply(201, load("post-roleassignmentschedulerequests-adminassign.json")),
    )
    later = NOW + timedelta(days=1)

    result = graph.client().activate(
        ActivationRequest(
            principal_id=ADA,
            role=GROUPS_ADMIN,
            duration=timedelta(hours=2),
            justification="later",
            start=later,
        )
    )

    assert graph.bodies()[0]["scheduleInfo"]["startDateTime"] == "2024-05-03T10:15:00Z"
    assert "ticketInfo" not in graph.bodies()[0]
    assert result.status == "Provisioned" and result.ends_at is None  # noExpiration


def test_deactivate_posts_an_admin_remove_without_a_schedule(graph: Graph) -> None:
    revoked = {"id": "r-1", "status": "Revoked", "action": "adminRemove"}
    graph.on("POST", "/roleManagement", reply(201, revoked))

    result = graph.client().deactivate(ADA, GROUPS_ADMIN)

    assert graph.bodies() == [
        {
            "action": "adminRemove",
            "principalId": ADA,
            "roleDefinitionId": GROUPS_ADMIN.role_definition_id,
            "directoryScopeId": "/",
        }
    ]
    assert (result.graph_request_id, result.status) == ("r-1", "Revoked")


def test_extend_moves_the_end_of_the_active_assignment_in_place(graph: Graph) -> None:
    instance = {
        "value": [
            {
                "id": "act-1",
                "principalId": ADA,
                "roleDefinitionId": GROUPS_ADMIN.role_definition_id,
                "directoryScopeId": "/",
                "startDateTime": "2024-05-02T09:00:00Z",
                "endDateTime": "2024-05-02T11:00:00Z",
                "assignmentType": "Assigned",
            }
        ]
    }
    graph.on(
        "GET", "/roleManagement/directory/roleAssignmentScheduleInstances", reply(200, instance)
    )
    graph.on(
        "POST",
        "/roleManagement",
        reply(
            201,
            {
                "id": "x-1",
                "status": "Provisioned",
                "scheduleInfo": {
                    "startDateTime": "2024-05-02T09:00:00Z",
                    "expiration": {"type": "afterDateTime", "endDateTime": "2024-05-02T13:00:00Z"},
                },
            },
        ),
    )

    result = graph.client().extend(
        ADA, GROUPS_ADMIN, new_end=NOW.replace(hour=13, minute=0), justification="Migration overran"
    )

    assert graph.urls("GET") == [
        f"{GRAPH}/roleManagement/directory/roleAssignmentScheduleInstances?$filter=principalId"
        f"%20eq%20'{ADA}'%20and%20roleDefinitionId%20eq%20'{GROUPS_ADMIN.role_definition_id}'"
        "&$expand=roleDefinition"
    ]
    assert graph.bodies() == [
        {
            "action": "adminExtend",
            "principalId": ADA,
            "roleDefinitionId": GROUPS_ADMIN.role_definition_id,
            "directoryScopeId": "/",
            "justification": "Migration overran",
            "scheduleInfo": {
                "startDateTime": "2024-05-02T09:00:00Z",
                "expiration": {"type": "afterDateTime", "endDateTime": "2024-05-02T13:00:00Z"},
            },
        }
    ]
    assert result.ends_at == NOW.replace(hour=13, minute=0)


def test_extend_of_a_role_that_is_not_active_says_so(graph: Graph) -> None:
    graph.on("GET", "/roleManagement", reply(200, {"value": []}))

    with pytest.raises(AssignmentNotFound, match="not active"):
        graph.client().extend(ADA, GROUPS_ADMIN, new_end=NOW, justification="x")
    assert graph.bodies() == []


def test_get_request_parses_the_expanded_docs_example(graph: Graph) -> None:
    body = load("get-roleassignmentschedulerequest-expand.json")
    body.update({"id": "95c690fb-3eb3-4942-a03f-4524aed6f31e", "status": "Provisioned"})
    graph.on(
        "GET", "/roleManagement/directory/roleAssignmentScheduleRequests/95c6", reply(200, body)
    )

    result = graph.client().get_request("95c690fb-3eb3-4942-a03f-4524aed6f31e")

    assert (result.graph_request_id, result.status) == (
        "95c690fb-3eb3-4942-a03f-4524aed6f31e",
        "Provisioned",
    )


def test_a_transport_failure_on_reads_is_retried(graph: Graph) -> None:
    calls = iter([httpx.ReadTimeout("slow"), None])

    def flaky(request: httpx.Request) -> httpx.Response:
        error = next(calls)
        if error is not None:
            raise error
        return reply(200, load("get-user.json"))

    graph.on("GET", "/users/", flaky)

    assert graph.client().resolve_user(ADA) is not None
    assert len(graph.requests) == 2 and len(graph.sleeps) == 1


def test_one_forms_reads_share_one_transitive_member_of_call(graph: Graph) -> None:
    """Eligibility and active assignments both need the person's groups; read side by side
    (as the request form does) they make one transitiveMemberOf call, not two."""
    seen = threading.Barrier(2, timeout=5)

    def groups(request: httpx.Request) -> httpx.Response:
        return reply(200, {"value": []})

    def instances(request: httpx.Request) -> httpx.Response:
        seen.wait()  # both lists are in flight together
        return reply(200, {"value": []})

    graph.on("GET", f"/users/{ADA}/transitiveMemberOf", groups)
    graph.on("GET", "/roleManagement/directory/roleEligibilityScheduleInstances", instances)
    graph.on("GET", "/roleManagement/directory/roleAssignmentScheduleInstances", instances)
    client = graph.client()
    with ThreadPoolExecutor(max_workers=2) as pool:
        eligible = pool.submit(client.list_eligible_roles, ADA)
        active = pool.submit(client.list_active_assignments, ADA)
        assert eligible.result() == [] and active.result() == []
    assert len([u for u in graph.urls("GET") if "transitiveMemberOf" in u]) == 1


def test_single_flight_keeps_a_value_for_its_ttl_and_not_a_failure() -> None:
    now = [0.0]
    loads: list[str] = []
    memo: SingleFlight[str] = SingleFlight(10.0, clock=lambda: now[0])

    def load(key: str) -> str:
        loads.append(key)
        if key == "bad":
            raise RuntimeError("Graph said no")
        return key.upper()

    assert memo.get("ada", load) == "ADA" and memo.get("ada", load) == "ADA"
    with pytest.raises(RuntimeError):
        memo.get("bad", load)
    with pytest.raises(RuntimeError):
        memo.get("bad", load)  # a failure is not kept: asked again
    now[0] = 11.0
    memo.get("ada", load)
    assert loads == ["ada", "bad", "bad", "ada"]

"""PIM for directory roles: eligibility, activation lifecycle and every enforced refusal."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stand_ins.graph_emulator import GraphEmulator
from tests.emulator.conftest import (
    ADA,
    ALAN,
    CONDITIONAL_ACCESS_ADMIN,
    EXCHANGE_ADMIN,
    GLOBAL_ADMIN,
    GRACE,
    PRIVILEGED_ROLE_ADMIN,
    REQUESTS,
    SECOPS_GROUP,
    SECURITY_ADMIN,
    SECURITY_READER,
    USER_ADMIN,
    Graph,
    activation,
    error_of,
)

ELIGIBLE = "/roleManagement/directory/roleEligibilityScheduleInstances"
ACTIVE = "/roleManagement/directory/roleAssignmentScheduleInstances"
POLICIES = "/policies/roleManagementPolicyAssignments"


def _all_pages(graph: Graph, path: str) -> list[dict[str, object]]:
    items, url = [], path
    while url:
        page = graph.get(url)
        assert page.status_code == 200, page.text
        items += page.json()["value"]
        url = page.json().get("@odata.nextLink")
    return items


def _as_user(graph: Graph, user: str, *, mfa: bool = False, acrs: tuple[str, ...] = ()
             ) -> Graph:
    return graph.as_token(graph.emulator.mint_token(user=user, mfa=mfa, acrs=acrs))


def _in(minutes: int, emulator: GraphEmulator) -> str:
    return (emulator.clock.now() + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# --- eligibility ------------------------------------------------------------------------------


def test_direct_eligibility_by_user_excludes_group_eligibility(graph: Graph) -> None:
    items = _all_pages(graph, f"{ELIGIBLE}?$filter=principalId eq '{ADA}'&$expand=roleDefinition")
    assert {i["roleDefinitionId"] for i in items} == {
        EXCHANGE_ADMIN, PRIVILEGED_ROLE_ADMIN, CONDITIONAL_ACCESS_ADMIN, GLOBAL_ADMIN,
        SECURITY_ADMIN}
    assert all(i["memberType"] == "Direct" and str(i["id"]).endswith("-1-e") for i in items)
    assert {i["roleDefinition"]["displayName"] for i in items} >= {"Exchange Administrator"}


def test_group_eligibility_is_listed_under_the_group(graph: Graph) -> None:
    groups = _all_pages(graph, f"/users/{ADA}/transitiveMemberOf")
    assert [g["id"] for g in groups if g["isAssignableToRole"]] == [SECOPS_GROUP]
    items = _all_pages(graph, f"{ELIGIBLE}?$filter=principalId eq '{SECOPS_GROUP}'")
    assert [(i["roleDefinitionId"], i["memberType"]) for i in items] == [
        (SECURITY_READER, "Direct")]


def test_a_member_of_an_eligible_group_may_activate_with_their_own_id(graph: Graph) -> None:
    response = _as_user(graph, "ada@contoso.example").post(
        REQUESTS, activation("selfActivate", ADA, SECURITY_READER, justification=None))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "Provisioned"


def test_eligibility_ends_with_its_schedule() -> None:
    # Emulator time is injectable: an hour before Alan's eligibility ends on 2030-01-01.
    with (
        GraphEmulator(clock=lambda: datetime(2029, 12, 31, 23, 0, tzinfo=UTC)) as emulator,
        httpx.Client(verify=emulator.client_ssl_context(), trust_env=False) as http,
    ):
        graph = Graph(emulator, http, emulator.mint_token())
        path = f"{ELIGIBLE}?$filter=principalId eq '{ALAN}'"
        [until_2030] = _all_pages(graph, path)
        assert (until_2030["roleDefinitionId"], until_2030["endDateTime"]) == (
            USER_ADMIN, "2030-01-01T00:00:00Z")
        emulator.advance_clock(3600)
        assert _all_pages(graph, path) == []
        response = _as_user(graph, "alan@contoso.example").post(
            REQUESTS, activation("selfActivate", ALAN, USER_ADMIN))
        assert error_of(response)[2].endswith('["EligibilityRule"]')


def test_filter_by_current_user_needs_a_delegated_token(graph: Graph) -> None:
    path = f"{ELIGIBLE}/filterByCurrentUser(on='principal')"
    assert error_of(graph.get(path))[:2] == (400, "BadRequest")
    mine = _all_pages(_as_user(graph, "ada@contoso.example"), path)
    assert len(mine) == 5 and all(i["principalId"] == ADA for i in mine)


# --- activation lifecycle ---------------------------------------------------------------------


def test_admin_assignment_appears_then_expires_with_emulator_time(graph: Graph) -> None:
    response = graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER,
                                               duration="PT30M"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "Provisioned" and created["id"] == created["targetScheduleId"]
    assert created["scheduleInfo"]["expiration"] == {
        "type": "afterDuration", "endDateTime": None, "duration": "PT30M"}
    assert created["createdBy"]["application"]["id"] == graph.emulator.tenant.app.client_id
    active = _all_pages(graph, f"{ACTIVE}?$filter=principalId eq '{ADA}' and "
                               f"roleDefinitionId eq '{SECURITY_READER}'")
    assert len(active) == 1
    assert active[0]["assignmentType"] == "Assigned" and active[0]["endDateTime"] is not None
    assert active[0]["roleAssignmentScheduleId"] == created["id"]
    assert graph.emulator.state.active_assignments(ADA) == active

    graph.emulator.advance_clock(29 * 60)
    assert len(graph.emulator.state.active_assignments(ADA)) == 1
    graph.emulator.advance_clock(61)
    assert _all_pages(graph, f"{ACTIVE}?$filter=principalId eq '{ADA}'") == []


def test_permanent_assignments_have_no_start_or_end(graph: Graph) -> None:
    active = _all_pages(graph, f"{ACTIVE}?$filter=principalId eq '{GRACE}'")
    assert {(i["roleDefinitionId"], i["startDateTime"], i["endDateTime"]) for i in active} == {
        (PRIVILEGED_ROLE_ADMIN, None, None), (USER_ADMIN, None, None)}


def test_pascal_case_action_is_echoed_and_expiration_type_comes_back_camel_case(
    graph: Graph,
) -> None:
    body = activation("AdminAssign", ADA, SECURITY_READER)
    body["scheduleInfo"]["expiration"]["type"] = "AfterDuration"
    created = graph.post(REQUESTS, body).json()
    assert created["action"] == "AdminAssign"
    assert created["scheduleInfo"]["expiration"]["type"] == "afterDuration"
    assert graph.get(f"{REQUESTS}/{created['id']}").json()["status"] == "Provisioned"


def test_remove_revokes_after_five_minutes_only(graph: Graph) -> None:
    graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER))
    remove = activation("adminRemove", ADA, SECURITY_READER, duration=None, justification=None)
    assert error_of(graph.post(REQUESTS, remove)) == (
        400, "ActiveDurationTooShort",
        "The Active duration is too short. Miniumum Required is 5 minutes.")
    graph.emulator.advance_clock(5 * 60)
    revoked = graph.post(REQUESTS, remove)
    assert revoked.status_code == 201 and revoked.json()["status"] == "Revoked"
    assert graph.emulator.state.active_assignments(ADA) == []
    assert error_of(graph.post(REQUESTS, remove)) == (
        400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist.")


def test_a_second_activation_is_refused_while_one_is_active(graph: Graph) -> None:
    ada = _as_user(graph, "ada@contoso.example")
    body = activation("selfActivate", ADA, EXCHANGE_ADMIN, ticket="INC-1")
    assert ada.post(REQUESTS, body).status_code == 201
    assert error_of(ada.post(REQUESTS, body)) == (
        400, "RoleAssignmentExists", "The Role assignment already exists.")


def test_future_start_is_granted_then_active_and_cancel_only_while_granted(graph: Graph) -> None:
    body = activation("adminAssign", ADA, SECURITY_READER, start=_in(60, graph.emulator))
    created = graph.post(REQUESTS, body).json()
    assert created["status"] == "Granted"
    assert graph.emulator.state.active_assignments(ADA) == []
    graph.emulator.advance_clock(3601)
    assert len(graph.emulator.state.active_assignments(ADA)) == 1
    assert graph.get(f"{REQUESTS}/{created['id']}").json()["status"] == "Provisioned"
    status, code, _ = error_of(graph.post(f"{REQUESTS}/{created['id']}/cancel"))
    assert status == 400

    other = graph.post(REQUESTS, activation("adminAssign", ALAN, SECURITY_READER,
                                            start=_in(30, graph.emulator))).json()
    cancel = graph.post(f"{REQUESTS}/{other['id']}/cancel")
    assert cancel.status_code == 204 and cancel.content == b""
    assert graph.get(f"{REQUESTS}/{other['id']}").json()["status"] == "Canceled"
    graph.emulator.advance_clock(3600)
    assert graph.emulator.state.active_assignments(ALAN) == []


def test_approval_required_roles_wait_for_a_pim_approver(graph: Graph) -> None:
    ada = _as_user(graph, "ada@contoso.example")
    created = ada.post(REQUESTS, activation("selfActivate", ADA, PRIVILEGED_ROLE_ADMIN)).json()
    assert created["status"] == "PendingApprovalProvisioning"
    assert created["approvalId"] == created["id"]
    assert graph.emulator.state.active_assignments(ADA) == []
    decided = graph.client.post(f"{graph.emulator.url}/_emulator/approvals/{created['id']}",
                                json={"decision": "approve"})
    assert decided.json()["status"] == "Provisioned"
    instances = graph.emulator.state.active_assignments(ADA)
    assert [i["assignmentType"] for i in instances] == ["Activated"]
    mine = _all_pages(ada, f"{REQUESTS}/filterByCurrentUser(on='principal')")
    assert [r["id"] for r in mine] == [created["id"]]


def test_get_unknown_request_is_404(graph: Graph) -> None:
    assert error_of(graph.get(f"{REQUESTS}/00000000-0000-0000-0000-000000000000"))[:2] == (
        404, "Request_ResourceNotFound")


# --- enforcement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "body", "rules"),
    [
        ("grace@contoso.example", activation("selfActivate", GRACE, EXCHANGE_ADMIN,
                                             ticket="T-1"), ["EligibilityRule"]),
        ("ada@contoso.example", activation("selfActivate", ADA, EXCHANGE_ADMIN, duration="PT3H",
                                           ticket="T-1"), ["ExpirationRule"]),
        ("ada@contoso.example", activation("selfActivate", ADA, EXCHANGE_ADMIN, duration=None,
                                           ticket="T-1"), ["ExpirationRule"]),
        ("ada@contoso.example", activation("selfActivate", ADA, EXCHANGE_ADMIN, ticket="T-1",
                                           justification=" "), ["JustificationRule"]),
        ("ada@contoso.example", activation("selfActivate", ADA, EXCHANGE_ADMIN),
         ["TicketingRule"]),
        ("ada@contoso.example", activation("selfActivate", ADA, GLOBAL_ADMIN), ["MfaRule"]),
        ("grace@contoso.example", activation("selfActivate", GRACE, EXCHANGE_ADMIN,
                                             duration="PT9H", justification=None),
         ["EligibilityRule", "ExpirationRule", "JustificationRule", "TicketingRule"]),
    ],
)
def test_policy_validation_failures(graph: Graph, user: str, body: dict[str, object],
                                    rules: list[str]) -> None:
    response = _as_user(graph, user).post(REQUESTS, body)
    expected = "The following policy rules failed: [" + ",".join(f'"{r}"' for r in rules) + "]"
    assert error_of(response) == (400, "RoleAssignmentRequestPolicyValidationFailed", expected)


def test_the_newer_policy_message_format_is_selectable(graph: Graph) -> None:
    graph.emulator.faults.policy_message_format = "described"
    response = _as_user(graph, "ada@contoso.example").post(
        REQUESTS, activation("selfActivate", ADA, EXCHANGE_ADMIN, justification=None))
    assert error_of(response)[2] == (
        "The following policy rules failed: JustificationRule - Justification is required, "
        "TicketingRule - Ticket information is required")


def test_mfa_is_satisfied_only_by_a_user_token_with_mfa(graph: Graph) -> None:
    body = activation("selfActivate", ADA, GLOBAL_ADMIN)
    assert error_of(graph.post(REQUESTS, body))[2].endswith('["MfaRule"]')  # app token
    assert _as_user(graph, "ada@contoso.example", mfa=True).post(REQUESTS, body).status_code == 201


def test_authentication_context_failure_carries_the_claims_challenge(graph: Graph) -> None:
    body = activation("selfActivate", ADA, SECURITY_ADMIN)
    status, code, message = error_of(_as_user(graph, "ada@contoso.example").post(REQUESTS, body))
    assert (status, code) == (400, "RoleAssignmentRequestAcrsValidationFailed")
    encoded = message.split("&claims=", 1)[1]
    assert urllib.parse.unquote(encoded) == (
        '{"access_token":{"acrs":{"essential":true, "value":"c1"}}}')
    satisfied = _as_user(graph, "ada@contoso.example", acrs=("c1",)).post(REQUESTS, body)
    assert satisfied.status_code == 201


def test_admin_assign_applies_the_admin_rules_not_eligibility(graph: Graph) -> None:
    # Grace is not eligible for Exchange Administrator; an admin may still assign it.
    assert graph.post(REQUESTS, activation("adminAssign", GRACE, EXCHANGE_ADMIN)).json()[
        "status"] == "Provisioned"
    no_reason = activation("adminAssign", ALAN, EXCHANGE_ADMIN, justification=None)
    assert error_of(graph.post(REQUESTS, no_reason))[2].endswith('["JustificationRule"]')
    too_long = activation("adminAssign", ALAN, EXCHANGE_ADMIN, duration="P181D")
    assert error_of(graph.post(REQUESTS, too_long))[2].endswith('["ExpirationRule"]')


def test_malformed_bodies_are_400(graph: Graph) -> None:
    assert graph.post(REQUESTS, {"action": "selfActivate"}).status_code == 400
    assert graph.post(REQUESTS, activation("teleport", ADA, SECURITY_READER)).status_code == 400
    bad_duration = activation("adminAssign", ADA, SECURITY_READER, duration="an hour")
    assert graph.post(REQUESTS, bad_duration).status_code == 400


# --- policies ---------------------------------------------------------------------------------


def test_policy_assignment_expands_the_seventeen_rules(graph: Graph) -> None:
    response = graph.get(
        f"{POLICIES}?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' and "
        f"roleDefinitionId eq '{PRIVILEGED_ROLE_ADMIN}'&$expand=policy($expand=rules)")
    body = response.json()
    assert body["@odata.context"].endswith(
        "$metadata#policies/roleManagementPolicyAssignments(policy(rules()))")
    [assignment] = body["value"]
    assert assignment["id"] == f"{assignment['policyId']}_{PRIVILEGED_ROLE_ADMIN}"
    assert assignment["policyId"].startswith("DirectoryRole_")
    rules = {r["id"]: r for r in assignment["policy"]["rules"]}
    assert len(rules) == 17
    assert sum(r["id"].startswith("Notification_") for r in rules.values()) == 9
    assert rules["Expiration_EndUser_Assignment"]["maximumDuration"] == "PT4H"
    assert rules["Enablement_EndUser_Assignment"]["@odata.type"] == (
        "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule")
    approval = rules["Approval_EndUser_Assignment"]["setting"]
    assert approval["isApprovalRequired"] is True
    approvers = approval["approvalStages"][0]["primaryApprovers"]
    assert [a["@odata.type"] for a in approvers] == [
        "#microsoft.graph.singleUser", "#microsoft.graph.groupMembers"]
    assert approvers[0]["userId"] == GRACE
    assert all(r["target"]["operations"] == ["all"] for r in rules.values())


def test_policy_assignments_require_the_scope_filter(graph: Graph) -> None:
    assert error_of(graph.get(POLICIES))[:2] == (400, "BadRequest")
    assert graph.get(f"{POLICIES}?$filter=roleDefinitionId eq '{GLOBAL_ADMIN}'").status_code == 400
    every_role = _all_pages(graph, f"{POLICIES}?$filter=scopeId eq '/' and scopeType eq "
                                   "'DirectoryRole'")
    assert len(every_role) == len(graph.emulator.tenant.roles)
    assert "policy" not in every_role[0]


def test_authentication_context_rule_shape(graph: Graph) -> None:
    rules = graph.get(
        f"{POLICIES}?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' and "
        f"roleDefinitionId eq '{SECURITY_ADMIN}'&$expand=policy($expand=rules)"
    ).json()["value"][0]["policy"]["rules"]
    [context] = [r for r in rules if r["id"] == "AuthenticationContext_EndUser_Assignment"]
    assert (context["isEnabled"], context["claimValue"]) == (True, "c1")


def test_instant_formats_are_graph_like(graph: Graph) -> None:
    created = graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER)).json()
    parsed = datetime.fromisoformat(created["createdDateTime"].replace("Z", "+00:00"))
    assert parsed.tzinfo is not None and parsed <= datetime.now(UTC) + timedelta(seconds=5)
    assert created["createdDateTime"].endswith("Z")


def test_extend_moves_the_end_of_the_active_assignment(graph: Graph) -> None:
    graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER, duration="PT1H"))
    extended = graph.post(REQUESTS, activation("adminExtend", ADA, SECURITY_READER,
                                               duration="PT3H"))
    assert extended.status_code == 201 and extended.json()["status"] == "Provisioned"
    [instance] = graph.emulator.state.active_assignments(ADA)
    start = datetime.fromisoformat(str(instance["startDateTime"]).replace("Z", "+00:00"))
    end = datetime.fromisoformat(str(instance["endDateTime"]).replace("Z", "+00:00"))
    assert end - start >= timedelta(hours=3) - timedelta(seconds=1)
    nothing_to_extend = activation("selfExtend", ALAN, SECURITY_READER)
    assert error_of(graph.post(REQUESTS, nothing_to_extend))[1] == "RoleAssignmentDoesNotExist"


def test_requests_list_filters_by_principal_and_status(graph: Graph) -> None:
    graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER))
    graph.post(REQUESTS, activation("adminAssign", ALAN, SECURITY_READER,
                                    start=_in(30, graph.emulator)))
    granted = _all_pages(graph, f"{REQUESTS}?$filter=status eq 'Granted'")
    assert [r["principalId"] for r in granted] == [ALAN]
    mine = _all_pages(graph, f"{REQUESTS}?$filter=principalId eq '{ADA}'&$expand=roleDefinition")
    assert [r["roleDefinition"]["id"] for r in mine] == [SECURITY_READER]
    assert error_of(graph.get(f"{REQUESTS}?$expand=approver"))[:2] == (400, "BadRequest")

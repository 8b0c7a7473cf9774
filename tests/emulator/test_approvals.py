"""PIM approvals of Entra role activations (Graph beta): steps, reviews, stages, time.

Everything goes over real HTTPS with delegated tokens, as an approver's client would call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msal
import pytest

from bot.adapters.graph.auth import MsalHttpClient
from stand_ins.graph_emulator import GraphEmulator, default_tenant
from stand_ins.graph_emulator.sign_in_client import sign_in_response
from stand_ins.graph_emulator.tenant import parse_tenant
from tests.emulator.conftest import (
    ADA,
    ALAN,
    CONDITIONAL_ACCESS_ADMIN,
    GRACE,
    PRIVILEGED_ROLE_ADMIN,
    REQUESTS,
    activation,
    error_of,
)

APPROVALS = "/roleManagement/directory/roleAssignmentApprovals"
SIOBHAN = "siobhan.obrien@contoso.example"
DAY = 24 * 3600


class Person:
    """One signed-in user calling Graph v1.0 and beta with their own delegated token."""

    def __init__(self, emulator: GraphEmulator, http: httpx.Client, token: str) -> None:
        self.emulator, self.http, self.token = emulator, http, token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, *, beta: bool = True) -> httpx.Response:
        root = self.emulator.beta_url if beta else self.emulator.graph_url
        return self.http.get(root + path, headers=self._headers())

    def activate(self, role: str, principal: str = ADA) -> dict[str, Any]:
        response = self.http.post(
            self.emulator.graph_url + REQUESTS,
            headers=self._headers(),
            json=activation("selfActivate", principal, role),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def review(
        self, approval_id: str, step_id: str, result: str, justification: str | None = "looks right"
    ) -> httpx.Response:
        body: dict[str, Any] = {"reviewResult": result}
        if justification is not None:
            body["justification"] = justification
        return self.http.patch(
            f"{self.emulator.beta_url}{APPROVALS}/{approval_id}/steps/{step_id}",
            headers=self._headers(),
            json=body,
        )

    def steps(self, approval_id: str) -> list[dict[str, Any]]:
        response = self.get(f"{APPROVALS}/{approval_id}")
        assert response.status_code == 200, response.text
        return list(response.json()["steps"])


def _person(emulator: GraphEmulator, http: httpx.Client, user: str) -> Person:
    # The scopes a real sign-in grants pimbot (the tenant's consented delegated permissions).
    scopes = emulator.tenant.app.delegated_permissions
    return Person(emulator, http, emulator.mint_token(user=user, mfa=True, permissions=scopes))


@pytest.fixture
def ada(emulator: GraphEmulator, http: httpx.Client) -> Person:
    return _person(emulator, http, "ada@contoso.example")


@pytest.fixture
def grace(emulator: GraphEmulator, http: httpx.Client) -> Person:
    return _person(emulator, http, "grace@contoso.example")


@pytest.fixture
def alan(emulator: GraphEmulator, http: httpx.Client) -> Person:
    return _person(emulator, http, "alan@contoso.example")


@contextmanager
def _running(data: dict[str, Any]) -> Iterator[tuple[GraphEmulator, httpx.Client]]:
    """An emulator for a changed demo tenant, and a client that trusts it."""
    with (
        GraphEmulator(parse_tenant(data)) as emulator,
        httpx.Client(verify=emulator.client_ssl_context(), trust_env=False, timeout=10) as http,
    ):
        yield emulator, http


def _status(emulator: GraphEmulator, request_id: str) -> str:
    return next(r["status"] for r in emulator.state.requests if r["id"] == request_id)


def _roles_of(emulator: GraphEmulator, user_id: str) -> list[str]:
    return [i["roleDefinitionId"] for i in emulator.state.active_assignments(user_id)]


# --- one stage ----------------------------------------------------------------------------------


def test_graces_approval_provisions_adas_role_and_records_grace(
    emulator: GraphEmulator, ada: Person, grace: Person
) -> None:
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    assert created["status"] == "PendingApprovalProvisioning"
    approval = grace.get(f"{APPROVALS}/{created['approvalId']}")
    assert approval.status_code == 200
    body = approval.json()
    assert body["id"] == created["approvalId"]
    assert body["@odata.context"].endswith(
        "/beta/$metadata#roleManagement/directory/roleAssignmentApprovals/$entity"
    )
    [step] = body["steps"]
    assert step["status"] == "InProgress" and step["reviewResult"] == "NotReviewed"
    assert step["assignedToMe"] is True and step["reviewedBy"] is None
    assert step["reviewedDateTime"] is None

    decided = grace.review(created["approvalId"], step["id"], "Approve", "on call tonight")
    assert decided.status_code == 204 and decided.content == b""

    assert _status(emulator, created["id"]) == "Provisioned"
    assert _roles_of(emulator, ADA) == [PRIVILEGED_ROLE_ADMIN]
    [reviewed] = grace.steps(created["approvalId"])
    assert reviewed["status"] == "Completed" and reviewed["reviewResult"] == "Approve"
    assert reviewed["reviewedBy"]["id"] == GRACE
    assert reviewed["reviewedBy"]["displayName"] == "Grace Hopper"
    assert reviewed["justification"] == "on call tonight"
    assert reviewed["reviewedDateTime"] is not None
    again = grace.review(created["approvalId"], step["id"], "Approve")
    assert error_of(again)[:2] == (409, "Conflict")


def test_a_member_of_an_approver_group_may_approve(
    emulator: GraphEmulator, ada: Person, alan: Person
) -> None:
    # Alan is no approver by name, but a member of "PIM Approvers".
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    [step] = alan.steps(created["approvalId"])
    assert step["assignedToMe"] is True
    assert alan.review(created["approvalId"], step["id"], "Approve").status_code == 204
    assert _roles_of(emulator, ADA) == [PRIVILEGED_ROLE_ADMIN]


def test_a_non_approvers_review_changes_nothing(
    emulator: GraphEmulator, http: httpx.Client, ada: Person
) -> None:
    siobhan = _person(emulator, http, SIOBHAN)
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    [step] = siobhan.steps(created["approvalId"])
    assert step["assignedToMe"] is False
    for result in ("Approve", "Deny"):
        status, code, message = error_of(siobhan.review(created["approvalId"], step["id"], result))
        assert (status, code) == (403, "Authorization_RequestDenied")
        assert "not an approver" in message
    assert _status(emulator, created["id"]) == "PendingApprovalProvisioning"
    assert _roles_of(emulator, ADA) == []
    [unchanged] = siobhan.steps(created["approvalId"])
    assert unchanged["reviewResult"] == "NotReviewed" and unchanged["reviewedBy"] is None


def test_self_approval_is_refused_even_for_a_listed_approver() -> None:
    # Alan approves Privileged Role Administrator (through "PIM Approvers"); here he may also
    # activate it, and asks.
    data = default_tenant().model_dump(mode="json")
    data["eligibilities"].append(
        {"principal": "alan@contoso.example", "role": "Privileged Role Administrator"}
    )
    with _running(data) as (emulator, http):
        _self_approval_is_refused(
            emulator,
            _person(emulator, http, "alan@contoso.example"),
            _person(emulator, http, "grace@contoso.example"),
        )


def _self_approval_is_refused(emulator: GraphEmulator, alan: Person, grace: Person) -> None:
    created = alan.activate(PRIVILEGED_ROLE_ADMIN, principal=ALAN)
    [step] = alan.steps(created["approvalId"])
    assert step["assignedToMe"] is False
    status, code, message = error_of(alan.review(created["approvalId"], step["id"], "Approve"))
    assert (status, code) == (403, "Authorization_RequestDenied")
    assert "own request" in message
    assert _status(emulator, created["id"]) == "PendingApprovalProvisioning"
    assert grace.steps(created["approvalId"])[0]["assignedToMe"] is True


def test_approving_needs_a_justification_where_the_policy_says_so(
    emulator: GraphEmulator, ada: Person, grace: Person
) -> None:
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    [step] = grace.steps(created["approvalId"])
    for justification in (None, "  "):
        refused = grace.review(created["approvalId"], step["id"], "Approve", justification)
        assert error_of(refused)[:2] == (400, "BadRequest")
    assert _status(emulator, created["id"]) == "PendingApprovalProvisioning"
    assert error_of(grace.review(created["approvalId"], step["id"], "Maybe"))[:2] == (
        400,
        "BadRequest",
    )
    # A deny needs none (the policy setting is about approving).
    assert grace.review(created["approvalId"], step["id"], "Deny", None).status_code == 204
    assert _status(emulator, created["id"]) == "Denied"
    assert _roles_of(emulator, ADA) == []


def test_approvals_are_beta_only_and_delegated_only(
    emulator: GraphEmulator, http: httpx.Client, ada: Person, grace: Person, app_token: str
) -> None:
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    v1 = grace.get(f"{APPROVALS}/{created['approvalId']}", beta=False)
    assert error_of(v1)[:2] == (400, "BadRequest")
    as_app = http.get(
        f"{emulator.beta_url}{APPROVALS}/{created['approvalId']}",
        headers={"Authorization": f"Bearer {app_token}"},
    )
    assert error_of(as_app)[:2] == (403, "Authorization_RequestDenied")
    unknown = grace.get(f"{APPROVALS}/00000000-0000-0000-0000-000000000000")
    assert error_of(unknown)[:2] == (404, "Request_ResourceNotFound")
    step_id = grace.steps(created["approvalId"])[0]["id"]
    one = grace.get(f"{APPROVALS}/{created['approvalId']}/steps/{step_id}")
    assert one.status_code == 200 and one.json()["id"] == step_id
    listed = grace.get(f"{APPROVALS}/{created['approvalId']}/steps")
    assert [s["id"] for s in listed.json()["value"]] == [step_id]


# --- serial stages ------------------------------------------------------------------------------


def test_two_stages_need_two_different_people_in_order(
    emulator: GraphEmulator, ada: Person, grace: Person, alan: Person
) -> None:
    created = ada.activate(CONDITIONAL_ACCESS_ADMIN)
    approval_id = created["approvalId"]
    [first] = alan.steps(approval_id)  # only the started stage is listed
    assert first["assignedToMe"] is False
    assert error_of(alan.review(approval_id, first["id"], "Approve"))[0] == 403
    assert grace.review(approval_id, first["id"], "Approve").status_code == 204
    assert _status(emulator, created["id"]) == "PendingApprovalProvisioning"
    assert _roles_of(emulator, ADA) == []

    done, second = grace.steps(approval_id)
    assert done["id"] == first["id"] and done["reviewResult"] == "Approve"
    assert second["status"] == "InProgress" and second["assignedToMe"] is False
    assert error_of(grace.review(approval_id, second["id"], "Approve"))[0] == 403
    assert alan.steps(approval_id)[1]["assignedToMe"] is True
    assert alan.review(approval_id, second["id"], "Approve").status_code == 204

    assert _status(emulator, created["id"]) == "Provisioned"
    assert _roles_of(emulator, ADA) == [CONDITIONAL_ACCESS_ADMIN]
    reviewers = [s["reviewedBy"]["id"] for s in alan.steps(approval_id)]
    assert reviewers == [GRACE, ALAN]


def test_a_deny_at_stage_two_ends_the_request(
    emulator: GraphEmulator, ada: Person, grace: Person, alan: Person
) -> None:
    created = ada.activate(CONDITIONAL_ACCESS_ADMIN)
    approval_id = created["approvalId"]
    first = grace.steps(approval_id)[0]["id"]
    assert grace.review(approval_id, first, "Approve").status_code == 204
    second = alan.steps(approval_id)[1]["id"]
    assert alan.review(approval_id, second, "Deny", "not this week").status_code == 204
    assert _status(emulator, created["id"]) == "Denied"
    assert _roles_of(emulator, ADA) == []
    assert [s["reviewResult"] for s in alan.steps(approval_id)] == ["Approve", "Deny"]
    assert error_of(alan.review(approval_id, second, "Approve"))[:2] == (409, "Conflict")


def test_the_policy_shows_both_stages(emulator: GraphEmulator, ada: Person) -> None:
    policy = next(
        p
        for p in ada.get(
            "/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and "
            "scopeType eq 'DirectoryRole' and roleDefinitionId eq "
            f"'{CONDITIONAL_ACCESS_ADMIN}'&$expand=policy($expand=rules)",
            beta=False,
        ).json()["value"]
    )
    rule = next(r for r in policy["policy"]["rules"] if r["id"] == "Approval_EndUser_Assignment")
    setting = rule["setting"]
    assert setting["approvalMode"] == "Serial"
    assert [[a["userId"] for a in s["primaryApprovers"]] for s in setting["approvalStages"]] == [
        [GRACE],
        [ALAN],
    ]


# --- time: timeouts and escalation --------------------------------------------------------------


def test_an_unanswered_stage_times_out_on_the_emulator_clock(
    emulator: GraphEmulator, ada: Person, grace: Person, alan: Person
) -> None:
    created = ada.activate(CONDITIONAL_ACCESS_ADMIN)
    approval_id = created["approvalId"]
    first = grace.steps(approval_id)[0]["id"]
    emulator.advance_clock(DAY - 60)
    assert grace.review(approval_id, first, "Approve").status_code == 204
    # Stage 2's day starts when stage 1 is approved, not when the request was made.
    emulator.advance_clock(DAY - 60)
    assert _status(emulator, created["id"]) == "PendingApprovalProvisioning"
    emulator.advance_clock(120)
    assert _status(emulator, created["id"]) == "TimedOut"
    second = alan.steps(approval_id)[1]
    assert second["status"] == "Expired" and second["reviewResult"] == "NotReviewed"
    assert error_of(alan.review(approval_id, second["id"], "Approve"))[:2] == (409, "Conflict")
    assert _roles_of(emulator, ADA) == []


def test_escalation_approvers_join_after_the_escalation_time() -> None:
    """Privileged Role Administrator escalating to Siobhan after 30 minutes."""
    data = default_tenant().model_dump(mode="json")
    role = next(r for r in data["roles"] if r["id"] == PRIVILEGED_ROLE_ADMIN)
    role["activation"]["approvers"] = []
    role["activation"]["approval_stages"] = [
        {
            "approvers": [{"user": "grace@contoso.example"}],
            "escalation_enabled": True,
            "escalation_minutes": 30,
            "escalation_approvers": [{"user": SIOBHAN}],
        }
    ]
    with _running(data) as (escalating, http):
        ada = _person(escalating, http, "ada@contoso.example")
        siobhan = _person(escalating, http, SIOBHAN)
        grace = _person(escalating, http, "grace@contoso.example")
        created = ada.activate(PRIVILEGED_ROLE_ADMIN)
        approval_id = created["approvalId"]
        [step] = siobhan.steps(approval_id)
        assert step["assignedToMe"] is False
        assert error_of(siobhan.review(approval_id, step["id"], "Approve"))[0] == 403
        assert (
            siobhan.get(f"{REQUESTS}/filterByCurrentUser(on='approver')", beta=False).json()[
                "value"
            ]
            == []
        )

        escalating.advance_clock(30 * 60)
        assert siobhan.steps(approval_id)[0]["assignedToMe"] is True
        assert grace.steps(approval_id)[0]["assignedToMe"] is True  # primary ones still may
        mine = siobhan.get(f"{REQUESTS}/filterByCurrentUser(on='approver')", beta=False)
        assert [r["id"] for r in mine.json()["value"]] == [created["id"]]
        assert siobhan.review(approval_id, step["id"], "Approve").status_code == 204
        assert _roles_of(escalating, ADA) == [PRIVILEGED_ROLE_ADMIN]


# --- listing for an approver --------------------------------------------------------------------


def test_filter_by_current_user_as_approver_lists_what_the_caller_may_review(
    emulator: GraphEmulator,
    http: httpx.Client,
    ada: Person,
    grace: Person,
    alan: Person,
    app_token: str,
) -> None:
    two_stage = ada.activate(CONDITIONAL_ACCESS_ADMIN)
    single = ada.activate(PRIVILEGED_ROLE_ADMIN)
    path = f"{REQUESTS}/filterByCurrentUser(on='approver')"

    def ids(person: Person) -> set[str]:
        response = person.get(path, beta=False)
        assert response.status_code == 200, response.text
        assert response.json()["@odata.context"].endswith(
            "#Collection(unifiedRoleAssignmentScheduleRequest)"
        )
        return {r["id"] for r in response.json()["value"]}

    assert ids(grace) == {two_stage["id"], single["id"]}
    assert ids(alan) == {single["id"]}  # stage 2 of the other has not started
    assert ids(ada) == set()
    first = grace.steps(two_stage["approvalId"])[0]["id"]
    assert grace.review(two_stage["approvalId"], first, "Approve").status_code == 204
    assert ids(grace) == {single["id"]}
    assert ids(alan) == {two_stage["id"], single["id"]}
    as_app = http.get(emulator.graph_url + path, headers={"Authorization": f"Bearer {app_token}"})
    assert error_of(as_app)[:2] == (400, "BadRequest")


# --- the emulator's "portal" --------------------------------------------------------------------


def test_a_named_reviewer_in_the_portal_is_recorded(
    emulator: GraphEmulator, http: httpx.Client, ada: Person, grace: Person
) -> None:
    created = ada.activate(CONDITIONAL_ACCESS_ADMIN)
    portal = f"{emulator.url}/_emulator/approvals/{created['id']}"
    refused = http.post(portal, json={"decision": "approve", "reviewer": "alan@contoso.example"})
    assert refused.status_code == 403 and refused.json()["code"] == "Authorization_RequestDenied"
    answer = http.post(
        portal,
        json={
            "decision": "approve",
            "reviewer": "grace@contoso.example",
            "justification": "approved in the portal",
        },
    )
    assert answer.status_code == 200 and answer.json()["status"] == "PendingApprovalProvisioning"
    answer = http.post(
        portal,
        json={"decision": "approve", "reviewer": "alan@contoso.example", "justification": "fine"},
    )
    assert answer.json()["status"] == "Provisioned"
    steps = grace.steps(created["approvalId"])
    assert [(s["reviewedBy"]["displayName"], s["justification"]) for s in steps] == [
        ("Grace Hopper", "approved in the portal"),
        ("Alan Turing", "fine"),
    ]
    assert _roles_of(emulator, ADA) == [CONDITIONAL_ACCESS_ADMIN]
    bad = http.post(portal, json={"decision": "approve", "reviewer": "nobody@contoso.example"})
    assert bad.status_code == 400


def test_a_portal_deny_by_a_named_reviewer_ends_the_request(
    emulator: GraphEmulator, http: httpx.Client, ada: Person, grace: Person
) -> None:
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    answer = http.post(
        f"{emulator.url}/_emulator/approvals/{created['id']}",
        json={"decision": "deny", "reviewer": "grace@contoso.example"},
    )
    assert answer.json()["status"] == "Denied"
    [step] = grace.steps(created["approvalId"])
    assert step["reviewResult"] == "Deny" and step["reviewedBy"]["id"] == GRACE


# --- a real sign-in -----------------------------------------------------------------------------


def test_grace_signed_in_through_the_authorize_page_approves(
    emulator: GraphEmulator, http: httpx.Client, ada: Person
) -> None:
    env = emulator.env()
    app = msal.ConfidentialClientApplication(
        env["AZURE_CLIENT_ID"],
        client_credential=env["AZURE_CLIENT_SECRET"],
        authority=f"{emulator.authority_host}/{env['AZURE_TENANT_ID']}",
        http_client=MsalHttpClient(http),
        instance_discovery=False,
    )
    flow = app.initiate_auth_code_flow(
        scopes=["https://graph.microsoft.com/.default"],
        redirect_uri="http://localhost:3000/auth/callback",
        response_mode="form_post",
    )
    answer = sign_in_response(
        flow["auth_uri"],
        http=http,
        username="grace@contoso.example",
        password="emulator-password-grace",
        mfa_code="135790",
    )
    result = app.acquire_token_by_auth_code_flow(flow, answer.params)
    assert "access_token" in result, result.get("error_description")
    grace = Person(emulator, http, result["access_token"])

    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    [step] = grace.steps(created["approvalId"])
    assert step["assignedToMe"] is True
    assert grace.review(created["approvalId"], step["id"], "Approve").status_code == 204
    assert _roles_of(emulator, ADA) == [PRIVILEGED_ROLE_ADMIN]


def test_the_emulator_state_shows_who_reviewed(
    emulator: GraphEmulator, http: httpx.Client, ada: Person, grace: Person
) -> None:
    created = ada.activate(PRIVILEGED_ROLE_ADMIN)
    [step] = grace.steps(created["approvalId"])
    assert grace.review(created["approvalId"], step["id"], "Approve").status_code == 204
    state = http.get(f"{emulator.url}/_emulator/state").json()
    [approval] = state["approvals"]
    assert approval["id"] == created["approvalId"]
    assert [s["reviewedBy"]["id"] for s in approval["steps"]] == [GRACE]


def test_approving_a_second_request_for_an_active_role_is_refused_and_changes_nothing(
    emulator: GraphEmulator, ada: Person, grace: Person
) -> None:
    first = ada.activate(PRIVILEGED_ROLE_ADMIN)
    second = ada.activate(PRIVILEGED_ROLE_ADMIN)
    for created in (first, second):
        step = grace.steps(created["approvalId"])[0]["id"]
        answer = grace.review(created["approvalId"], step, "Approve")
    assert error_of(answer)[:2] == (400, "RoleAssignmentExists")
    [still_open] = grace.steps(second["approvalId"])
    assert still_open["status"] == "InProgress" and still_open["reviewedBy"] is None
    assert _status(emulator, second["id"]) == "PendingApprovalProvisioning"

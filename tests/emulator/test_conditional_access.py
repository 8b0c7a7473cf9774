"""GET /identity/conditionalAccess/policies: Graph's shapes and the Policy.Read.All gate."""

from __future__ import annotations

import pytest

from stand_ins.graph_emulator import GraphEmulator, TenantFileError
from stand_ins.graph_emulator.tenant import parse_tenant
from tests.emulator.conftest import GLOBAL_ADMIN, PRIVILEGED_ROLE_ADMIN, Graph, error_of

POLICIES = "/identity/conditionalAccess/policies"


def test_the_app_lists_the_seeded_policies(graph: Graph) -> None:
    first = graph.get(POLICIES)
    assert first.status_code == 200, first.text
    assert first.json()["@odata.context"].endswith("/$metadata#identity/conditionalAccess/policies")
    # The demo tenant pages by two, so the third policy is on the next page.
    second = graph.get(first.json()["@odata.nextLink"])
    policies = first.json()["value"] + second.json()["value"]
    assert len(policies) == 3
    names = {p["displayName"]: p for p in policies}
    admins = names["Require compliant device for admins"]
    assert admins["state"] == "enabled"
    assert admins["conditions"]["users"]["includeRoles"] == [GLOBAL_ADMIN, PRIVILEGED_ROLE_ADMIN]
    assert admins["grantControls"] == {
        "operator": "OR",
        "builtInControls": ["compliantDevice"],
        "customAuthenticationFactors": [],
        "termsOfUse": [],
        "authenticationStrength": None,
    }
    c1 = names["Require MFA for privileged role activation (c1)"]
    assert c1["conditions"]["applications"]["includeAuthenticationContextClassReferences"] == ["c1"]
    assert c1["conditions"]["users"]["includeUsers"] == ["All"]
    states = {p["state"] for p in policies}
    assert "enabledForReportingButNotEnforced" in states
    one = graph.get(f"{POLICIES}/{admins['id']}")
    assert one.status_code == 200 and one.json()["displayName"] == admins["displayName"]


def test_filtering_on_state(graph: Graph) -> None:
    response = graph.get(POLICIES, params={"$filter": "state eq 'enabled'"})
    assert response.status_code == 200, response.text
    assert {p["state"] for p in response.json()["value"]} == {"enabled"}


def test_without_policy_read_all_the_list_is_denied(emulator: GraphEmulator, graph: Graph) -> None:
    app_only = emulator.mint_token(permissions=["RoleManagement.ReadWrite.Directory"])
    delegated = emulator.mint_token(user="ada@contoso.example", permissions=["User.Read"])
    for token in (app_only, delegated):
        assert error_of(graph.as_token(token).get(POLICIES)) == (
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    allowed = emulator.mint_token(user="ada@contoso.example", permissions=["Policy.Read.All"])
    assert graph.as_token(allowed).get(POLICIES).status_code == 200


def test_an_unknown_policy_is_not_found(graph: Graph) -> None:
    response = graph.get(f"{POLICIES}/00000000-0000-0000-0000-000000000001")
    assert response.status_code == 404


def test_a_policy_naming_an_unknown_role_is_a_tenant_error(emulator: GraphEmulator) -> None:
    data = emulator.tenant.model_dump()
    data["conditional_access_policies"] = [
        {
            "id": "11111111-2222-4333-8444-555555555555",
            "display_name": "Broken",
            "include_roles": ["No Such Role"],
        }
    ]
    with pytest.raises(TenantFileError, match="no role 'No Such Role'"):
        parse_tenant(data)

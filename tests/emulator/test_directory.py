"""Users and groups as pimbot looks them up, with paging and Graph's 404 shape."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import ADA, ALAN, SECOPS_GROUP, Graph, error_of


@pytest.mark.parametrize(
    "path",
    [
        f"/users/{ADA}",
        "/users/ada@contoso.example",
        "/users/ADA@contoso.example",
        "/users('ada@contoso.example')",
    ],
)
def test_user_by_id_or_upn(graph: Graph, path: str) -> None:
    body = graph.get(path).json()
    assert body["id"] == ADA
    assert body["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
    assert set(body) == {
        "@odata.context", "businessPhones", "displayName", "givenName", "jobTitle", "mail",
        "mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}


def test_guest_upn_with_encoded_hash(graph: Graph) -> None:
    body = graph.get("/users/marie_partner.example%23EXT%23@contoso.example?"
                     "$select=id,userType,mail").json()
    assert body["userType"] == "Guest" and body["mail"] == "marie@partner.example"
    assert set(body) == {"@odata.context", "id", "userType", "mail"}
    assert body["@odata.context"].endswith("$metadata#users(id,userType,mail)/$entity")


def test_unknown_user_is_404_with_graph_message(graph: Graph) -> None:
    status, code, message = error_of(graph.get("/users/nobody@contoso.example"))
    assert (status, code) == (404, "Request_ResourceNotFound")
    assert message == ("Resource 'nobody@contoso.example' does not exist or one of its queried "
                       "reference-property objects are not present.")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("mail eq 'alan.turing@contoso.example'", [ALAN]),
        ("userPrincipalName eq 'alan@contoso.example'", [ALAN]),
        ("mail eq 'alan@contoso.example' or userPrincipalName eq 'alan@contoso.example'", [ALAN]),
        ("mail eq 's.o''brien@contoso.example'", ["f469ad91-67bb-4bc0-bd6d-55c140c17312"]),
        ("mail eq 'nobody@contoso.example'", []),
    ],
)
def test_users_by_filter(graph: Graph, expression: str, expected: list[str]) -> None:
    response = graph.get("/users", params={"$filter": expression})
    assert response.status_code == 200, response.text
    assert [u["id"] for u in response.json()["value"]] == expected


def test_unparsable_filter_is_400(graph: Graph) -> None:
    assert error_of(graph.get("/users", params={"$filter": "mail startswith 'a'"}))[:2] == (
        400, "BadRequest")


def test_group_members_page_through_next_links(graph: Graph) -> None:
    first = graph.get(f"/groups/{SECOPS_GROUP}/members").json()
    assert len(first["value"]) == 2  # the demo tenant's page size
    assert first["value"][0]["@odata.type"] == "#microsoft.graph.user"
    second = graph.get(first["@odata.nextLink"]).json()
    assert "@odata.nextLink" not in second
    ids = [m["id"] for m in first["value"] + second["value"]]
    assert len(ids) == 3 and ADA in ids and ALAN in ids
    assert len(graph.get(f"/groups/{SECOPS_GROUP}/transitiveMembers?$top=5").json()["value"]) == 3


def test_unknown_segment_and_method(graph: Graph) -> None:
    assert error_of(graph.get("/nothingHere"))[:2] == (400, "BadRequest")
    assert graph.post("/users/ada@contoso.example", {}).status_code == 405


def test_me_needs_a_delegated_token(graph: Graph) -> None:
    assert graph.get("/me").status_code == 400
    delegated = graph.as_token(graph.emulator.mint_token(user="alan@contoso.example"))
    assert delegated.get("/me").json()["id"] == ALAN

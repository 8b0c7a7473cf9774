"""The device-code flow (RFC 8628 as Entra runs it): msal polling, the /devicelogin page, and
every polling answer."""

from __future__ import annotations

from typing import Any

import httpx
import msal
import pytest

from bot.adapters.graph.auth import MsalHttpClient
from stand_ins.graph_emulator import GraphEmulator, SignInError, jws, sign_in_device
from stand_ins.graph_emulator.sign_in_client import parse_form
from tests.emulator.conftest import ADA, GLOBAL_ADMIN, REQUESTS, activation

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
ADA_LOGIN = {
    "username": "ada@contoso.example",
    "password": "emulator-password-ada",
    "mfa_code": "246810",
}


def _msal_app(emulator: GraphEmulator, http: httpx.Client) -> msal.PublicClientApplication:
    # msal offers the device flow on public clients only: no client credential is sent.
    env = emulator.env()
    return msal.PublicClientApplication(
        env["AZURE_CLIENT_ID"],
        authority=f"{emulator.authority_host}/{env['AZURE_TENANT_ID']}",
        http_client=MsalHttpClient(http),
        instance_discovery=False,
    )


def _start(emulator: GraphEmulator, http: httpx.Client, **extra: str) -> dict[str, Any]:
    response = http.post(
        f"{emulator.url}/{emulator.tenant.tenant_id}/oauth2/v2.0/devicecode",
        data={
            "client_id": emulator.tenant.app.client_id,
            "scope": "https://graph.microsoft.com/.default openid offline_access",
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _poll(emulator: GraphEmulator, http: httpx.Client, device_code: str) -> httpx.Response:
    return http.post(
        f"{emulator.url}/{emulator.tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": emulator.tenant.app.client_id,
            "device_code": device_code,
        },
    )


def _error(response: httpx.Response) -> tuple[int, str, int]:
    body = response.json()
    return response.status_code, body["error"], body["error_codes"][0]


def test_the_device_authorization_answer_is_shaped_as_microsoft_documents(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    body = _start(emulator, http)
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    }
    assert body["verification_uri"] == f"{emulator.url}/devicelogin"
    assert (body["expires_in"], body["interval"]) == (900, 5)
    assert body["message"] == (
        f"To sign in, use a web browser to open the page {emulator.url}/devicelogin and enter "
        f"the code {body['user_code']} to authenticate."
    )


def test_msal_polls_until_the_person_signs_in_on_the_page(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    emulator.update_sign_in(device_code_poll_interval=1)
    app = _msal_app(emulator, http)
    flow = app.initiate_device_flow(scopes=GRAPH_DEFAULT)
    assert flow["interval"] == 1, flow
    assert _error(_poll(emulator, http, flow["device_code"])) == (
        400,
        "authorization_pending",
        70016,
    )
    sign_in_device(flow["verification_uri"], flow["user_code"], http=http, **ADA_LOGIN)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    access = jws.split(result["access_token"])[1]
    assert (access["oid"], access["amr"]) == (ADA, ["pwd", "mfa"])
    assert result["id_token_claims"]["preferred_username"] == "ada@contoso.example"
    activated = http.post(
        emulator.graph_url + REQUESTS,
        json=activation("selfActivate", ADA, GLOBAL_ADMIN),
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert activated.status_code == 201, activated.text
    assert [r.flow for r in emulator.sign_ins] == ["device_code"]
    # The device code is spent.
    assert _error(_poll(emulator, http, flow["device_code"]))[1] == "bad_verification_code"


def test_cancel_on_the_page_declines(emulator: GraphEmulator, http: httpx.Client) -> None:
    body = _start(emulator, http)
    entry = http.get(body["verification_uri"])
    form = parse_form(entry.text, str(entry.url))
    credentials = http.post(form.action, data={"otc": body["user_code"], "submit": "1"})
    step = parse_form(credentials.text, str(credentials.url))
    cancelled = http.post(step.action, data={"flow": step.fields["flow"], "cancel": "1"})
    assert cancelled.status_code == 200 and "cancelled" in cancelled.text
    assert _error(_poll(emulator, http, body["device_code"]))[1] == "authorization_declined"


def test_an_unused_device_code_expires(emulator: GraphEmulator, http: httpx.Client) -> None:
    body = _start(emulator, http)
    emulator.advance_clock(901)
    assert _error(_poll(emulator, http, body["device_code"])) == (400, "expired_token", 70019)
    with pytest.raises(SignInError, match="That code didn't work"):
        sign_in_device(body["verification_uri"], body["user_code"], http=http, **ADA_LOGIN)


def test_an_unknown_device_code_is_a_bad_verification_code(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    assert _error(_poll(emulator, http, "DAQABAAEAAAnot-a-code")) == (
        400,
        "bad_verification_code",
        70018,
    )


def test_a_wrong_user_code_is_refused_on_the_page(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _start(emulator, http)
    with pytest.raises(SignInError, match="That code didn't work"):
        sign_in_device(f"{emulator.url}/devicelogin", "NOTACODE1", http=http, **ADA_LOGIN)


def test_conditional_access_can_block_the_device_code_flow(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    emulator.update_sign_in(block_device_code=True)
    body = _start(emulator, http)
    with pytest.raises(SignInError) as raised:
        sign_in_device(body["verification_uri"], body["user_code"], http=http, **ADA_LOGIN)
    assert raised.value.message.startswith("AADSTS53003: Access has been blocked by Conditional")
    assert _error(_poll(emulator, http, body["device_code"])) == (400, "invalid_grant", 53003)
    assert emulator.sign_ins[-1].error_code == 53003


def test_device_code_with_claims_runs_the_authentication_context_step(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    body = _start(
        emulator, http, claims='{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    )
    sign_in_device(body["verification_uri"], body["user_code"], http=http, **ADA_LOGIN)
    tokens = _poll(emulator, http, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert jws.split(tokens.json()["access_token"])[1]["acrs"] == ["c1"]

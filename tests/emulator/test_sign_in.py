"""The emulator's identity platform driven by msal itself: auth code + PKCE, the sign-in pages,
refresh tokens and claims challenges, and the token a sign-in yields used on PIM."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx
import msal
import pytest

from bot.adapters.graph.auth import MsalHttpClient
from stand_ins.graph_emulator import GraphEmulator, SignInError, jws, sign_in
from stand_ins.graph_emulator.sign_in_client import parse_form, sign_in_response
from stand_ins.graph_emulator.sign_in_pages import INVALID_CREDENTIALS, USER_DISABLED, WRONG_OTC
from tests.emulator.conftest import (
    ADA,
    ALAN,
    GLOBAL_ADMIN,
    PRIVILEGED_ROLE_ADMIN,
    REQUESTS,
    SECURITY_ADMIN,
    activation,
    error_of,
)

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
REDIRECT = "http://localhost:3000/auth/callback"
ACRS_C1 = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
ADA_LOGIN = {
    "username": "ada@contoso.example",
    "password": "emulator-password-ada",
    "mfa_code": "246810",
}


@pytest.fixture
def app(emulator: GraphEmulator, http: httpx.Client) -> msal.ConfidentialClientApplication:
    return _msal_app(emulator, http)


def _msal_app(emulator: GraphEmulator, http: httpx.Client) -> msal.ConfidentialClientApplication:
    env = emulator.env()
    return msal.ConfidentialClientApplication(
        env["AZURE_CLIENT_ID"],
        client_credential=env["AZURE_CLIENT_SECRET"],
        authority=f"{emulator.authority_host}/{env['AZURE_TENANT_ID']}",
        http_client=MsalHttpClient(http),
        instance_discovery=False,
    )


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _claims_of(token: str) -> dict[str, Any]:
    return jws.split(token)[1]


def _connect(
    app: msal.ConfidentialClientApplication,
    http: httpx.Client,
    *,
    claims: str | None = None,
    login: dict[str, Any] | None = None,
) -> dict[str, Any]:
    flow = app.initiate_auth_code_flow(
        scopes=GRAPH_DEFAULT,
        redirect_uri=REDIRECT,
        claims_challenge=claims,
        response_mode="form_post",
    )
    final = sign_in(flow["auth_uri"], http=http, **(login or ADA_LOGIN))
    assert final.startswith(REDIRECT + "?"), final
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, _query(final))
    assert "access_token" in result, result
    return result


def _graph(
    emulator: GraphEmulator,
    http: httpx.Client,
    token: str,
    method: str,
    path: str,
    body: Any = None,
) -> httpx.Response:
    return http.request(
        method, emulator.graph_url + path, json=body, headers={"Authorization": f"Bearer {token}"}
    )


# --- the happy path -----------------------------------------------------------------------------


def test_msal_signs_in_with_mfa_and_the_tokens_say_so(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    result = _connect(app, http)
    access = _claims_of(result["access_token"])
    assert access["idtyp"] == "user" and access["oid"] == ADA == access["sub"]
    assert access["tid"] == emulator.tenant.tenant_id
    assert access["amr"] == ["pwd", "mfa"] and access["acrs"] == []
    assert "RoleAssignmentSchedule.ReadWrite.Directory" in access["scp"].split()
    assert result["scope"].split()[-2:] == ["openid", "profile"]
    assert "offline_access" not in result["scope"].split() and result["refresh_token"]
    id_claims = result["id_token_claims"]
    assert id_claims["preferred_username"] == "ada@contoso.example"
    assert id_claims["aud"] == emulator.tenant.app.client_id
    assert id_claims["iss"] == f"{emulator.url}/{emulator.tenant.tenant_id}/v2.0"
    assert json.loads(base64.urlsafe_b64decode(result["client_info"] + "==")) == {
        "uid": ADA,
        "utid": emulator.tenant.tenant_id,
    }
    [account] = app.get_accounts()
    assert account["home_account_id"] == f"{ADA}.{emulator.tenant.tenant_id}"
    [record] = emulator.sign_ins
    assert (record.user_id, record.succeeded, record.amr) == (ADA, True, ("pwd", "mfa"))


def test_the_id_token_is_signed_by_the_published_key(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    id_token = _connect(app, http)["id_token"]
    header, _claims, signing_input, signature = jws.split(id_token)
    document = http.get(
        f"{emulator.url}/{emulator.tenant.tenant_id}/v2.0/.well-known/openid-configuration"
    ).json()
    [key] = [k for k in http.get(document["jwks_uri"]).json()["keys"] if k["kid"] == header["kid"]]
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(jws.b64url_decode(key["e"]), "big"),
        int.from_bytes(jws.b64url_decode(key["n"]), "big"),
    ).public_key()
    assert header["alg"] == "RS256"
    assert jws.verify_rsa("RS256", public_key, signing_input, signature)
    assert not jws.verify_rsa("RS256", public_key, signing_input + b"x", signature)


def test_the_signed_in_token_self_activates_an_mfa_role_as_the_person(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    token = _connect(app, http)["access_token"]
    response = _graph(
        emulator, http, token, "POST", REQUESTS, activation("selfActivate", ADA, GLOBAL_ADMIN)
    )
    assert response.status_code == 201, response.text
    [request] = emulator.state.requests
    assert request["action"] == "selfActivate"
    assert request["createdBy"]["user"]["id"] == ADA and request["createdBy"]["application"] is None
    assert emulator.state.active_assignments(ADA)


def test_a_sign_in_without_mfa_cannot_activate_an_mfa_role(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    emulator.update_sign_in(require_mfa=False)
    # No MFA step is shown, so no code is needed.
    result = _connect(app, http, login={**ADA_LOGIN, "mfa_code": None})
    assert _claims_of(result["access_token"])["amr"] == ["pwd"]
    response = _graph(
        emulator,
        http,
        result["access_token"],
        "POST",
        REQUESTS,
        activation("selfActivate", ADA, GLOBAL_ADMIN),
    )
    assert error_of(response) == (
        400,
        "RoleAssignmentRequestPolicyValidationFailed",
        'The following policy rules failed: ["MfaRule"]',
    )


def test_claims_asking_for_mfa_bring_the_mfa_step_back(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    emulator.update_sign_in(require_mfa=False)
    mfa_claims = '{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}'
    with pytest.raises(SignInError, match="asks for an MFA code"):
        flow = app.initiate_auth_code_flow(
            scopes=GRAPH_DEFAULT,
            redirect_uri=REDIRECT,
            claims_challenge=mfa_claims,
            response_mode="form_post",
        )
        sign_in(flow["auth_uri"], http=http, **{**ADA_LOGIN, "mfa_code": None})
    result = _connect(app, http, claims=mfa_claims)
    assert _claims_of(result["access_token"])["amr"] == ["pwd", "mfa"]


def test_a_user_without_an_mfa_method_skips_the_step(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    result = _connect(
        app, http, login={"username": "alan@contoso.example", "password": "emulator-password-alan"}
    )
    access = _claims_of(result["access_token"])
    assert access["oid"] == ALAN and access["amr"] == ["pwd"]


def test_the_authentication_context_step_makes_the_claims_challenge_pass(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    token = _connect(app, http)["access_token"]
    body = activation("selfActivate", ADA, SECURITY_ADMIN)
    refused = _graph(emulator, http, token, "POST", REQUESTS, body)
    status, code, message = error_of(refused)
    assert (status, code) == (400, "RoleAssignmentRequestAcrsValidationFailed")
    challenge = unquote(message.split("&claims=", 1)[1])

    flow = app.initiate_auth_code_flow(
        scopes=GRAPH_DEFAULT,
        redirect_uri=REDIRECT,
        claims_challenge=challenge,
        response_mode="form_post",
    )
    # The page after the MFA code names the context as the tenant does.
    first = http.get(flow["auth_uri"])
    form = parse_form(first.text, str(first.url))
    mfa = http.post(
        form.action,
        data={
            "flow": form.fields["flow"],
            "submit": "1",
            "username": ADA_LOGIN["username"],
            "password": ADA_LOGIN["password"],
        },
    )
    context = http.post(
        form.action, data={"flow": form.fields["flow"], "submit": "1", "otc": ADA_LOGIN["mfa_code"]}
    )
    assert 'id="otc"' in mfa.text
    assert "Privileged role activation (c1)" in context.text
    done = http.post(form.action, data={"flow": form.fields["flow"], "submit": "1"})
    posted = parse_form(done.text, str(done.url))
    assert posted.action == REDIRECT and "response" in posted.ids
    result = app.acquire_token_by_auth_code_flow(flow, posted.fields)
    assert _claims_of(result["access_token"])["acrs"] == ["c1"]
    granted = _graph(emulator, http, result["access_token"], "POST", REQUESTS, body)
    assert granted.status_code == 201, granted.text
    assert emulator.sign_ins[-1].acrs == ("c1",)


def test_the_query_response_mode_redirects_with_the_code(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    with pytest.warns(UserWarning, match="form_post"):
        flow = app.initiate_auth_code_flow(scopes=GRAPH_DEFAULT, redirect_uri=REDIRECT)
    response = sign_in_response(flow["auth_uri"], http=http, **ADA_LOGIN)
    assert (response.method, response.redirect_uri) == ("GET", REDIRECT)
    assert response.params["state"] == flow["state"]
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, response.params)


# --- refresh tokens -----------------------------------------------------------------------------


def test_acquire_token_silent_uses_the_refresh_token_and_keeps_amr(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    first = _connect(app, http, claims=ACRS_C1)
    [account] = app.get_accounts()
    again = app.acquire_token_silent(GRAPH_DEFAULT, account=account, force_refresh=True)
    assert again is not None and again["token_source"] == "identity_provider"
    assert again["access_token"] != first["access_token"]
    access = _claims_of(again["access_token"])
    assert (access["amr"], access["acrs"]) == (["pwd", "mfa"], ["c1"])
    assert [r.flow for r in emulator.sign_ins] == ["authorization_code", "refresh_token"]


def test_silent_with_an_unmet_claims_challenge_needs_interaction(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    _connect(app, http)
    [account] = app.get_accounts()
    error = app.acquire_token_silent_with_error(
        GRAPH_DEFAULT, account=account, claims_challenge=ACRS_C1
    )
    assert error is not None and error["error"] == "invalid_grant", error
    assert error["error_codes"] == [50076] and error["suberror"] == "basic_action"
    assert error["error_description"].startswith("AADSTS50076: ")
    assert json.loads(error["claims"]) == json.loads(ACRS_C1)
    assert (
        app.acquire_token_silent(GRAPH_DEFAULT, account=account, claims_challenge=ACRS_C1) is None
    )


def test_a_refresh_token_of_a_user_disabled_since_is_refused(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    _connect(app, http)
    [account] = app.get_accounts()
    emulator.update_user(ADA, account_enabled=False)
    error = app.acquire_token_silent_with_error(GRAPH_DEFAULT, account=account, force_refresh=True)
    assert error is not None and error["error"] == "invalid_grant"
    assert error["error_codes"] == [50057]


# --- authorization code redemption failures (raw protocol, as Entra answers) --------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize_url(emulator: GraphEmulator, **params: str | None) -> str:
    query = {
        "client_id": emulator.tenant.app.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "https://graph.microsoft.com/.default openid offline_access",
        "state": "state-42",
        "nonce": "nonce-42",
        "code_challenge_method": "S256",
        **params,
    }
    cleaned = {k: v for k, v in query.items() if v is not None}
    return f"{emulator.url}/{emulator.tenant.tenant_id}/oauth2/v2.0/authorize?{urlencode(cleaned)}"


def _code(emulator: GraphEmulator, http: httpx.Client, challenge: str) -> str:
    final = sign_in(_authorize_url(emulator, code_challenge=challenge), http=http, **ADA_LOGIN)
    query = _query(final)
    assert query["state"] == "state-42"
    return query["code"]


def _redeem(
    emulator: GraphEmulator,
    http: httpx.Client,
    code: str,
    verifier: str,
    redirect_uri: str = REDIRECT,
) -> httpx.Response:
    return http.post(
        f"{emulator.url}/{emulator.tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": emulator.tenant.app.client_id,
            "client_secret": emulator.env()["AZURE_CLIENT_SECRET"],
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "scope": "https://graph.microsoft.com/.default openid offline_access",
        },
    )


def _sts_error(response: httpx.Response) -> tuple[int, str, int]:
    body = response.json()
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    return response.status_code, body["error"], body["error_codes"][0]


def test_a_code_is_single_use(emulator: GraphEmulator, http: httpx.Client) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    first = _redeem(emulator, http, code, verifier)
    assert first.status_code == 200
    assert _claims_of(first.json()["id_token"])["nonce"] == "nonce-42"
    assert _sts_error(_redeem(emulator, http, code, verifier)) == (400, "invalid_grant", 54005)


def test_a_wrong_code_verifier_is_refused(emulator: GraphEmulator, http: httpx.Client) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    assert _sts_error(_redeem(emulator, http, code, verifier + "x")) == (
        400,
        "invalid_grant",
        501481,
    )


def test_a_code_is_bound_to_its_redirect_uri(emulator: GraphEmulator, http: httpx.Client) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    response = _redeem(emulator, http, code, verifier, "http://localhost:4000/auth/callback")
    assert _sts_error(response) == (400, "invalid_grant", 500112)


def test_a_code_expires_after_ten_minutes(emulator: GraphEmulator, http: httpx.Client) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    emulator.advance_clock(601)
    assert _sts_error(_redeem(emulator, http, code, verifier)) == (400, "invalid_grant", 70008)


def test_redeeming_a_code_needs_the_client_secret(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    response = http.post(
        f"{emulator.url}/{emulator.tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": emulator.tenant.app.client_id,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        },
    )
    assert _sts_error(response) == (401, "invalid_client", 7000218)


# --- the authorize endpoint and the pages -------------------------------------------------------


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _, challenge = _pkce()
    for uri in ("https://evil.example/auth/callback", "http://localhost:3000/other"):
        response = http.get(_authorize_url(emulator, redirect_uri=uri, code_challenge=challenge))
        assert response.status_code == 400 and "Location" not in response.headers
        assert "AADSTS50011" in response.text
    unknown_client = http.get(
        _authorize_url(
            emulator, client_id="00000000-0000-0000-0000-000000000001", code_challenge=challenge
        )
    )
    assert unknown_client.status_code == 400 and "AADSTS700016" in unknown_client.text


def test_loopback_redirect_uris_match_on_any_port(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _, challenge = _pkce()
    for uri in (
        "https://127.0.0.1:8443/auth/callback",
        "https://127.0.0.1/auth/callback",
        "http://localhost:51234/auth/callback",
    ):
        response = http.get(_authorize_url(emulator, redirect_uri=uri, code_challenge=challenge))
        assert response.status_code == 200 and 'id="username"' in response.text, uri
    # The demo app registers https for 127.0.0.1 and http for localhost, nothing else.
    wrong_scheme = http.get(
        _authorize_url(
            emulator, redirect_uri="https://localhost:8443/auth/callback", code_challenge=challenge
        )
    )
    assert wrong_scheme.status_code == 400


@pytest.mark.parametrize(
    "params",
    [{"code_challenge": None}, {"code_challenge_method": "plain"}, {"code_challenge_method": None}],
)
def test_authorize_refuses_a_request_without_s256_pkce(
    emulator: GraphEmulator, http: httpx.Client, params: dict[str, str | None]
) -> None:
    _, challenge = _pkce()
    response = http.get(_authorize_url(emulator, **{"code_challenge": challenge, **params}))
    assert response.status_code == 302
    query = _query(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT + "?")
    assert query["error"] == "invalid_request" and query["state"] == "state-42"
    assert query["error_description"].startswith("AADSTS50147: ")


def test_cancel_redirects_with_access_denied(emulator: GraphEmulator, http: httpx.Client) -> None:
    _, challenge = _pkce()
    page = http.get(_authorize_url(emulator, code_challenge=challenge))
    form = parse_form(page.text, str(page.url))
    assert "cancel" in form.buttons and "submit" in form.buttons
    response = http.post(form.action, data={"flow": form.fields["flow"], "cancel": "1"})
    assert response.status_code == 302
    query = _query(response.headers["Location"])
    assert (query["error"], query["state"]) == ("access_denied", "state-42")
    assert query["error_description"].startswith(
        "AADSTS65004: User declined to consent to access the app."
    )
    # The flow is over: its form cannot be posted again.
    again = http.post(
        form.action,
        data={
            "flow": form.fields["flow"],
            "submit": "1",
            "username": "ada@contoso.example",
            "password": "x",
        },
    )
    assert again.status_code == 400 and "AADSTS50089" in again.text


def test_a_wrong_password_shows_the_page_again_with_aadsts50126(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _, challenge = _pkce()
    with pytest.raises(SignInError) as raised:
        sign_in(
            _authorize_url(emulator, code_challenge=challenge),
            http=http,
            username="ada@contoso.example",
            password="not-her-password",
        )
    assert raised.value.message == INVALID_CREDENTIALS and raised.value.status == 400
    assert "not-her-password" not in str(raised.value)
    assert emulator.sign_ins[-1].error_code == 50126 and not emulator.sign_ins[-1].succeeded


def test_a_wrong_mfa_code_is_refused(emulator: GraphEmulator, http: httpx.Client) -> None:
    _, challenge = _pkce()
    with pytest.raises(SignInError) as raised:
        sign_in(
            _authorize_url(emulator, code_challenge=challenge),
            http=http,
            **{**ADA_LOGIN, "mfa_code": "000000"},
        )
    assert raised.value.message == WRONG_OTC


def test_a_disabled_account_cannot_sign_in(emulator: GraphEmulator, http: httpx.Client) -> None:
    emulator.update_user(ADA, account_enabled=False)
    _, challenge = _pkce()
    with pytest.raises(SignInError) as raised:
        sign_in(_authorize_url(emulator, code_challenge=challenge), http=http, **ADA_LOGIN)
    assert raised.value.message == USER_DISABLED


def test_the_sign_in_page_is_accessible_html(emulator: GraphEmulator, http: httpx.Client) -> None:
    _, challenge = _pkce()
    page = http.get(
        _authorize_url(emulator, code_challenge=challenge, login_hint="ada@contoso.example")
    )
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<html lang="en">' in text and "<h1>Sign in</h1>" in text
    assert '<label for="username">' in text and '<label for="password">' in text
    assert 'value="ada@contoso.example"' in text
    form = parse_form(text, str(page.url))
    failed = http.post(
        form.action,
        data={
            "flow": form.fields["flow"],
            "submit": "1",
            "username": "ada@contoso.example",
            "password": "x",
        },
    )
    assert 'role="alert"' in failed.text and 'aria-describedby="error"' in failed.text


def test_prompt_none_answers_login_required(emulator: GraphEmulator, http: httpx.Client) -> None:
    _, challenge = _pkce()
    response = http.get(_authorize_url(emulator, code_challenge=challenge, prompt="none"))
    assert _query(response.headers["Location"])["error"] == "login_required"


def test_the_other_roles_still_need_what_pim_asks(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    """A delegated activation of an approval role stays pending in PIM, as the person."""
    token = _connect(app, http)["access_token"]
    response = _graph(
        emulator,
        http,
        token,
        "POST",
        REQUESTS,
        activation("selfActivate", ADA, PRIVILEGED_ROLE_ADMIN),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "PendingApprovalProvisioning"


def test_an_authentication_context_guarded_by_an_mfa_policy_brings_the_mfa_step(
    emulator: GraphEmulator, http: httpx.Client, app: msal.ConfidentialClientApplication
) -> None:
    """c1 is the context of an enabled "require MFA" policy: asking for it means MFA, even in a
    tenant that does not ask for MFA at every sign-in. Without that policy it does not."""
    emulator.update_sign_in(require_mfa=False)
    result = _connect(app, http, claims=ACRS_C1)
    assert (
        _claims_of(result["access_token"])["amr"],
        _claims_of(result["access_token"])["acrs"],
    ) == (["pwd", "mfa"], ["c1"])
    emulator.update_tenant(conditional_access_policies=())
    result = _connect(
        _msal_app(emulator, http), http, claims=ACRS_C1, login={**ADA_LOGIN, "mfa_code": None}
    )
    assert (
        _claims_of(result["access_token"])["amr"],
        _claims_of(result["access_token"])["acrs"],
    ) == (["pwd"], ["c1"])


def test_a_user_without_mfa_cannot_meet_a_demand_for_mfa(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _, challenge = _pkce()
    url = _authorize_url(emulator, code_challenge=challenge, claims=ACRS_C1)
    final = sign_in(
        url, http=http, username="alan@contoso.example", password="emulator-password-alan"
    )
    query = _query(final)
    assert query["error"] == "interaction_required" and query["state"] == "state-42"
    assert query["error_description"].startswith("AADSTS50079: ")


def test_secrets_stay_out_of_repr_and_errors(emulator: GraphEmulator, http: httpx.Client) -> None:
    user = emulator.tenant.find_user("ada@contoso.example")
    assert user is not None and "emulator-password-ada" not in repr(user)
    assert "246810" not in repr(user)
    assert emulator.tenant.app.client_secret not in repr(emulator.tenant.app)
    verifier, challenge = _pkce()
    code = _code(emulator, http, challenge)
    store = emulator.sts.identity
    record = store.code(code)
    assert record is not None and code not in repr(record) and challenge not in repr(record)
    response = _redeem(emulator, http, code, verifier + "x")
    assert verifier not in response.text and code not in response.text


def test_the_control_endpoint_shows_the_sign_in_log(
    emulator: GraphEmulator, http: httpx.Client
) -> None:
    _, challenge = _pkce()
    with pytest.raises(SignInError):
        sign_in(
            _authorize_url(emulator, code_challenge=challenge),
            http=http,
            username="ada@contoso.example",
            password="wrong",
        )
    [entry] = http.get(f"{emulator.url}/_emulator/state").json()["signIns"]
    assert (entry["userId"], entry["succeeded"], entry["errorCode"]) == (ADA, False, 50126)

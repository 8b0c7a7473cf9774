"""The emulated Entra token service, driven by msal and by raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import msal
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from stand_ins.graph_emulator import GraphEmulator
from stand_ins.graph_emulator.tenant import parse_tenant

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


def _key_and_certificate() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pimbot-test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def app_key() -> tuple[bytes, bytes]:
    return _key_and_certificate()


@pytest.fixture
def cert_emulator(app_key: tuple[bytes, bytes]) -> Iterator[GraphEmulator]:
    """The demo tenant whose app also has a certificate registered."""
    from importlib import resources

    data = yaml.safe_load(
        resources.files("stand_ins").joinpath("demo_tenant.yaml").read_text("utf-8"))
    data["app"]["certificate_pem"] = app_key[1].decode()
    with GraphEmulator(parse_tenant(data)) as emu:
        yield emu


@pytest.fixture
def session(emulator: GraphEmulator) -> Iterator[requests.Session]:
    yield from _session(emulator)


def _session(emulator: GraphEmulator) -> Iterator[requests.Session]:
    # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are set on this machine and would override `verify`.
    with requests.Session() as http_session:
        http_session.trust_env = False
        http_session.verify = str(emulator.ca_path)
        yield http_session


def _app(emulator: GraphEmulator, credential: object, http_client: requests.Session,
         client_id: str | None = None, tenant: str | None = None
         ) -> msal.ConfidentialClientApplication:
    env = emulator.env()
    return msal.ConfidentialClientApplication(
        client_id or env["AZURE_CLIENT_ID"],
        client_credential=credential,
        authority=f"{emulator.authority_host}/{tenant or env['AZURE_TENANT_ID']}",
        instance_discovery=False,
        http_client=http_client,
    )


def test_discovery_names_https_endpoints_of_the_tenant(emulator: GraphEmulator,
                                                       http: httpx.Client) -> None:
    tenant = emulator.tenant.tenant_id
    document = http.get(f"{emulator.url}/{tenant}/v2.0/.well-known/openid-configuration").json()
    assert document["token_endpoint"] == f"{emulator.url}/{tenant}/oauth2/v2.0/token"
    assert document["issuer"] == f"{emulator.url}/{tenant}/v2.0"
    assert document["authorization_endpoint"].startswith("https://")
    assert document["device_authorization_endpoint"].startswith("https://")


def test_msal_gets_a_token_with_the_secret_and_the_token_works_on_graph(
    emulator: GraphEmulator, session: requests.Session, http: httpx.Client
) -> None:
    app = _app(emulator, emulator.env()["AZURE_CLIENT_SECRET"], session)
    result = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["token_type"] == "Bearer" and result["expires_in"] > 300, result
    me = http.get(f"{emulator.graph_url}/users/ada@contoso.example",
                  headers={"Authorization": f"Bearer {result['access_token']}"})
    assert me.status_code == 200
    assert app.acquire_token_for_client(scopes=GRAPH_SCOPE)["token_source"] == "cache"


def test_msal_gets_a_token_with_a_certificate_assertion(
    cert_emulator: GraphEmulator, app_key: tuple[bytes, bytes]
) -> None:
    for session in _session(cert_emulator):
        for credential in (
            {"private_key": app_key[0].decode(), "public_certificate": app_key[1].decode()},
            {"private_key": app_key[0].decode(),
             "thumbprint": x509.load_pem_x509_certificate(app_key[1]).fingerprint(
                 hashes.SHA1()).hex()},
        ):
            result = _app(cert_emulator, credential, session).acquire_token_for_client(
                scopes=GRAPH_SCOPE)
            assert "access_token" in result, result


def test_an_assertion_signed_by_another_key_is_refused(cert_emulator: GraphEmulator) -> None:
    other_key, other_certificate = _key_and_certificate()
    for session in _session(cert_emulator):
        app = _app(cert_emulator, {"private_key": other_key.decode(),
                                   "public_certificate": other_certificate.decode()}, session)
        result = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
        assert result["error"] == "invalid_client"
        assert result["error_codes"] == [700027]


def test_a_forged_signature_with_the_registered_certificate_is_refused(
    cert_emulator: GraphEmulator, app_key: tuple[bytes, bytes]
) -> None:
    other_key, _ = _key_and_certificate()
    for session in _session(cert_emulator):
        app = _app(cert_emulator, {"private_key": other_key.decode(),
                                   "public_certificate": app_key[1].decode()}, session)
        result = app.acquire_token_for_client(scopes=GRAPH_SCOPE)
        assert result["error_codes"] == [700027]
        assert "invalid signature" in result["error_description"]


def test_wrong_secret_answers_with_the_aadsts_shape(emulator: GraphEmulator,
                                                   http: httpx.Client) -> None:
    env = emulator.env()
    response = http.post(
        f"{emulator.url}/{env['AZURE_TENANT_ID']}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": env["AZURE_CLIENT_ID"],
              "client_secret": "wrong", "scope": GRAPH_SCOPE[0]},
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert body["error_codes"] == [7000215]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= body.keys()


@pytest.mark.parametrize(
    ("client_id", "tenant", "scope", "status", "code"),
    [
        ("00000000-0000-0000-0000-000000000001", None, GRAPH_SCOPE[0], 400, 700016),
        (None, "11111111-1111-1111-1111-111111111111", GRAPH_SCOPE[0], 400, 90002),
        (None, None, "https://graph.microsoft.com/User.Read", 400, 1002012),
        (None, None, "https://example.com/.default", 400, 500011),
    ],
)
def test_other_token_errors(emulator: GraphEmulator, http: httpx.Client, client_id: str | None,
                            tenant: str | None, scope: str, status: int, code: int) -> None:
    env = emulator.env()
    response = http.post(
        f"{emulator.url}/{tenant or env['AZURE_TENANT_ID']}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": client_id or env["AZURE_CLIENT_ID"],
              "client_secret": env["AZURE_CLIENT_SECRET"], "scope": scope},
    )
    assert (response.status_code, response.json()["error_codes"]) == (status, [code])


def test_msal_reports_an_unknown_tenant_at_construction(emulator: GraphEmulator,
                                                        session: requests.Session) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        _app(emulator, "secret", session, tenant="11111111-1111-1111-1111-111111111111")


def test_graph_refuses_missing_garbage_and_expired_tokens(emulator: GraphEmulator,
                                                         http: httpx.Client) -> None:
    url = f"{emulator.graph_url}/users/ada@contoso.example"
    for headers, message in (
        ({}, "Access token is empty."),
        ({"Authorization": "Bearer not-a-jwt"}, "JWT is not well formed"),
        ({"Authorization": f"Bearer {emulator.mint_token(expires_in=-1)}"},
         "Lifetime validation failed, the token is expired."),
    ):
        response = http.get(url, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert message in error["message"]
        assert "innerError" in error and "request-id" in error["innerError"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_token_lacking_a_permission_gets_403(emulator: GraphEmulator, http: httpx.Client
                                              ) -> None:
    token = emulator.mint_token(permissions=["User.Read.All"])
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get(f"{emulator.graph_url}/users/ada@contoso.example",
                    headers=headers).status_code == 200
    response = http.get(f"{emulator.graph_url}/roleManagement/directory/"
                        "roleEligibilityScheduleInstances", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    assert response.json()["error"]["message"] == (
        "Insufficient privileges to complete the operation.")


def test_msal_redeems_an_auth_code_with_a_certificate_assertion(
    cert_emulator: GraphEmulator, app_key: tuple[bytes, bytes]
) -> None:
    from urllib.parse import parse_qsl, urlsplit

    import httpx

    from bot.adapters.graph.auth import MsalHttpClient
    from stand_ins.graph_emulator import sign_in

    with httpx.Client(verify=cert_emulator.client_ssl_context(), trust_env=False) as http:
        env = cert_emulator.env()
        app = msal.ConfidentialClientApplication(
            env["AZURE_CLIENT_ID"],
            client_credential={"private_key": app_key[0].decode(),
                               "public_certificate": app_key[1].decode()},
            authority=f"{cert_emulator.authority_host}/{env['AZURE_TENANT_ID']}",
            instance_discovery=False, http_client=MsalHttpClient(http))
        flow = app.initiate_auth_code_flow(scopes=GRAPH_SCOPE, response_mode="form_post",
                                           redirect_uri="https://127.0.0.1:8443/auth/callback")
        final = sign_in(flow["auth_uri"], username="grace@contoso.example",
                        password="emulator-password-grace", mfa_code="135790", http=http)
        result = app.acquire_token_by_auth_code_flow(flow, dict(parse_qsl(urlsplit(final).query)))
        assert "access_token" in result, result
        assert result["id_token_claims"]["preferred_username"] == "grace@contoso.example"

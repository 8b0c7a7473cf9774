"""Tokens: lazy msal over pimbot's own httpx client, helpful AADSTS messages, certificates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bot.adapters.graph import (
    AppTokenProvider,
    CertificateCredential,
    MsalHttpClient,
    build_pim_client,
    build_token_provider,
)
from bot.adapters.graph.auth import auth_error, graph_scope, load_certificate
from bot.app.settings import Settings
from bot.domain.errors import ConfigurationError, PimAuthError

TENANT = "ed8cba88-95e0-4fc8-b22d-13a943abbcc1"
CLIENT = "a0997ad6-80ef-4819-9445-1f99f96379f0"
SECRET = "very-secret-value~123"
EMU = "https://login.emulator.example"


class FakeSts:
    """OIDC discovery and a client-credentials token endpoint, on httpx.MockTransport."""

    def __init__(self, token_answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.token_answer = token_answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        base = f"{EMU}/{TENANT}"
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                },
            )
        if request.url.path.endswith("/oauth2/v2.0/token"):
            return self.token_answer or httpx.Response(
                200, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "at-1"}
            )
        return httpx.Response(404, json={"error": "not_found"})

    def token_forms(self) -> list[dict[str, list[str]]]:
        return [parse_qs(r.content.decode()) for r in self.requests if r.method == "POST"]


def provider(sts: FakeSts, credential: str | CertificateCredential = SECRET) -> AppTokenProvider:
    http = httpx.Client(transport=httpx.MockTransport(sts))
    return AppTokenProvider(
        tenant_id=TENANT,
        client_id=CLIENT,
        credential=credential,
        authority_host=EMU,
        scope="https://graph.emulator.example/.default",
        http_client=MsalHttpClient(http),
    )


def test_real_msal_gets_a_token_through_pimbots_http_client_and_caches_it() -> None:
    sts = FakeSts()
    tokens = provider(sts)

    assert sts.requests == []  # nothing happens until the first token
    assert tokens.token() == "at-1"
    assert tokens.token() == "at-1"

    forms = sts.token_forms()
    assert len(forms) == 1  # msal's cache answered the second call
    assert forms[0]["grant_type"] == ["client_credentials"]
    assert forms[0]["scope"] == ["https://graph.emulator.example/.default"]
    assert forms[0]["client_secret"] == [SECRET]
    # a non-Microsoft authority host: no instance discovery at login.microsoftonline.com
    assert all(r.url.host == "login.emulator.example" for r in sts.requests)


def test_a_wrong_secret_is_explained_without_revealing_it() -> None:
    sts = FakeSts(
        httpx.Response(
            401,
            json={
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. "
                "Ensure the secret being sent in the request is the client secret value. "
                "Trace ID: 1",
                "error_codes": [7000215],
            },
        )
    )
    tokens = provider(sts)

    with pytest.raises(PimAuthError) as caught:
        tokens.token()

    assert caught.value.code == "AADSTS7000215"
    assert "client secret (AADSTS7000215). Check AZURE_CLIENT_SECRET" in caught.value.user_message
    assert SECRET not in str(caught.value) and SECRET not in repr(tokens)


def test_an_unknown_aadsts_code_keeps_azures_first_line() -> None:
    error = auth_error(
        {
            "error": "unauthorized_client",
            "error_description": "AADSTS123456: Something odd.\r\nTrace ID: 9",
        }
    )

    assert error.code == "AADSTS123456"
    assert (
        error.user_message == "Azure refused pimbot a token (unauthorized_client): "
        "AADSTS123456: Something odd."
    )


def test_msal_is_built_lazily_with_the_tenant_authority(tmp_path: Path) -> None:
    built: list[dict[str, Any]] = []

    class FakeApp:
        def __init__(self, client_id: str, **kwargs: Any) -> None:
            built.append({"client_id": client_id, **kwargs})

        def acquire_token_for_client(
            self, scopes: list[str], claims_challenge: str | None = None
        ) -> dict[str, Any]:
            return {"access_token": f"token-for-{scopes[0]}-{claims_challenge}"}

    http = MsalHttpClient(httpx.Client())
    tokens = AppTokenProvider(
        tenant_id=TENANT,
        client_id=CLIENT,
        credential=SECRET,
        authority_host="https://login.microsoftonline.us/",
        scope="https://graph.microsoft.us/.default",
        http_client=http,
        app_factory=FakeApp,
    )

    assert built == []
    assert tokens.token('{"c":1}') == 'token-for-https://graph.microsoft.us/.default-{"c":1}'
    tokens.token()
    assert len(built) == 1
    assert built[0]["authority"] == f"https://login.microsoftonline.us/{TENANT}"
    assert built[0]["instance_discovery"] is True  # a Microsoft cloud keeps discovery
    assert built[0]["http_client"] is http


@pytest.mark.parametrize(
    ("graph_url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
        (
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
            "https://microsoftgraph.chinacloudapi.cn/.default",
        ),
        ("https://127.0.0.1:8443/v1.0", "https://127.0.0.1:8443/.default"),
    ],
)
def test_the_token_scope_follows_the_graph_cloud(graph_url: str, scope: str) -> None:
    assert graph_scope(graph_url) == scope


def test_building_the_client_does_no_io_and_missing_credentials_are_listed() -> None:
    settings = Settings(
        azure_tenant_id=TENANT,
        azure_client_id=CLIENT,
        azure_client_secret=SECRET,  # type: ignore[arg-type]
        azure_authority_host="https://login.invalid",
        graph_url="https://graph.invalid/v1.0",
    )
    with build_pim_client(settings) as client:
        assert client is not None  # no DNS lookup, no msal discovery happened

    with pytest.raises(ConfigurationError) as caught:
        build_token_provider(Settings(), MsalHttpClient(httpx.Client()))
    assert len(caught.value.problems) == 3


def test_the_certificate_secret_is_used_only_when_no_secret_is_set(tmp_path: Path) -> None:
    pem = tmp_path / "pimbot.pem"
    pem.write_bytes(_key_and_certificate(password=None)[0])
    settings = Settings(
        azure_tenant_id=TENANT, azure_client_id=CLIENT, azure_client_certificate_path=pem
    )

    tokens = build_token_provider(settings, MsalHttpClient(httpx.Client()))

    assert isinstance(tokens._credential, CertificateCredential)  # noqa: SLF001


# --- certificates ----------------------------------------------------------------------------


def _key_and_certificate(password: bytes | None) -> tuple[bytes, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pimbot")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM), certificate


def test_a_pem_with_an_encrypted_key_gives_msal_thumbprint_and_certificate(tmp_path: Path) -> None:
    pem, certificate = _key_and_certificate(password=b"s3cret")
    path = tmp_path / "pimbot.pem"
    path.write_bytes(pem)

    credential = load_certificate(CertificateCredential(path, "s3cret"))

    assert credential["thumbprint"] == certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert x509.load_pem_x509_certificate(credential["public_certificate"].encode()) == certificate
    assert "PRIVATE KEY" in credential["private_key"]
    assert "s3cret" not in repr(CertificateCredential(path, "s3cret"))


@pytest.mark.parametrize(("password", "words"), [(None, "is encrypted"), ("nope", "wrong")])
def test_certificate_password_problems_are_explained(
    tmp_path: Path, password: str | None, words: str
) -> None:
    path = tmp_path / "pimbot.pem"
    path.write_bytes(_key_and_certificate(password=b"s3cret")[0])

    with pytest.raises(PimAuthError, match=words):
        load_certificate(CertificateCredential(path, password))


def test_real_msal_signs_a_client_assertion_with_the_certificate(tmp_path: Path) -> None:
    pem, certificate = _key_and_certificate(password=None)
    path = tmp_path / "pimbot.pem"
    path.write_bytes(pem)
    sts = FakeSts()

    assert provider(sts, CertificateCredential(path)).token() == "at-1"

    form = sts.token_forms()[0]
    assert "client_secret" not in form
    header = json.loads(_b64(form["client_assertion"][0].split(".")[0]))
    assert header["x5t"]  # SHA-1 thumbprint
    assert header["x5c"]  # the certificate itself (Subject Name/Issuer authentication)


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

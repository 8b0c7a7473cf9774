"""The real client (real msal, httpx and TLS) against the Graph emulator on a real port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bot.adapters.graph import (
    GraphPimClient,
    MsalHttpClient,
    build_http_client,
    build_pim_client,
    build_token_provider,
)
from bot.adapters.graph.auth import BearerAuth
from bot.adapters.graph.errors import error_from_response
from bot.adapters.graph.transport import GraphTransport, Retry
from bot.app.settings import Settings
from bot.domain.elevation import RoleRef, Ticket
from bot.domain.errors import (
    ActiveDurationTooShort,
    AssignmentExists,
    AssignmentNotFound,
    AuthenticationContextRequired,
    PimAuthError,
    PimError,
    PimThrottled,
    PolicyValidationFailed,
)
from bot.domain.ports import ActivationRequest

emulator = pytest.importorskip("stand_ins.graph_emulator")
GraphEmulator, default_tenant = emulator.GraphEmulator, emulator.default_tenant

ADA_MAIL = "ada@contoso.example"
ALAN_MAIL = "alan.turing@contoso.example"  # mail ≠ UPN
SECOPS = "2b916cf0-efbc-4918-b604-875f5f93c352"
SECURITY_READER = RoleRef("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader")
EXCHANGE_ADMIN = RoleRef("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator")
GLOBAL_ADMIN = RoleRef("62e90394-69f5-4237-9190-012177145e10", "Global Administrator")
SECURITY_ADMIN = RoleRef("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator")
USER_ADMIN = RoleRef("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator")
PRIV_ROLE_ADMIN = RoleRef("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator")


class Waits(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def emu() -> Iterator[object]:
    with GraphEmulator(tenant=default_tenant()) as running:
        yield running


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def client(emu: object, waits: Waits, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphPimClient]:
    # requests would let this override PIMBOT_CA_BUNDLE for msal; pimbot's msal uses httpx.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    with build_pim_client(Settings.from_env(emu.env()), sleep=waits) as pim:  # type: ignore[attr-defined]
        yield pim


def _ada(client: GraphPimClient) -> str:
    user = client.resolve_user(ADA_MAIL)
    assert user is not None
    return user.id


def _requests_for(emu: object, principal_id: str, role: RoleRef) -> list[dict[str, object]]:
    return [
        r
        for r in emu.state.list_requests()  # type: ignore[attr-defined]
        if r["principalId"] == principal_id and r["roleDefinitionId"] == role.role_definition_id
    ]


def test_resolve_eligible_settings_activate_extend_deactivate(
    client: GraphPimClient, emu: object
) -> None:
    alan = client.resolve_user(ALAN_MAIL)
    assert alan is not None and alan.user_principal_name == "alan@contoso.example"
    ada = _ada(client)

    eligible = {r.role.role_definition_id: r for r in client.list_eligible_roles(ada)}
    via_group = eligible[SECURITY_READER.role_definition_id]
    assert (via_group.member_type, via_group.via_group_id) == ("Group", SECOPS)
    assert eligible[EXCHANGE_ADMIN.role_definition_id].member_type == "Direct"
    role = via_group.role

    settings = client.get_role_settings(role)
    assert settings.max_duration == timedelta(hours=8) and not settings.justification_required

    result = client.activate(ActivationRequest(ada, role, timedelta(hours=1), "Alert 4711"))
    assert result.is_granted and result.ends_at is not None
    active = [a for a in client.list_active_assignments(ada) if a.role == role]
    assert len(active) == 1 and active[0].ends_at == result.ends_at

    new_end = result.ends_at + timedelta(minutes=30)
    extended = client.extend(ada, role, new_end=new_end, justification="Alert 4711 still open")
    assert extended.is_granted
    active = [a for a in client.list_active_assignments(ada) if a.role == role]
    assert len(active) == 1 and active[0].ends_at == new_end  # same assignment, later end

    emu.advance_clock(6 * 60)  # type: ignore[attr-defined]
    assert client.deactivate(ada, role).status == "Revoked"
    assert not [a for a in client.list_active_assignments(ada) if a.role == role]
    assert [r["action"] for r in _requests_for(emu, ada, role)] == [
        "adminAssign",
        "adminExtend",
        "adminRemove",
    ]


def test_group_members_are_read_across_pages(client: GraphPimClient) -> None:
    members = client.list_group_members(SECOPS)

    assert {m.user_principal_name for m in members} == {
        "ada@contoso.example",
        "alan@contoso.example",
        "siobhan.obrien@contoso.example",
    }


def test_pim_refusals_of_admin_actions_become_domain_errors(
    client: GraphPimClient, emu: object
) -> None:
    ada = _ada(client)
    with pytest.raises(AssignmentNotFound):
        client.deactivate(ada, EXCHANGE_ADMIN)
    with pytest.raises(AssignmentNotFound):
        client.extend(ada, EXCHANGE_ADMIN, new_end=datetime.now(UTC), justification="x")

    with pytest.raises(PolicyValidationFailed) as caught:
        client.activate(ActivationRequest(ada, EXCHANGE_ADMIN, timedelta(days=200), " "))
    assert caught.value.failed_rules == ("ExpirationRule", "JustificationRule")
    assert "maximum" in caught.value.user_message and "justification" in caught.value.user_message

    emu.faults.policy_message_format = "described"  # type: ignore[attr-defined]
    with pytest.raises(PolicyValidationFailed) as caught:
        client.activate(ActivationRequest(ada, EXCHANGE_ADMIN, timedelta(hours=1), ""))
    assert caught.value.failed_rules == ("JustificationRule",)

    request = ActivationRequest(
        ada,
        EXCHANGE_ADMIN,
        timedelta(hours=1),
        "Mailbox restore",
        ticket=Ticket("CHG-1", "ServiceNow"),
    )
    client.activate(request)
    with pytest.raises(AssignmentExists, match="already active"):
        client.activate(request)
    with pytest.raises(ActiveDurationTooShort, match="five minutes"):
        client.deactivate(ada, EXCHANGE_ADMIN)


@pytest.mark.parametrize(
    ("role", "kind", "detail"),
    [
        (GLOBAL_ADMIN, PolicyValidationFailed, "MfaRule"),
        (EXCHANGE_ADMIN, PolicyValidationFailed, "TicketingRule"),
        (USER_ADMIN, PolicyValidationFailed, "EligibilityRule"),
        (SECURITY_ADMIN, AuthenticationContextRequired, "c1"),
    ],
)
def test_end_user_policy_errors_from_the_emulator_are_translated(
    emu: object, client: GraphPimClient, role: RoleRef, kind: type[PimError], detail: str
) -> None:
    # Broker mode never self-activates; this sends PIM's end-user action to get its errors.
    settings = Settings.from_env(emu.env())  # type: ignore[attr-defined]
    http = build_http_client(settings)
    request_path = "/roleManagement/directory/roleAssignmentScheduleRequests"
    transport = GraphTransport(
        http, auth=BearerAuth(build_token_provider(settings, MsalHttpClient(http)))
    )
    body = {
        "action": "selfActivate",
        "principalId": _ada(client),
        "roleDefinitionId": role.role_definition_id,
        "directoryScopeId": "/",
        "justification": "needed",
        "scheduleInfo": {
            "startDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expiration": {"type": "AfterDuration", "duration": "PT1H"},
        },
    }

    with http:
        response = transport.request("POST", request_path, json=body, retry=Retry.CREATE)
    error = error_from_response(response, role=role)

    assert type(error) is kind
    if isinstance(error, PolicyValidationFailed):
        assert detail in error.failed_rules
    else:
        assert isinstance(error, AuthenticationContextRequired) and error.claims is not None
        assert json.loads(error.claims)["access_token"]["acrs"]["value"] == detail


def test_throttling_is_waited_out_as_graph_asks(
    client: GraphPimClient, emu: object, waits: Waits
) -> None:
    emu.faults.throttle_next(2, retry_after="1.5")  # type: ignore[attr-defined]

    assert client.resolve_user(ADA_MAIL) is not None
    assert waits == [pytest.approx(1.5), pytest.approx(1.5)]


def test_throttling_beyond_the_retries_is_reported(client: GraphPimClient, emu: object) -> None:
    emu.faults.throttle_next(10, retry_after="0.1")  # type: ignore[attr-defined]

    with pytest.raises(PimThrottled):
        client.resolve_user(ADA_MAIL)


def test_a_create_whose_response_is_lost_is_not_duplicated(
    client: GraphPimClient, emu: object
) -> None:
    ada = _ada(client)
    emu.faults.drop_response_of_next_create(1)  # type: ignore[attr-defined]

    result = client.activate(ActivationRequest(ada, SECURITY_READER, timedelta(hours=1), "Lost"))

    made = _requests_for(emu, ada, SECURITY_READER)
    assert len(made) == 1 and made[0]["id"] == result.graph_request_id
    assert len(emu.state.active_assignments(ada)) == 1  # type: ignore[attr-defined]


def test_a_create_answered_503_is_checked_then_sent_once_more(
    client: GraphPimClient, emu: object
) -> None:
    ada = _ada(client)
    emu.faults.fail_next(1, status=503)  # type: ignore[attr-defined]

    result = client.activate(ActivationRequest(ada, SECURITY_READER, timedelta(hours=1), "503"))

    assert result.is_granted
    assert len(_requests_for(emu, ada, SECURITY_READER)) == 1


def test_a_dropped_read_is_retried(client: GraphPimClient, emu: object) -> None:
    emu.faults.drop_next(1)  # type: ignore[attr-defined]

    assert client.resolve_user(ADA_MAIL) is not None


def test_a_wrong_client_secret_is_explained(emu: object) -> None:
    env = {**emu.env(), "AZURE_CLIENT_SECRET": "not-the-secret"}  # type: ignore[attr-defined]

    with build_pim_client(Settings.from_env(env)) as pim, pytest.raises(PimAuthError) as caught:
        pim.resolve_user(ADA_MAIL)

    assert "AZURE_CLIENT_SECRET" in caught.value.user_message
    assert "not-the-secret" not in str(caught.value)


def test_a_certificate_credential_works_end_to_end(tmp_path: Path) -> None:
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
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pem-pass"),
    )
    path = tmp_path / "pimbot.pem"
    path.write_bytes(key_pem + cert_pem)
    tenant = default_tenant()
    app = tenant.app.model_copy(
        update={"certificate_pem": cert_pem.decode(), "client_secret": None}
    )
    with GraphEmulator(tenant=tenant.model_copy(update={"app": app})) as running:
        env = {k: v for k, v in running.env().items() if k != "AZURE_CLIENT_SECRET"}
        env |= {
            "AZURE_CLIENT_CERTIFICATE_PATH": str(path),
            "AZURE_CLIENT_CERTIFICATE_PASSWORD": "pem-pass",
        }
        with build_pim_client(Settings.from_env(env)) as pim:
            assert pim.resolve_user(ADA_MAIL) is not None


def test_msals_http_trusts_the_configured_ca_bundle_not_the_environment(emu: object) -> None:
    settings = Settings.from_env(emu.env())  # type: ignore[attr-defined]
    discovery = (
        f"{settings.azure_authority_host}/{settings.azure_tenant_id}"
        "/v2.0/.well-known/openid-configuration"
    )
    without_bundle = settings.model_copy(update={"ca_bundle": None})

    with build_http_client(settings) as http:
        assert MsalHttpClient(http).get(discovery).status_code == 200
    with build_http_client(without_bundle) as http, pytest.raises(httpx.ConnectError):
        MsalHttpClient(http).get(discovery)


def test_users_by_email_finds_mail_or_upn_with_their_state(client: GraphPimClient) -> None:
    [alan] = client.users_by_email("ALAN.Turing@contoso.example")  # mail, any case
    assert alan.user_principal_name == "alan@contoso.example"
    assert alan.account_enabled is True and alan.is_guest is False
    [by_upn] = client.users_by_email("alan@contoso.example")
    assert by_upn.id == alan.id
    [marie] = client.users_by_email("marie@partner.example")
    assert marie.is_guest
    assert client.users_by_email("nobody@contoso.example") == []
    members = client.list_group_members(SECOPS)
    assert members and all(m.account_enabled for m in members)

"""A fresh emulator per test, reached over real HTTPS with a client that trusts only its CA."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stand_ins.graph_emulator import GraphEmulator, default_tenant

ADA = "a04d60fe-235d-4247-b13c-0bc1b19bc3e4"
GRACE = "5846ce5e-e5bf-49f8-8732-e9c302694d9e"
ALAN = "df1790b4-cca9-4cb3-80f7-6c1595cf002e"
SECOPS_GROUP = "2b916cf0-efbc-4918-b604-875f5f93c352"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
CONDITIONAL_ACCESS_ADMIN = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_ADMIN = "194ae4cb-b126-40b2-bd5b-6091b380977d"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
REQUESTS = "/roleManagement/directory/roleAssignmentScheduleRequests"


@dataclass
class Graph:
    """Graph calls with one bearer token; returns httpx responses unchanged."""

    emulator: GraphEmulator
    client: httpx.Client
    token: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self._url(path), headers=self._headers(), **kwargs)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(self._url(path), headers=self._headers(), json=body)

    def as_token(self, token: str) -> Graph:
        return Graph(self.emulator, self.client, token)

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") else self.emulator.graph_url + path

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator(default_tenant()) as emu:
        yield emu


@pytest.fixture
def http(emulator: GraphEmulator) -> Iterator[httpx.Client]:
    # trust_env=False: no proxy or CA-bundle variables of this machine may get in the way.
    with httpx.Client(verify=emulator.client_ssl_context(), trust_env=False,
                      timeout=10) as client:
        yield client


@pytest.fixture
def app_token(emulator: GraphEmulator, http: httpx.Client) -> str:
    """A token from the real token endpoint with the demo app's secret."""
    env = emulator.env()
    response = http.post(
        f"{emulator.authority_host}/{env['AZURE_TENANT_ID']}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": env["AZURE_CLIENT_ID"],
              "client_secret": env["AZURE_CLIENT_SECRET"],
              "scope": "https://graph.microsoft.com/.default"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def graph(emulator: GraphEmulator, http: httpx.Client, app_token: str) -> Graph:
    return Graph(emulator, http, app_token)


def activation(action: str, principal: str, role: str, *, duration: str | None = "PT1H",
               justification: str | None = "incident 42", ticket: str | None = None,
               start: str | None = None) -> dict[str, Any]:
    """A roleAssignmentScheduleRequests body the way pimbot's client would send it."""
    body: dict[str, Any] = {"action": action, "principalId": principal,
                            "roleDefinitionId": role, "directoryScopeId": "/"}
    if justification is not None:
        body["justification"] = justification
    if ticket is not None:
        body["ticketInfo"] = {"ticketNumber": ticket, "ticketSystem": "Jira"}
    if duration is not None or start is not None:
        schedule: dict[str, Any] = {"expiration": {"type": "afterDuration", "duration": duration}
                                    if duration else {"type": "noExpiration"}}
        if start is not None:
            schedule["startDateTime"] = start
        body["scheduleInfo"] = schedule
    return body


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]

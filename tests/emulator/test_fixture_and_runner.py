"""Tenant fixtures are validated with clear errors; run_emulator prints a usable env block."""

from __future__ import annotations

import io
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from werkzeug.test import Client

from stand_ins.graph_emulator import (
    GraphEmulator,
    TenantFileError,
    default_tenant,
    load_tenant,
    run_emulator,
)
from stand_ins.graph_emulator.tenant import parse_tenant


def _demo_data() -> dict[str, Any]:
    return default_tenant().model_dump(mode="json")


def test_the_demo_tenant_round_trips_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(_demo_data()))
    assert load_tenant(path) == default_tenant()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["eligibilities"].append({"principal": "bob@x", "role": "Security Reader"}),
         "eligibilities[7]: no user or group 'bob@x'"),
        (lambda d: d["eligibilities"].append({"principal": "PIM Approvers",
                                               "role": "Security Reader"}),
         "group 'PIM Approvers' is not role-assignable"),
        (lambda d: d["assignments"].append({"principal": "ada@contoso.example",
                                             "role": "Astronaut"}),
         "assignments[2]: no role 'Astronaut'"),
        (lambda d: d["groups"][0]["members"].append("ghost@contoso.example"),
         "member 'ghost@contoso.example' is not a user of the tenant"),
        (lambda d: d["roles"][0]["activation"].update(maximum_duration="two hours"),
         "roles.0.activation.maximum_duration"),
        (lambda d: d["users"][0].update(id="not-a-guid"), "users.0.id"),
        (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_fixtures_name_the_problem(change: Any, message: str) -> None:
    data = _demo_data()
    change(data)
    with pytest.raises(TenantFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_tenant(data)


def test_an_unreadable_file_is_a_tenant_file_error(tmp_path: Path) -> None:
    with pytest.raises(TenantFileError, match="cannot read tenant file"):
        load_tenant(tmp_path / "missing.yaml")


def test_run_emulator_prints_an_environment_block_and_stops(tmp_path: Path) -> None:
    out, stop = io.StringIO(), threading.Event()
    ca_path = tmp_path / "ca" / "emulator-ca.pem"
    runner = threading.Thread(target=run_emulator,
                              kwargs={"port": 0, "ca_path": ca_path, "stop": stop, "out": out})
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while "PIMBOT_CA_BUNDLE" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        lines = [line for line in out.getvalue().splitlines() if line.startswith("export ")]
        env = dict(line.removeprefix("export ").split("=", 1) for line in lines)
        assert set(env) == {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                            "AZURE_AUTHORITY_HOST", "PIMBOT_GRAPH_URL", "PIMBOT_CA_BUNDLE"}
        assert env["PIMBOT_CA_BUNDLE"] == str(ca_path) and ca_path.exists()
        assert env["PIMBOT_GRAPH_URL"] == env["AZURE_AUTHORITY_HOST"] + "/v1.0"
        context = ssl.create_default_context(cafile=str(ca_path))
        with httpx.Client(verify=context, trust_env=False) as client:
            discovery = client.get(f"{env['AZURE_AUTHORITY_HOST']}/{env['AZURE_TENANT_ID']}"
                                   "/v2.0/.well-known/openid-configuration")
            assert discovery.status_code == 200
    finally:
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive()


def test_the_wsgi_app_is_usable_in_process() -> None:
    emulator = GraphEmulator()  # not started: no socket, no certificate
    client = Client(emulator.app)
    token = emulator.mint_token()
    response = client.get("/v1.0/users/ada@contoso.example",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json["@odata.context"] == "http://localhost/v1.0/$metadata#users/$entity"

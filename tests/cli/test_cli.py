"""The ``pimbot`` command as a person runs it: real processes, real output, exit codes."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    # Only what a person would set: no PIMBOT_* leaking in from the test run, no secrets.
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIMBOT_", "SLACK_", "AZURE_"))
    }
    return {**base, **extra}


def _pimbot(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = _pimbot("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "demo", "doctor", "db", "emulator", "audit", "link"):
        assert f"  {command}" in result.stdout


def test_bad_configuration_stops_start_up_naming_every_problem(tmp_path: Path) -> None:
    result = _pimbot(
        "run",
        cwd=tmp_path,
        PIMBOT_REMINDER_LEAD="soonish",
        PIMBOT_POLICY_FILE=str(tmp_path / "missing.yaml"),
        PIMBOT_COLOUR="blue",
        SLACK_BOT_TOKEN="xoxb-secret-value-123",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for words in ("PIMBOT_REMINDER_LEAD", "PIMBOT_COLOUR", "not a pimbot setting"):
        assert words in result.stderr
    assert "xoxb-secret-value-123" not in result.stderr + result.stdout


def test_missing_secrets_are_named(tmp_path: Path) -> None:
    result = _pimbot("run", cwd=tmp_path)
    assert result.returncode == 2
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
    ):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_policy_file_is_explained(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles:\n  Global Administrator:\n    quorum: zero\n    colour: red\n")
    result = _pimbot("db", "upgrade", cwd=tmp_path, PIMBOT_POLICY_FILE=str(policy))
    assert result.returncode == 0  # db upgrade does not need the policy
    result = _pimbot("doctor", cwd=tmp_path, PIMBOT_POLICY_FILE=str(policy))
    assert result.returncode != 0
    assert (
        "quorum" in result.stdout + result.stderr and "unknown key" in result.stdout + result.stderr
    )
    assert "Traceback" not in result.stderr


def test_db_upgrade_creates_the_default_sqlite_file_and_audit_reads_it(tmp_path: Path) -> None:
    result = _pimbot("db", "upgrade", cwd=tmp_path, PIMBOT_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "pimbot.db").is_file()
    linked = _pimbot(
        "link",
        "T0PIMBOT",
        "U0ADA",
        "a04d60fe-235d-4247-b13c-0bc1b19bc3e4",
        cwd=tmp_path,
        PIMBOT_DATA_DIR=str(tmp_path / "data"),
    )
    assert linked.returncode == 0, linked.stderr
    audit = _pimbot("audit", cwd=tmp_path, PIMBOT_DATA_DIR=str(tmp_path / "data"))
    assert "identity_linked" in audit.stdout
    verify = _pimbot("audit", "verify", cwd=tmp_path, PIMBOT_DATA_DIR=str(tmp_path / "data"))
    assert (verify.returncode, verify.stdout) == (0, "1 entry, chain intact\n"), verify.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_emulator_prints_a_ready_to_paste_environment(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "emulator",
            "--port",
            str(port),
            "--ca-file",
            str(tmp_path / "ca.pem"),
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while time.monotonic() < deadline and not any("PIMBOT_CA_BUNDLE" in x for x in lines):
            lines.append(process.stdout.readline())
        env = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in lines
            if line.startswith("export ")
        )
        for name in (
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_AUTHORITY_HOST",
            "PIMBOT_GRAPH_URL",
            "PIMBOT_CA_BUNDLE",
        ):
            assert name in env, lines
        discovery = httpx.get(
            f"{env['AZURE_AUTHORITY_HOST']}/{env['AZURE_TENANT_ID']}"
            "/v2.0/.well-known/openid-configuration",
            verify=ssl.create_default_context(cafile=env["PIMBOT_CA_BUNDLE"]),
        )
        assert discovery.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
def test_the_demo_runs_the_whole_story_and_says_so(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _pimbot("demo", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 60
    out = result.stdout
    for words in (
        "types `/pim request",
        "refused on the fields",
        "#pim-approvals",
        "Approve on her own request",
        "action=adminAssign",
        "reminder",
        "action=adminExtend",
        "action=adminRemove",
        "denied your request",
        "goes to the approvers first",
        "types `/pim connect`",
        "Connected as ada@contoso.example",
        "action=selfActivate as Ada Lovelace role=Global Administrator",
        "step-up link",
        "action=selfActivate as Ada Lovelace role=Security Administrator",
        "Removed 1 stored sign-in",
        "stage 1 of 2 of PIM's approval",
        "approval steps reviewed by: Grace Hopper, Alan Turing",
        "All 20 steps happened",
    ):
        assert words in out, words
    assert not list(tmp_path.iterdir())  # the demo leaves nothing behind

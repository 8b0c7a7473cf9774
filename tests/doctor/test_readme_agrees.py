"""The deployment guide in README.md names what the code reads and what doctor checks."""

from __future__ import annotations

import re
from pathlib import Path

from bot.app.doctor.graph import PROBES
from bot.app.doctor.slack import BOT_SCOPES
from bot.app.settings import ENV_NAMES
from tests.doctor.conftest import LEAST_PRIVILEGED

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _configuration_table() -> str:
    start = README.index("### 3. Configuration")
    return README[start : README.index("\n### ", start + 1)]


def test_every_setting_is_in_the_configuration_table_and_nothing_else() -> None:
    documented = set(re.findall(r"`((?:SLACK|AZURE|PIMBOT)_[A-Z_]+)`", _configuration_table()))
    assert documented == set(ENV_NAMES)


def test_the_permissions_and_scopes_doctor_checks_are_the_ones_documented() -> None:
    for name in (*LEAST_PRIVILEGED, *BOT_SCOPES, *(p.least for p in PROBES)):
        assert f"`{name}`" in README, name


def test_the_two_set_up_commands_are_still_there() -> None:
    assert "make demo    #" in README and "make test    #" in README

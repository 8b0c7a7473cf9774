"""``pimbot doctor`` run through its CLI against the Graph emulator (HTTPS) and the fake Slack
(HTTP), with an environment built from nothing but what each test gives it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.app.cli import main
from bot.app.settings import ENV_NAMES
from stand_ins.fake_slack import FakeSlack, Workspace, default_workspace
from stand_ins.graph_emulator import GraphEmulator, Tenant, default_tenant

APPROVALS = "C0APPROVALS"
PIM_APPROVERS_GROUP = "913c9c09-1f05-4595-8684-de5240f300e9"  # in the demo tenant
# What graph-pim.md §3 calls least privileged for broker mode (README lists the same).
LEAST_PRIVILEGED = (
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleEligibilitySchedule.Read.Directory",
    "RoleManagementPolicy.Read.Directory",
    "User.Read.All",
    "GroupMember.Read.All",
)
POLICY = f"""
defaults:
  approvals_channel: {APPROVALS}
roles:
  Global Administrator:
    approvers:
      - entra_group: {PIM_APPROVERS_GROUP}
  29232cdf-9323-42fd-ade2-1d097af3e4de:  # Exchange Administrator, by id
    quorum: 2
  security reader:
    approval: auto
"""


@dataclass
class Outcome:
    exit_code: int
    output: str
    lines: list[str] = field(default_factory=list)

    def line(self, start: str) -> str:
        """The one output line that starts with ``start``."""
        found = [line for line in self.lines if line.startswith(start)]
        assert len(found) == 1, f"expected one line starting {start!r}; got:\n{self.output}"
        return found[0]

    def failures(self) -> list[str]:
        return [line for line in self.lines if line.startswith("✗")]


@dataclass
class Doctor:
    """Starts the stand-ins a test asks for, then runs ``pimbot doctor`` with their env."""

    tmp_path: Path
    started: list[FakeSlack | GraphEmulator] = field(default_factory=list)
    emulator: GraphEmulator | None = None  # the latest run's

    def run(
        self,
        *,
        tenant: Tenant | None = None,
        workspace: Workspace | None = None,
        policy: str | None = POLICY,
        **env: str,
    ) -> Outcome:
        slack = FakeSlack(workspace or default_workspace()).start()
        self.started.append(slack)
        emulator = GraphEmulator(
            tenant or default_tenant(), ca_path=self.tmp_path / "ca.pem"
        ).start()
        self.started.append(emulator)
        self.emulator = emulator
        values = {
            **emulator.env(),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "PIMBOT_SLACK_API_URL": slack.api_url,
            "PIMBOT_APPROVALS_CHANNEL": APPROVALS,
            "PIMBOT_DATA_DIR": str(self.tmp_path),
        }
        if policy is not None:
            path = self.tmp_path / "policy.yaml"
            path.write_text(policy)
            values["PIMBOT_POLICY_FILE"] = str(path)
        values.update(env)
        return run_doctor(values)

    def close(self) -> None:
        for stand_in in reversed(self.started):
            stand_in.stop()


def run_doctor(values: dict[str, str]) -> Outcome:
    # Only the given settings: every pimbot variable of the machine running the tests is unset.
    ours = set(ENV_NAMES) | {n for n in os.environ if n.startswith("PIMBOT_")}
    env: dict[str, str | None] = dict.fromkeys(ours)
    env.update({name: value for name, value in values.items() if value})  # "" unsets
    result = CliRunner().invoke(main, ["doctor"], env=env, catch_exceptions=False)
    output = result.output
    return Outcome(result.exit_code, output, output.splitlines())


@pytest.fixture
def doctor(tmp_path: Path) -> Iterator[Doctor]:
    doctor = Doctor(tmp_path)
    yield doctor
    doctor.close()


@pytest.fixture
def tenant_with() -> Callable[..., Tenant]:
    """The demo tenant with the app granted exactly ``permissions``."""

    def build(*permissions: str) -> Tenant:
        tenant = default_tenant()
        app = tenant.app.model_copy(update={"permissions": tuple(permissions)})
        return tenant.model_copy(update={"app": app})

    return build

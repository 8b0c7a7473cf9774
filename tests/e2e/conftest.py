"""The whole bot on real sockets: signed Slack payloads POSTed to pimbot's HTTP endpoint,
the fake Slack Web API answering its calls, the Graph emulator over HTTPS, real storage."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.app.runtime import SlackRuntime, build_slack_runtime
from bot.app.settings import Settings
from handlers.http import BackgroundHttpServer
from stand_ins.fake_slack import FakeSlack, SlackMessage
from stand_ins.graph_emulator import GraphEmulator, Tenant, default_tenant
from stand_ins.slack_signing import SlackSender

APPROVALS = "C0APPROVALS"
ADA, GRACE, ALAN = "U0ADA", "U0GRACE", "U0ALAN"
PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"  # Privileged Role Administrator: needs approval
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"  # no approval, via a group
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"  # ticket required, 2h maximum
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"  # MFA required
ADA_ENTRA = "a04d60fe-235d-4247-b13c-0bc1b19bc3e4"


@dataclass
class Stack:
    slack: FakeSlack
    emu: GraphEmulator
    runtime: SlackRuntime
    sender: SlackSender
    events_url: str
    public_url: str = ""

    def wait(self, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        """Listeners run on threads after the ack: poll until ``condition`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or condition}")

    def channel_messages(self, channel: str) -> list[SlackMessage]:
        return self.slack.messages(channel)

    def dms(self, user: str) -> list[SlackMessage]:
        return self.slack.messages(self.slack.dm_channel(user))

    def dm_texts(self, user: str) -> list[str]:
        return [m.text for m in self.dms(user)]

    def card(self) -> SlackMessage:
        return self.wait(
            lambda: (self.channel_messages(APPROVALS) or [None])[-1], what="an approver card"
        )

    def open_form(self, user: str, text: str = "request") -> dict[str, Any]:
        before = len(self.slack.calls("views.update"))
        response = self.sender.command("/pim", text, user=user)
        assert response.status_code == 200, response.text
        self.slack.wait_for("views.update", before + 1, timeout=30)
        return self.slack.latest_view(user)

    def request(self, user: str, values: dict[str, Any], role_id: str) -> Any:
        view = self.open_form(user)
        if view["blocks"][0].get("element", {}).get("initial_option", {}).get("value") != role_id:
            before = len(self.slack.calls("views.update"))
            self.sender.select("pim-role-select", role_id, user=user, view=view)
            self.slack.wait_for("views.update", before + 1, timeout=30)
            view = self.slack.latest_view(user)
        return self.sender.submit_view(view, {"role": role_id, **values}, user=user)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def make_stack(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    opened: list[
        tuple[FakeSlack, GraphEmulator, SlackRuntime, BackgroundHttpServer, SlackSender]
    ] = []

    def build(
        policy: str | None = None,
        tenant: Tenant | None = None,
        *,
        delegated: bool = False,
        **env: str,
    ) -> Stack:
        """``delegated``: people sign in (PIMBOT_TOKEN_KEY, PIMBOT_PUBLIC_URL = this server)."""
        slack = FakeSlack().start()
        emu = GraphEmulator(tenant=tenant or default_tenant(), ca_path=tmp_path / "ca.pem").start()
        values = {
            **emu.env(),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "PIMBOT_SLACK_API_URL": slack.api_url,
            "PIMBOT_DATABASE_URL": database_url,
            "PIMBOT_APPROVALS_CHANNEL": APPROVALS,
        }
        port = 0
        if delegated:
            # The sign-in redirect names pimbot's own address: fix the port before building.
            port = free_port()
            values["PIMBOT_TOKEN_KEY"] = Fernet.generate_key().decode()
            values["PIMBOT_PUBLIC_URL"] = f"http://localhost:{port}"
        values.update(env)
        if policy is not None:
            path = tmp_path / "policy.yaml"
            path.write_text(policy)
            values["PIMBOT_POLICY_FILE"] = str(path)
        # pimbot and the emulator share a clock so tests can skip ahead in time.
        runtime = build_slack_runtime(Settings.from_env(values), clock=emu.clock)
        server = BackgroundHttpServer(runtime.http_app(), port=port).start()
        url = f"{server.url}/slack/events"
        sender = SlackSender(url, slack.signing_secret, slack)
        opened.append((slack, emu, runtime, server, sender))
        return Stack(slack, emu, runtime, sender, url, values.get("PIMBOT_PUBLIC_URL", server.url))

    yield build
    for slack, emu, runtime, server, sender in opened:
        sender.close()
        server.stop()
        runtime.close()
        emu.stop()
        slack.stop()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()

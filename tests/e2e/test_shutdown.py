"""SIGTERM stops a real ``pimbot run`` cleanly: work in flight finishes, leases are released,
the process exits 0 within a bound; nothing is lost and nothing is done twice.

The signal is sent from inside the Graph emulator's request handler, while the process waits
for that very answer (mid-sweep: a reminder's Graph call; mid-approval: the activation's), so
it always lands in the middle of the work. The answer then comes a moment later, as a slow
Graph would give it. Sweep leases are the default two minutes: the replacement process must
serve the released rows at once, which it could not if they were still held.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.domain.elevation import Person, RequestStatus
from stand_ins.fake_slack import TEAM_ID, FakeSlack
from stand_ins.graph_emulator import Faults, GraphEmulator, default_tenant
from stand_ins.graph_emulator.faults import FaultDecision
from stand_ins.slack_signing import SlackSender
from storage.tables import NotificationRow, RequestRow
from tests.e2e.conftest import ADA, APPROVALS, GRACE, PRA, Stack
from tests.e2e.test_restart import (
    REMINDER_TEXT,
    Db,
    Pimbot,
    _dms,
    _group,
    _process_env,
    _reminders_sent,
    _stand_ins,
    _wait,
)

pytestmark = pytest.mark.slow

EXIT_BOUND = 25.0  # seconds from the signal to the exit (the grace is 20 s; work takes ~1 s)
SLOW_ANSWER = 1.0  # how long the Graph answer the signal lands in takes


class Terminator:
    """Sends SIGTERM to an armed process once, from inside a stand-in's request handler,
    and lets that request carry on (slowly); records when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: subprocess.Popen[bytes] | None = None
        self._condition: Any = None
        self.sent_at: float | None = None

    def arm(self, target: subprocess.Popen[bytes], condition: Any) -> None:
        with self._lock:
            self._target, self._condition = target, condition

    def __call__(self) -> bool:
        with self._lock:
            if self._target is None or not self._condition():
                return False
            self._target.send_signal(signal.SIGTERM)
            self.sent_at = time.monotonic()
            self._target = self._condition = None
            return True


class TerminatingFaults(Faults):
    def __init__(self, terminator: Terminator) -> None:
        super().__init__()
        self.terminator = terminator

    def decide(self, request_number: int) -> FaultDecision:
        if self.terminator():
            return FaultDecision(latency=SLOW_ANSWER)
        return super().decide(request_number)


def _exits_cleanly(pimbot: Pimbot, terminator: Terminator) -> None:
    assert pimbot.process is not None
    deadline = time.monotonic() + 60
    while terminator.sent_at is None and time.monotonic() < deadline:
        pimbot.check_alive()
        time.sleep(0.05)
    assert terminator.sent_at is not None, "the signal was never sent\n" + pimbot.log()
    code = pimbot.process.wait(timeout=EXIT_BOUND + 10)
    took = time.monotonic() - terminator.sent_at
    assert code == 0, f"exit {code}\n{pimbot.log()}"
    assert took < EXIT_BOUND, took
    assert "stopped cleanly" in pimbot.log()


def _all_leases(db: Db) -> list[tuple[Any, ...]]:
    with db._engine.connect() as connection:
        rows = connection.execute(
            select(RequestRow.lease_owner, RequestRow.lease_until).where(
                RequestRow.lease_owner.is_not(None) | RequestRow.lease_until.is_not(None)
            )
        ).all()
        notes = connection.execute(
            select(NotificationRow.lease_owner).where(NotificationRow.lease_owner.is_not(None))
        ).all()
    return [tuple(r) for r in [*rows, *notes]]


def test_sigterm_mid_sweep_finishes_the_row_releases_the_rest_and_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    people = _group("RS", 12, "reminder")
    now = datetime.now(UTC)
    slack, plain_emu, _, _ = _stand_ins(people, now, tmp_path)
    terminator = Terminator()
    emu = GraphEmulator(
        tenant=plain_emu.tenant, ca_path=tmp_path / "ca2.pem", faults=TerminatingFaults(terminator)
    )
    db = Db(database_url)
    processes: list[Pimbot] = []
    with slack, emu:
        try:
            env = _process_env(slack, emu, db.url, tmp_path)
            seeded = db.seed(people, datetime.now(UTC))
            first = Pimbot(env, tmp_path / "pimbot-1.log").spawn()
            processes.append(first)
            assert first.process is not None
            terminator.arm(first.process, lambda: _reminders_sent(slack) >= 3)
            _exits_cleanly(first, terminator)

            # The reminder in hand was finished: every reminder sent is recorded, once.
            sent = _reminders_sent(slack)
            stored = db.load(seeded)
            done = [p for p in seeded if stored[p.request_id].timers.reminded_at is not None]
            assert len(done) >= 3 and len(done) == sent, (len(done), sent)
            assert all(len(_dms(slack, p)) == 1 for p in done)
            assert len(done) < len(seeded), "the sweep finished before the signal: too slow"
            assert _all_leases(db) == []  # released, not left to run out

            # A replacement serves the rest at once (their two-minute leases were let go).
            second = Pimbot(env, tmp_path / "pimbot-2.log")
            processes.append(second)
            second.start()
            _wait(lambda: db.handled(seeded), 30, "the released reminders", second)
            time.sleep(2)  # a few more sweeps: anything sent twice would show now
            for p in seeded:
                texts = [str(c.args.get("text", "")) for c in _dms(slack, p)]
                assert len(texts) == 1 and REMINDER_TEXT in texts[0], (p, texts)
        finally:
            for pimbot in processes:
                pimbot.kill()
            db.close()


def test_sigterm_mid_approval_lets_the_activation_finish_and_exits_0(
    database_url: str, tmp_path: Path
) -> None:
    terminator = Terminator()
    slack = FakeSlack()
    emu = GraphEmulator(
        tenant=default_tenant(), ca_path=tmp_path / "ca.pem", faults=TerminatingFaults(terminator)
    )
    db = Db(database_url)
    pimbot: Pimbot | None = None
    with slack, emu:
        try:
            env = {
                **_process_env(slack, emu, db.url, tmp_path),
                "PIMBOT_APPROVALS_CHANNEL": APPROVALS,
            }
            pimbot = Pimbot(env, tmp_path / "pimbot.log").start()
            assert pimbot.process is not None
            with SlackSender(
                f"http://127.0.0.1:{pimbot.port}/slack/events", slack.signing_secret, slack
            ) as sender:
                _request(sender, slack)
                card = _wait_for(lambda: (slack.messages(APPROVALS) or [None])[-1], "the card")
                terminator.arm(pimbot.process, lambda: True)  # the approval's first Graph call
                assert sender.click("pim-approve", user=GRACE, message=card).status_code == 200
                _exits_cleanly(pimbot, terminator)

            activations = [
                r
                for r in emu.state.requests
                if r["roleDefinitionId"] == PRA and r["action"].lower() == "adminassign"
            ]
            assert len(activations) == 1
            active = [m for m in slack.messages(slack.dm_channel(ADA)) if "active until" in m.text]
            assert len(active) == 1
            with db.uow() as uow:
                [request] = uow.requests.list_for_requester(_ada(), limit=5)
            assert request.status is RequestStatus.ACTIVE
            assert _all_leases(db) == []
            with db._engine.connect() as connection:
                undelivered = connection.execute(
                    select(NotificationRow.id).where(NotificationRow.delivered_at.is_(None))
                ).all()
            assert undelivered == []  # nothing left for a restart to say again
        finally:
            if pimbot is not None:
                pimbot.kill()
            db.close()


def _ada() -> Person:
    return Person(TEAM_ID, ADA, None, None)


def _wait_for(condition: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _request(sender: SlackSender, slack: FakeSlack) -> None:
    before = len(slack.calls("views.update"))
    assert sender.command("/pim", "request", user=ADA).status_code == 200
    slack.wait_for("views.update", before + 1, timeout=30)
    view = slack.latest_view(ADA)
    if view["blocks"][0].get("element", {}).get("initial_option", {}).get("value") != PRA:
        before = len(slack.calls("views.update"))
        sender.select("pim-role-select", PRA, user=ADA, view=view)
        slack.wait_for("views.update", before + 1, timeout=30)
        view = slack.latest_view(ADA)
    values = {"role": PRA, "duration": "PT1H", "reason": "Rotate the emergency access keys"}
    assert sender.submit_view(view, values, user=ADA).status_code == 200


def test_the_sweep_lease_is_a_setting(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(PIMBOT_SWEEP_LEASE="30s", PIMBOT_SHUTDOWN_GRACE="5s")
    assert stack.runtime.sweeper.lease == timedelta(seconds=30)
    assert stack.runtime.settings.shutdown_grace == timedelta(seconds=5)


def test_a_port_in_use_is_a_clear_error(database_url: str, tmp_path: Path) -> None:
    slack = FakeSlack()
    emu = GraphEmulator(tenant=default_tenant(), ca_path=tmp_path / "ca.pem")
    db = Db(database_url)
    with slack, emu, socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            env = {**_process_env(slack, emu, db.url, tmp_path), "PIMBOT_HOST": "127.0.0.1"}
            pimbot = Pimbot(env, tmp_path / "pimbot.log", port=taken.getsockname()[1]).spawn()
            assert pimbot.process is not None
            assert pimbot.process.wait(timeout=60) == 2
            assert "cannot listen on 127.0.0.1" in pimbot.log()
        finally:
            db.close()

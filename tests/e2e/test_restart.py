"""Timers survive a crash: a real ``pimbot run`` process is SIGKILLed mid-sweep and restarted.

The process talks to a FakeSlack and a Graph emulator running in this test process and to the
test's database (SQLite file or a PostgreSQL schema). Due work is seeded straight into the
database; the emulator's tenant holds the matching PIM assignments: time-bound and active for
the reminders (so the reminder's Graph check passes), already ended for the expiries.

Where the kill lands is not left to chance: the emulator's fault hook kills the process while
one of its Graph requests is unanswered, right after the K-th reminder DM. A reminder's Graph
calls all come before it is sent, so the kill is outside the send-then-record window by
construction (a kill inside it repeats that one reminder; see ``bot/use_cases/timers.py``). At that
moment the killed process has sent and recorded exactly K reminders and holds a lease
(``PIMBOT_SWEEP_LEASE``, 30 s here; 2 minutes by default) on every other due reminder. While
nothing runs, more reminders and expiries come due. The restarted process must serve those at once,
leave the dead process's claims alone until their lease ends, then serve them: every reminder
and every "expired" DM exactly once. The test waits for the lease like a replacement replica
in production would, so it takes a little over the lease per backend.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.app.scheduler import REDELIVER_AFTER
from bot.app.settings import normalize_database_url
from bot.domain.elevation import ElevationRequest, Person, RequestStatus, RoleRef
from stand_ins.fake_slack import FakeSlack, SlackCall
from stand_ins.graph_emulator import Faults, GraphEmulator, Tenant, default_tenant
from stand_ins.graph_emulator.faults import FaultDecision
from storage.database import make_engine, make_session_factory
from storage.tables import RequestRow
from storage.unit_of_work import SqlUnitOfWork

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECURITY_READER = RoleRef("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader")
TEAM = "T0PIMBOT"
_NAMESPACE = uuid.UUID("0b7c1f32-5d0e-4d3a-9a51-7a3f2d6c8e10")

REMINDERS_AT_START = 30  # due when the first process starts
EXPIRIES_AT_START = 10
REMINDERS_WHILE_DOWN = 5  # came due while no process was running
EXPIRIES_WHILE_DOWN = 5
KILL_AFTER_REMINDERS = 10  # the first process is killed after this many reminder DMs

REMINDER_TEXT = "ends at"  # handlers/blocks/dms.py: ":alarm_clock: <role> ends at ..."
EXPIRED_TEXT = "has expired"


@dataclass(frozen=True)
class Seeded:
    """One seeded elevation: its Slack user gets exactly one DM (a reminder or "expired")."""

    slack_user: str
    entra_id: str
    kind: str  # "reminder" | "expiry"
    request_id: str = ""


def _person(label: str, kind: str) -> Seeded:
    return Seeded(f"U0{label}", str(uuid.uuid5(_NAMESPACE, label)), kind)


def _group(prefix: str, count: int, kind: str) -> list[Seeded]:
    return [_person(f"{prefix}{i:03d}", kind) for i in range(count)]


# --- the stand-ins ------------------------------------------------------------------------------


def _tenant(people: list[Seeded], now: datetime) -> Tenant:
    """The demo tenant plus one user per seeded elevation and its Security Reader assignment:
    active until an hour from now for a reminder, ended a minute ago for an expiry."""
    base = default_tenant().model_dump()
    users = [
        {
            "id": p.entra_id,
            "user_principal_name": f"{p.slack_user.lower()}@contoso.example",
            "display_name": p.slack_user,
        }
        for p in people
    ]
    assignments = [
        {
            "principal": p.entra_id,
            "role": SECURITY_READER.role_definition_id,
            "start": now - timedelta(hours=2),
            "end": now + timedelta(hours=1) if p.kind == "reminder" else now - timedelta(minutes=1),
        }
        for p in people
    ]
    return Tenant.model_validate(
        {
            **base,
            "users": [*base["users"], *users],
            "assignments": [*base["assignments"], *assignments],
        }
    )


class Killer:
    """SIGKILLs an armed pimbot process from inside a stand-in's request handler, so the
    process dies while that request of its is unanswered; fires once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: subprocess.Popen[bytes] | None = None
        self._condition: Callable[..., bool] | None = None
        self.fired = threading.Event()

    def arm(self, target: subprocess.Popen[bytes], condition: Callable[..., bool]) -> None:
        with self._lock:
            self._target, self._condition = target, condition

    def __call__(self, *context: Any) -> bool:
        with self._lock:
            if self._target is None or self._condition is None or not self._condition(*context):
                return False
            # Announce first: the test thread polls for the process's death as a failure, and
            # the process cannot move on while this very request of its waits for an answer.
            self.fired.set()
            self._target.send_signal(signal.SIGKILL)
            self._target.wait(timeout=30)
            self._target = self._condition = None
            return True


class KillingFaults(Faults):
    """Emulator faults that consult a Killer first; ``decide`` runs for every Graph request
    before the emulator builds its answer."""

    def __init__(self, killer: Killer) -> None:
        super().__init__()
        self.killer = killer

    def decide(self, request_number: int) -> FaultDecision:
        self.killer()
        return super().decide(request_number)


class KillingSlack(FakeSlack):
    """FakeSlack that consults a Killer with (method, args) before answering a call; a call
    that killed its caller is neither answered nor recorded (it never reached Slack)."""

    def __init__(self, killer: Killer) -> None:
        super().__init__()
        self.killer = killer

    def handle_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        if self.killer(method, args):
            return 200, {}, {"ok": False, "error": "fatal_error"}
        return super().handle_api(method, args, token)


# --- the pimbot process -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pimbot:
    """``python -m bot run`` in HTTP mode; its output goes to a log file."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Pimbot:
        return self.spawn().wait_healthy()

    def spawn(self) -> Pimbot:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--port", str(self.port)],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_healthy(self) -> Pimbot:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"pimbot did not become healthy within 60 s\n{self.log()}")

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"pimbot exited with {self.process.returncode}\n{self.log()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def processes() -> Iterator[list[Pimbot]]:
    started: list[Pimbot] = []
    yield started
    for pimbot in started:
        pimbot.kill()


def _process_env(
    slack: FakeSlack, emu: GraphEmulator, database_url: str, data_dir: Path
) -> dict[str, str]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIMBOT_", "SLACK_", "AZURE_"))
    }
    return {
        **inherited,
        **emu.env(),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "PIMBOT_SLACK_API_URL": slack.api_url,
        "PIMBOT_DATABASE_URL": database_url,
        "PIMBOT_DATA_DIR": str(data_dir),
        "PIMBOT_SWEEP_INTERVAL": "1s",
        # Long enough to outlast a restart on a busy machine, short enough not to wait out
        # production's two minutes.
        "PIMBOT_SWEEP_LEASE": "30s",
        "PIMBOT_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
    }


# --- the database -------------------------------------------------------------------------------


class Db:
    """The test's own view of pimbot's database (its own engine, closed at the end)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = make_engine(normalize_database_url(url))
        self._sessions = make_session_factory(self._engine)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions)

    def close(self) -> None:
        self._engine.dispose()

    def seed(self, people: list[Seeded], now: datetime) -> list[Seeded]:
        """Active elevations whose reminder (or end) is due now, as pimbot itself stores them."""
        seeded = []
        with self.uow() as uow:
            for p in people:
                started = now - timedelta(minutes=55)
                ends = (
                    now + timedelta(hours=1) if p.kind == "reminder" else now - timedelta(minutes=1)
                )
                request = ElevationRequest.submit(
                    requester=Person(TEAM, p.slack_user, p.entra_id, p.slack_user),
                    role=SECURITY_READER,
                    duration=ends - started,
                    reason="seeded by test_restart",
                    at=started,
                )
                request.auto_approve(actor="pimbot", at=started, why="no approval needed")
                request.mark_active(
                    starts_at=started,
                    ends_at=ends,
                    graph_request_id=None,
                    at=started,
                    remind_at=now - timedelta(seconds=30) if p.kind == "reminder" else None,
                )
                request.new_events.clear()  # seeded as if told long ago: nothing owed to Slack
                uow.requests.add(request)
                seeded.append(Seeded(p.slack_user, p.entra_id, p.kind, request.id))
            uow.commit()
        return seeded

    def load(self, people: list[Seeded]) -> dict[str, ElevationRequest]:
        with self.uow() as uow:
            found = {p.request_id: uow.requests.get(p.request_id) for p in people}
        assert all(found.values())
        return found  # type: ignore[return-value]

    def leases(self, people: list[Seeded]) -> dict[str, tuple[str | None, datetime | None]]:
        """Who holds each row's sweep lease, and until when (storage columns)."""
        columns = (RequestRow.id, RequestRow.lease_owner, RequestRow.lease_until)
        ids = [p.request_id for p in people]
        with self._engine.connect() as connection:
            rows = connection.execute(select(*columns).where(RequestRow.id.in_(ids))).all()
        return {row.id: (row.lease_owner, row.lease_until) for row in rows}

    def handled(self, people: list[Seeded]) -> bool:
        requests = self.load(people).values()
        return all(
            r.timers.reminded_at is not None or r.status is RequestStatus.EXPIRED for r in requests
        )


# --- what Slack saw -----------------------------------------------------------------------------


def _dms(slack: FakeSlack, person: Seeded) -> list[SlackCall]:
    """Successful chat.postMessage calls addressed to ``person`` (pimbot DMs by user id)."""
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c.ok and c.args.get("channel") == person.slack_user
    ]


def _reminders_sent(slack: FakeSlack) -> int:
    return sum(
        1
        for c in slack.calls("chat.postMessage")
        if c.ok and REMINDER_TEXT in str(c.args.get("text", ""))
    )


def _wait(condition: Callable[[], Any], timeout: float, what: str, pimbot: Pimbot) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        pimbot.check_alive()
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{pimbot.log()}")


def _stand_ins(
    people: list[Seeded], now: datetime, tmp_path: Path
) -> tuple[KillingSlack, GraphEmulator, Killer, Killer]:
    """FakeSlack and the emulator, each able to kill pimbot mid-call (``arm`` the killer)."""
    slack_killer, graph_killer = Killer(), Killer()
    slack = KillingSlack(slack_killer)
    for p in people:
        slack.add_user(p.slack_user, p.slack_user.lower(), email=f"{p.slack_user.lower()}@x.test")
    emu = GraphEmulator(
        tenant=_tenant(people, now),
        ca_path=tmp_path / "ca.pem",
        faults=KillingFaults(graph_killer),
    )
    return slack, emu, slack_killer, graph_killer


# --- the tests ----------------------------------------------------------------------------------


def test_sigkill_mid_sweep_then_restart_delivers_every_timer_exactly_once(
    database_url: str, tmp_path: Path, processes: list[Pimbot]
) -> None:
    now = datetime.now(UTC)
    at_start = _group("RA", REMINDERS_AT_START, "reminder") + _group(
        "EA", EXPIRIES_AT_START, "expiry"
    )
    while_down = _group("RB", REMINDERS_WHILE_DOWN, "reminder") + _group(
        "EB", EXPIRIES_WHILE_DOWN, "expiry"
    )
    slack, emu, _, graph_killer = _stand_ins(at_start + while_down, now, tmp_path)
    db = Db(database_url)
    with slack, emu:
        try:
            _run_scenario(slack, emu, graph_killer, db, at_start, while_down, tmp_path, processes)
        finally:
            for pimbot in processes:
                pimbot.kill()
            db.close()


def _run_scenario(
    slack: FakeSlack,
    emu: GraphEmulator,
    killer: Killer,
    db: Db,
    at_start_people: list[Seeded],
    while_down_people: list[Seeded],
    tmp_path: Path,
    processes: list[Pimbot],
) -> None:
    env = _process_env(slack, emu, db.url, tmp_path)
    at_start = db.seed(at_start_people, datetime.now(UTC))
    reminders = [p for p in at_start if p.kind == "reminder"]

    # 1. The first process sweeps; it is killed while asking Graph about reminder K+1.
    first = Pimbot(env, tmp_path / "pimbot-1.log").spawn()
    processes.append(first)
    assert first.process is not None
    killer.arm(first.process, lambda: _reminders_sent(slack) >= KILL_AFTER_REMINDERS)
    first.wait_healthy()
    _wait(killer.fired.is_set, 90, f"{KILL_AFTER_REMINDERS} reminders, then the kill", first)
    # The killer announces before it kills: wait for the process to be gone.
    assert first.process.wait(timeout=30) == -signal.SIGKILL

    # Killed mid-way: K reminders sent and recorded, the rest claimed by the dead process.
    assert _reminders_sent(slack) == KILL_AFTER_REMINDERS
    stored = db.load(reminders)
    done = [p for p in reminders if stored[p.request_id].timers.reminded_at is not None]
    pending = [p for p in reminders if stored[p.request_id].timers.reminded_at is None]
    assert len(done) == KILL_AFTER_REMINDERS  # nothing sent-but-unrecorded
    assert all(len(_dms(slack, p)) == 1 for p in done)
    assert all(_dms(slack, p) == [] for p in pending)
    leases = db.leases(pending)
    owners = {owner for owner, _ in leases.values()}
    assert len(owners) == 1 and None not in owners, owners
    lease_ends = [until for _, until in leases.values() if until is not None]
    assert len(lease_ends) == len(pending)
    lease_end = min(lease_ends)
    assert lease_end > datetime.now(UTC), "the lease ran out before the restart: machine too slow"

    # 2. While nothing runs, more elevations reach their reminder or their end.
    while_down = db.seed(while_down_people, datetime.now(UTC))

    # 3. A new process: it serves what nobody holds at once, and the dead process's claims
    #    only when their lease runs out.
    second = Pimbot(env, tmp_path / "pimbot-2.log")
    processes.append(second)
    second.start()
    _wait(lambda: db.handled(while_down), 60, "the work that came due while down", second)
    _wait(
        lambda: db.handled(reminders),
        (lease_end - datetime.now(UTC)).total_seconds() + 60,
        "the dead process's leased reminders",
        second,
    )
    time.sleep(3)  # a few more sweeps: anything sent twice would show now
    second.check_alive()

    # Exactly once, nothing lost.
    everyone = at_start + while_down
    final = db.load(everyone)
    for p in everyone:
        request = final[p.request_id]
        texts = [str(c.args.get("text", "")) for c in _dms(slack, p)]
        if p.kind == "reminder":
            assert request.status is RequestStatus.ACTIVE, p
            assert request.timers.reminded_at is not None, p
            assert len(texts) == 1 and REMINDER_TEXT in texts[0], (p, texts)
        else:
            assert request.status is RequestStatus.EXPIRED, p
            assert len(texts) == 1 and EXPIRED_TEXT in texts[0], (p, texts)
    assert _reminders_sent(slack) == len(reminders) + REMINDERS_WHILE_DOWN
    assert all(owner is None for owner, _ in db.leases(everyone).values())  # all released

    # The dead process's claims were honoured until the lease ran out, and not a moment
    # longer than needed; work it never claimed did not wait for it.
    takeover = [c.at for p in pending for c in _dms(slack, p)]
    assert min(takeover) >= lease_end.timestamp()
    unclaimed = [c.at for p in while_down for c in _dms(slack, p)]
    assert max(unclaimed) < lease_end.timestamp()


def test_a_crash_between_recording_an_expiry_and_telling_the_requester_loses_no_dm(
    database_url: str, tmp_path: Path, processes: list[Pimbot]
) -> None:
    """Killed exactly after ``expired`` is committed and before the DM reaches Slack, the
    restarted process must still tell the requester, exactly once: the DM waits in the
    outbox, written in the same transaction as the expiry, and the sweep delivers it once
    it is older than REDELIVER_AFTER."""
    [person] = _group("EX", 1, "expiry")
    slack, emu, slack_killer, _ = _stand_ins([person], datetime.now(UTC), tmp_path)
    db = Db(database_url)
    with slack, emu:
        try:
            env = _process_env(slack, emu, db.url, tmp_path)
            [seeded] = db.seed([person], datetime.now(UTC))
            first = Pimbot(env, tmp_path / "pimbot-1.log").spawn()
            processes.append(first)
            assert first.process is not None

            def expired_dm(method: str, args: dict[str, Any]) -> bool:
                return method == "chat.postMessage" and EXPIRED_TEXT in str(args.get("text"))

            slack_killer.arm(first.process, expired_dm)
            _wait(slack_killer.fired.is_set, 60, "the expired DM, then the kill", first)
            # The kill landed between the two steps: recorded, not yet told.
            assert db.load([seeded])[seeded.request_id].status is RequestStatus.EXPIRED
            assert _dms(slack, seeded) == []

            second = Pimbot(env, tmp_path / "pimbot-2.log")
            processes.append(second)
            second.start()
            # Redelivery waits REDELIVER_AFTER from the notification's creation, then one sweep.
            deadline = time.monotonic() + REDELIVER_AFTER.total_seconds() + 30
            while time.monotonic() < deadline and not _dms(slack, seeded):
                second.check_alive()
                time.sleep(0.2)
            time.sleep(3)  # a few more sweeps: a second delivery would show up now
            texts = [str(c.args.get("text")) for c in _dms(slack, seeded)]
            assert len(texts) == 1 and EXPIRED_TEXT in texts[0], texts
        finally:
            for pimbot in processes:
                pimbot.kill()
            db.close()

"""What users feel, measured from the outside: pimbot in its own process against a baseline.

pimbot runs as ``python -m bot run --port N`` (HTTP mode), on SQLite and on PostgreSQL, against
the Graph emulator (latency injected on every Graph request) and the fake Slack, both hosted in
this process. Signed Slack payloads come from a load generator in a third process
(``benchmarks.load``). Every row is a ratio against a baseline measured in the same run:

* form opens / form filled after ``/pim request``: the ``views.open`` and the ``views.update``
  as the fake Slack recorded them, against one Graph round trip at the same latency;
* ack p99 of N concurrent ``/pim status`` and of N concurrent Approve clicks, against a bare
  Bolt app (``benchmarks.bare_bolt``) on the same server kind, in its own process, same
  signing secret, same payloads;
* N approvals at once until PIM shows every activation, against one approval alone;
* per approval (the burst, click until every message about it settled): SQL statements and
  transactions (PostgreSQL, from the server's statement log of a database made for the run),
  Slack calls (``FakeSlack.calls()``), Graph calls (the emulator's requests), pimbot CPU
  seconds (``/proc/<pid>/stat``);
* idle RSS of pimbot against the bare Bolt process (``/proc/<pid>/status``).

    .venv/bin/python -m benchmarks.suite             # full: 50 concurrent, burst of 100
    .venv/bin/python -m benchmarks.suite --quick     # smoke run, under 2 minutes
    .venv/bin/python -m benchmarks.suite --backends sqlite --latency 1.0

Everything it starts (processes, the stand-ins, the PostgreSQL database) it stops and drops,
also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text

from bot.app.settings import normalize_database_url
from bot.domain.elevation import ElevationRequest, Person, RoleRef
from stand_ins.fake_slack import FakeSlack, SlackMessage
from stand_ins.graph_emulator import GraphEmulator, Tenant, default_tenant
from stand_ins.slack_signing import SignedRequest, SlackSender, find_button
from storage.database import make_engine, make_session_factory, upgrade
from storage.unit_of_work import SqlUnitOfWork

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_POSTGRES_LOG = "/var/log/postgresql/postgresql-15-main.log"
PRA = RoleRef("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator")
APPROVALS = "C0APPROVALS"
APPROVER = "U0GRACE"  # in the PIM Approvers group of the demo tenant
ADA = "U0ADA"
SECOPS = "SecOps Responders"
SETTLE = 1.0  # seconds without a Slack or Graph call: the work after a click is done


# --- small pure helpers (tested in benchmarks/test_suite.py) ------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100): with 50 samples, p99 is the slowest."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Row:
    what: str
    pimbot: str
    baseline: str
    ratio: str


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×" if baseline > 0 else "—"


def markdown_table(rows: Sequence[Row]) -> str:
    header = ("what", "pimbot", "baseline in the same run", "ratio")
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = (row.what, row.pimbot, row.baseline, row.ratio)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def count_statements(log_lines: Sequence[str], database: str) -> Counter[str]:
    """Statements a database's sessions sent, by kind, from PostgreSQL's ``log_statement``
    lines (prefix ``%m [%p] %q%u@%d``); BEGIN/COMMIT/ROLLBACK are counted as such, the
    pool's ``SELECT 1`` pings apart from other SELECTs."""
    pattern = re.compile(rf"\S+@{re.escape(database)} LOG:  (?:statement|execute [^:]*): (.*)$")
    kinds: Counter[str] = Counter()
    for line in log_lines:
        match = pattern.search(line)
        if not match:
            continue
        statement = match.group(1).strip()
        head = statement.split(None, 1)[0].upper() if statement else ""
        if statement.upper().rstrip("; ") in ("", "SELECT 1"):
            head = "ping"  # the pool's pre-ping on checkout (psycopg sends ";")
        kinds[head] += 1
    return kinds


def describe_counts(counts: Counter[str], per: int) -> str:
    parts = [
        f"{n / per:.1f} {name}" if n >= per / 10 else f"{n / per:.2f} {name}"
        for name, n in counts.most_common()
    ]
    return ", ".join(parts)


# --- processes we start -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: SIGTERM when the suite dies, even by SIGKILL (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Child:
    """A server process of ours on a free port, logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.argv, "--port", str(self.port)],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).is_success:
                    return self
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not become healthy within 60 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the process (all its threads) so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def fire(url: str, requests: Sequence[SignedRequest]) -> tuple[float, list[float]]:
    """POST every request at once from the load-generator process: (epoch at release,
    seconds to each answer). Exits if any answer is not 200."""
    job = {"url": url, "requests": [{"body": r.body, "headers": r.headers} for r in requests]}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load"],
        input=json.dumps(job).encode(),
        capture_output=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"load generator failed:\n{done.stderr.decode(errors='replace')}")
    result = json.loads(done.stdout)
    bad = [s for s in result["statuses"] if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} of {len(requests)} requests to {url} failed: {bad[:5]}")
    return float(result["started_at"]), [float(s) for s in result["seconds"]]


# --- the stand-ins ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requester:
    slack_user: str
    upn: str
    entra_id: str


def make_people(prefix: str, count: int) -> list[Requester]:
    return [
        Requester(f"U0{prefix}{i:04d}", f"{prefix.lower()}{i}@contoso.example", str(uuid.uuid4()))
        for i in range(count)
    ]


def make_tenant(requesters: list[Requester], form_people: list[Requester]) -> Tenant:
    """The demo tenant plus requesters eligible for Privileged Role Administrator, and form
    users shaped like Ada (her direct eligibilities, and Security Reader through SecOps)."""
    base = default_tenant().model_dump()
    ada_roles = [
        e["role"] for e in base["eligibilities"] if e["principal"] == "ada@contoso.example"
    ]
    users = [
        {
            "id": p.entra_id,
            "user_principal_name": p.upn,
            "display_name": p.slack_user,
            "mail": p.upn,
        }
        for p in [*requesters, *form_people]
    ]
    eligible = [{"principal": p.entra_id, "role": PRA.role_definition_id} for p in requesters]
    eligible += [{"principal": p.upn, "role": role} for p in form_people for role in ada_roles]
    groups = [
        {**g, "members": (*g["members"], *(p.upn for p in form_people))}
        if g["display_name"] == SECOPS
        else g
        for g in base["groups"]
    ]
    return Tenant.model_validate(
        {
            **base,
            # The demo tenant pages every 2 items to exercise paging; that would add round
            # trips no real tenant costs. Microsoft documents no default page size for the
            # PIM lists; 100 keeps every list here on one page, as for a normal person.
            "page_size": 100,
            "users": [*base["users"], *users],
            "groups": groups,
            "eligibilities": [*base["eligibilities"], *eligible],
        }
    )


class GraphLog:
    """Every Graph request the emulator answered (method and path), in order."""

    def __init__(self, emu: GraphEmulator) -> None:
        self._lock = threading.Lock()
        self.calls: list[str] = []
        graph = emu.app.graph
        handle = graph.handle

        def logged(request: Any, base_url: str, path: str, version: str) -> Any:
            with self._lock:
                self.calls.append(f"{request.method} {_shape(path)}")
            return handle(request, base_url, path, version)

        graph.handle = logged  # type: ignore[method-assign,assignment]

    def __len__(self) -> int:
        with self._lock:
            return len(self.calls)

    def since(self, index: int) -> list[str]:
        with self._lock:
            return self.calls[index:]


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[^/]+@[^/]+")


def _shape(path: str) -> str:
    """A Graph path with ids replaced, so calls group by endpoint."""
    return _ID.sub("{id}", path.split("?", 1)[0])


# --- the database -------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    backend: str
    url: str  # what pimbot gets as PIMBOT_DATABASE_URL
    name: str = ""  # PostgreSQL: the database made for this run
    log_path: Path | None = None  # PostgreSQL: the server log holding its statements
    log_problem: str = ""
    drop: Callable[[], None] = lambda: None

    def log_offset(self) -> int:
        if self.log_path is None:
            return 0
        return self.log_path.stat().st_size

    def statements_since(self, offset: int) -> Counter[str]:
        assert self.log_path is not None
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        return count_statements(lines, self.name)


@contextlib.contextmanager
def bench_database(
    backend: str, workdir: Path, postgres_url: str, postgres_log: str
) -> Iterator[BenchDatabase]:
    """A migrated, empty database for one run; PostgreSQL gets a database of its own
    (``pimbot_bench_<random>``, every statement logged), dropped at the end."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir}/pimbot-bench.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield BenchDatabase(backend, url, log_problem="not measured on SQLite (no statement log)")
        return
    name = f"pimbot_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(normalize_database_url(postgres_url)).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        # Only this database's sessions log their statements: nobody else's log grows.
        with admin.connect() as connection:
            connection.execute(text(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'"))
        url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(normalize_database_url(url))
        upgrade(engine)
        engine.dispose()
        log_path: Path | None = Path(postgres_log)
        problem = ""
        if not os.access(postgres_log, os.R_OK):
            log_path, problem = None, f"not measured (server log {postgres_log} not readable)"
        yield BenchDatabase(backend, url, name, log_path, problem)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_pending(database_url: str, people: list[Requester]) -> list[str]:
    """Pending requests for Privileged Role Administrator, submitted two minutes ago: their
    notifications (the approver card, the requester's DM) sit in the outbox past the
    redelivery age, so pimbot's first sweep posts them as the submission would have."""
    engine = make_engine(normalize_database_url(database_url))
    at = datetime.now(UTC) - timedelta(minutes=2)
    ids = []
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            for p in people:
                request = ElevationRequest.submit(
                    requester=Person("T0PIMBOT", p.slack_user, p.entra_id, p.slack_user),
                    role=PRA,
                    duration=timedelta(hours=1),
                    reason="benchmark",
                    at=at,
                    approver_specs=("pim",),
                )
                uow.requests.add(request)
                ids.append(request.id)
            uow.commit()
    finally:
        engine.dispose()
    return ids


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Options:
    backends: list[str]
    postgres_url: str
    postgres_log: str
    latency: float
    burst_latency: float
    concurrency: int
    count: int
    form_runs: int


@dataclass
class Stand:
    slack: FakeSlack
    emu: GraphEmulator
    graph: GraphLog
    sender: SlackSender  # builds signed payloads; the load generator sends them
    workdir: Path


def wait_for(condition: Callable[[], bool], timeout: float, what: str, child: Child | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if child is not None and child.process is not None and child.process.poll() is not None:
            raise SystemExit(f"{child.name} exited while waiting for {what}:\n{child.log()}")
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def settle(stand: Stand, timeout: float = 180) -> None:
    """Wait until neither Slack nor Graph has seen a call for SETTLE seconds."""
    deadline = time.monotonic() + timeout
    last = (len(stand.slack.calls()), len(stand.graph))
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = (len(stand.slack.calls()), len(stand.graph))
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE:
            return
    raise SystemExit("pimbot never went quiet")


def graph_round_trip(stand: Stand, person: Requester) -> float:
    """One Graph read at the injected latency, as pimbot's first form read would make it."""
    token = stand.emu.mint_token()
    url = f"{stand.emu.graph_url}/roleManagement/directory/roleEligibilityScheduleInstances"
    with httpx.Client(verify=stand.emu.client_ssl_context(), timeout=60) as client:
        client.get(
            url,
            params={"$filter": "principalId eq 'warm-up'"},
            headers={"Authorization": f"Bearer {token}"},
        )
        started = time.perf_counter()
        response = client.get(
            url,
            params={"$filter": f"principalId eq '{person.entra_id}'"},
            headers={"Authorization": f"Bearer {token}"},
        )
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def open_form(stand: Stand, pimbot: Child, user: str) -> tuple[float, float, list[str]]:
    """(seconds to views.open, seconds to its views.update, Graph calls) for one
    ``/pim request``, from the POST to what the fake Slack recorded."""
    opens_before = len(stand.slack.calls("views.open"))
    graph_before = len(stand.graph)
    request = stand.sender.build_command("/pim", "request", user=user)
    started = time.time()
    response = httpx.post(
        pimbot.events_url, content=request.body.encode(), headers=request.headers, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(f"/pim request answered {response.status_code}: {response.text[:200]}")
    wait_for(lambda: len(stand.slack.calls("views.open")) > opens_before, 30, "views.open", pimbot)
    opened = stand.slack.calls("views.open")[opens_before]
    view_id = opened.response["view"]["id"]

    def updated() -> list[Any]:
        return [c for c in stand.slack.calls("views.update") if c.args.get("view_id") == view_id]

    wait_for(lambda: bool(updated()), 120, "views.update", pimbot)
    filled = updated()[0]
    settle(stand)
    return opened.at - started, filled.at - started, stand.graph.since(graph_before)


def cards_by_request(slack: FakeSlack) -> dict[str, SlackMessage]:
    cards = {}
    for message in slack.messages(APPROVALS):
        with contextlib.suppress(ValueError):
            _, button = find_button(message.blocks, "pim-approve")
            cards[str(button.get("value"))] = message
    return cards


def approve_clicks(stand: Stand, ids: list[str]) -> list[SignedRequest]:
    cards = cards_by_request(stand.slack)
    return [stand.sender.build_click("pim-approve", user=APPROVER, message=cards[i]) for i in ids]


def all_active(stand: Stand, people: list[Requester]) -> Callable[[], bool]:
    waiting = {p.entra_id for p in people}

    def check() -> bool:
        for entra_id in list(waiting):
            if any(
                a["roleDefinitionId"] == PRA.role_definition_id
                for a in stand.emu.state.active_assignments(entra_id)
            ):
                waiting.discard(entra_id)
        return not waiting

    return check


def status_commands(stand: Stand, people: list[Requester]) -> list[SignedRequest]:
    return [stand.sender.build_command("/pim", "status", user=p.slack_user) for p in people]


@dataclass
class Burst:
    seconds: float
    slack: Counter[str]
    graph: Counter[str]
    sql: Counter[str] | None
    cpu: float


def approve_and_measure(
    stand: Stand, pimbot: Child, db: BenchDatabase, ids: list[str], people: list[Requester]
) -> Burst:
    """Click Approve on every request at once; time to the last activation, and what the
    whole decision cost once pimbot went quiet."""
    clicks = approve_clicks(stand, ids)
    slack_before, graph_before = len(stand.slack.calls()), len(stand.graph)
    log_before, cpu_before = db.log_offset(), pimbot.cpu_seconds()
    done = all_active(stand, people)
    started_at, _ = fire(pimbot.events_url, clicks)
    wait_for(done, 600, f"{len(ids)} activations", pimbot)
    elapsed = time.time() - started_at
    settle(stand)
    cpu = pimbot.cpu_seconds() - cpu_before
    slack = Counter(c.method for c in stand.slack.calls()[slack_before:])
    graph = Counter(stand.graph.since(graph_before))
    sql = db.statements_since(log_before) if db.log_path is not None else None
    return Burst(elapsed, slack, graph, sql, cpu)


@dataclass
class BareBolt:
    status_p99: float
    click_p99: float
    rss_mib: float


def measure_bare_bolt(stand: Stand, options: Options, people: list[Requester]) -> BareBolt:
    env = {
        **_inherited_env(),
        "SLACK_SIGNING_SECRET": stand.slack.signing_secret,
        "SLACK_BOT_TOKEN": stand.slack.bot_token,
        "PIMBOT_SLACK_API_URL": stand.slack.api_url,
    }
    bolt = Child(
        "bare Bolt",
        [sys.executable, "-m", "benchmarks.bare_bolt"],
        env,
        stand.workdir / "bare-bolt.log",
    )
    try:
        bolt.start()
        fire(bolt.events_url, status_commands(stand, people[:2]))  # warm-up
        time.sleep(1)
        rss = bolt.rss_mib()
        _, status = fire(bolt.events_url, status_commands(stand, people))
        fake_card = {"ts": "1700000000.000100", "blocks": [_approve_block("r")], "text": "card"}
        clicks = [
            stand.sender.build_click("pim-approve", user=APPROVER, message=fake_card)
            for _ in people
        ]
        _, click = fire(bolt.events_url, clicks)
    finally:
        bolt.stop()
    return BareBolt(percentile(status, 99), percentile(click, 99), rss)


def _approve_block(request_id: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": "pim-decision-actions",
        "elements": [
            {
                "type": "button",
                "action_id": "pim-approve",
                "value": request_id,
                "text": {"type": "plain_text", "text": "Approve"},
            }
        ],
    }


def _inherited_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("PIMBOT_", "SLACK_", "AZURE_"))
    } | {"PYTHONUNBUFFERED": "1"}


@dataclass
class BackendResult:
    backend: str
    form_open: float
    form_filled: float
    form_graph_calls: float
    round_trip: float
    status_p99: float
    click_p99: float
    alone: float
    burst: Burst
    rss_mib: float
    sql_problem: str
    form_graph: list[str] = field(default_factory=list)  # the last timed fill, in order


def measure_pimbot(
    stand: Stand,
    options: Options,
    backend: str,
    ack_people: list[Requester],
    burst_people: list[Requester],
    form_people: list[Requester],
) -> BackendResult:
    slack, emu = stand.slack, stand.emu
    with bench_database(backend, stand.workdir, options.postgres_url, options.postgres_log) as db:
        ack_ids = seed_pending(db.url, ack_people)
        burst_ids = seed_pending(db.url, burst_people)
        env = {
            **_inherited_env(),
            **emu.env(),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "PIMBOT_SLACK_API_URL": slack.api_url,
            "PIMBOT_DATABASE_URL": db.url,
            "PIMBOT_DATA_DIR": str(stand.workdir),
            "PIMBOT_APPROVALS_CHANNEL": APPROVALS,
            "PIMBOT_LOG_FORMAT": "json",
        }
        pimbot = Child(
            f"pimbot ({backend})",
            [sys.executable, "-m", "bot", "run"],
            env,
            stand.workdir / f"pimbot-{backend}.log",
        )
        try:
            emu.faults.latency = 0.0
            pimbot.start()
            print(f"  {backend}: pimbot pid {pimbot.pid} on port {pimbot.port}", file=sys.stderr)
            # Warm-up, untimed: the app token, role policies and group caches get loaded, and
            # the first sweep posts the seeded requests' cards.
            open_form(stand, pimbot, ADA)
            seeded = {*ack_ids, *burst_ids}
            wait_for(lambda: seeded <= cards_by_request(slack).keys(), 120, "the cards", pimbot)
            settle(stand)
            rss = pimbot.rss_mib()

            emu.faults.latency = options.latency
            opens, fills, calls, trips = [], [], [], []
            form_graph: list[str] = []
            for person in form_people[: options.form_runs]:
                trips.append(graph_round_trip(stand, person))
                opened, filled, graph_calls = open_form(stand, pimbot, person.slack_user)
                opens.append(opened)
                fills.append(filled)
                calls.append(len(graph_calls))
                form_graph = graph_calls
            print(f"  {backend}: form {statistics.median(fills):.2f} s", file=sys.stderr)

            emu.faults.latency = options.burst_latency
            _, status = fire(pimbot.events_url, status_commands(stand, ack_people))
            settle(stand)
            ack_clicks = approve_clicks(stand, ack_ids[2:])
            done = all_active(stand, ack_people[2:])
            _, click = fire(pimbot.events_url, ack_clicks)
            wait_for(done, 600, "the ack test's activations", pimbot)
            settle(stand)
            print(f"  {backend}: acks done", file=sys.stderr)

            # One approval alone (the ack test's clicks warmed every cache), then the burst.
            alone = approve_and_measure(stand, pimbot, db, ack_ids[1:2], ack_people[1:2])
            burst = approve_and_measure(stand, pimbot, db, burst_ids, burst_people)
            print(f"  {backend}: burst {burst.seconds:.2f} s", file=sys.stderr)
        finally:
            pimbot.stop()
        return BackendResult(
            backend,
            statistics.median(opens),
            statistics.median(fills),
            statistics.median(calls),
            statistics.median(trips),
            percentile(status, 99),
            percentile(click, 99),
            alone.seconds,
            burst,
            rss,
            db.log_problem,
            form_graph,
        )


def rows_for(result: BackendResult, bare: BareBolt, options: Options) -> list[Row]:
    b = result.backend
    burst, n = result.burst, options.count
    latency = f"{options.latency:g} s Graph latency"
    trip = f"one Graph round trip: {seconds(result.round_trip)}"
    rows = [
        Row(
            f"form opens (`views.open`) after `/pim request`, {latency} ({b})",
            seconds(result.form_open),
            trip,
            ratio(result.form_open, result.round_trip),
        ),
        Row(
            f"form filled (`views.update`), {latency} ({b})",
            f"{seconds(result.form_filled)} ({result.form_graph_calls:.0f} Graph calls)",
            trip,
            ratio(result.form_filled, result.round_trip),
        ),
        Row(
            f"ack p99, {options.concurrency} concurrent `/pim status` ({b})",
            seconds(result.status_p99),
            f"bare Bolt: {seconds(bare.status_p99)}",
            ratio(result.status_p99, bare.status_p99),
        ),
        Row(
            f"ack p99, {options.concurrency} concurrent Approve clicks ({b})",
            seconds(result.click_p99),
            f"bare Bolt: {seconds(bare.click_p99)}",
            ratio(result.click_p99, bare.click_p99),
        ),
        Row(
            f"{n} approvals at once, {options.burst_latency * 1000:.0f} ms Graph latency, "
            f"until all active ({b})",
            seconds(burst.seconds),
            f"one approval alone: {seconds(result.alone)}",
            ratio(burst.seconds, result.alone),
        ),
    ]
    if burst.sql is not None:
        control = ("BEGIN", "COMMIT", "ROLLBACK", "ping")
        work = Counter({k: v for k, v in burst.sql.items() if k not in control})
        transactions = burst.sql["COMMIT"] + burst.sql["ROLLBACK"]
        sql = (
            f"{sum(work.values()) / n:.1f} statements in {transactions / n:.1f} transactions "
            f"({describe_counts(work, n)}; plus {burst.sql['ping'] / n:.1f} pool pre-pings)"
        )
    else:
        sql = result.sql_problem
    rows += [
        Row(f"SQL per approval ({b})", sql, "—", "—"),
        Row(
            f"Slack calls per approval ({b})",
            f"{sum(burst.slack.values()) / n:.1f} ({describe_counts(burst.slack, n)})",
            "—",
            "—",
        ),
        Row(
            f"Graph calls per approval ({b})",
            f"{sum(burst.graph.values()) / n:.1f} ({describe_counts(burst.graph, n)})",
            "—",
            "—",
        ),
        Row(f"pimbot CPU per approval ({b})", f"{burst.cpu / n * 1000:.0f} ms", "—", "—"),
        Row(
            f"idle RSS ({b})",
            f"{result.rss_mib:.0f} MiB",
            f"bare Bolt: {bare.rss_mib:.0f} MiB",
            ratio(result.rss_mib, bare.rss_mib),
        ),
    ]
    return rows


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({platform.machine()}, {cpu}), {platform.platform()}, "
        f"Python {platform.python_version()}; load average before the run {load}"
    )


def run(options: Options) -> int:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pimbot-suite-")))
        # Each backend gets people of its own: no cache, card or activation carries over.
        cast = {
            b: (
                make_people(f"ACK{b[0].upper()}", 2 + options.concurrency),
                make_people(f"BURST{b[0].upper()}", options.count),
                make_people(f"FORM{b[0].upper()}", options.form_runs),
            )
            for b in options.backends
        }
        everyone = [p for people in cast.values() for group in people for p in group]
        requesters = [p for ack, burst, _ in cast.values() for p in (*ack, *burst)]
        forms = [p for _, _, form in cast.values() for p in form]
        slack = stack.enter_context(FakeSlack())
        for p in everyone:
            slack.add_user(p.slack_user, p.slack_user.lower(), email=p.upn)
        emu = GraphEmulator(tenant=make_tenant(requesters, forms), ca_path=workdir / "ca.pem")
        stack.enter_context(emu)
        graph = GraphLog(emu)
        sender = SlackSender("http://unused", slack.signing_secret, slack)
        stack.callback(sender.close)
        stand = Stand(slack, emu, graph, sender, workdir)
        header = machine()
        print(f"bare Bolt baseline ({options.concurrency} concurrent)", file=sys.stderr)
        first_ack = cast[options.backends[0]][0]
        bare = measure_bare_bolt(stand, options, first_ack[2:])
        rows: list[Row] = []
        notes: list[str] = []
        for backend in options.backends:
            print(f"pimbot on {backend}", file=sys.stderr)
            result = measure_pimbot(stand, options, backend, *cast[backend])
            rows += rows_for(result, bare, options)
            notes.append(f"Graph calls of one form fill ({backend}), in order:")
            notes += [f"  {call}" for call in result.form_graph]
    print(f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {header}")
    print()
    print(markdown_table(rows))
    print()
    print("\n".join(notes))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_POSTGRES,
        help="PostgreSQL server; a database is made per run",
    )
    parser.add_argument(
        "--postgres-log", default=DEFAULT_POSTGRES_LOG, help="its server log (statement counts)"
    )
    parser.add_argument(
        "--latency", type=float, help="Graph latency for the form, seconds (default 2, quick 1)"
    )
    parser.add_argument(
        "--burst-latency", type=float, default=0.3, help="Graph latency for acks and approvals"
    )
    parser.add_argument("--concurrency", type=int, help="concurrent acks (default 50, quick 20)")
    parser.add_argument("--count", type=int, help="approvals at once (default 100, quick 20)")
    parser.add_argument("--form-runs", type=int, help="timed form opens (default 3, quick 1)")
    args = parser.parse_args(argv)
    options = Options(
        backends=args.backends,
        postgres_url=args.database_url,
        postgres_log=args.postgres_log,
        latency=args.latency if args.latency is not None else (1.0 if args.quick else 2.0),
        burst_latency=args.burst_latency,
        concurrency=args.concurrency or (20 if args.quick else 50),
        count=args.count or (20 if args.quick else 100),
        form_runs=args.form_runs or (1 if args.quick else 3),
    )
    # Both unwind the ExitStack: children stopped, the database dropped, files removed. SIGINT
    # explicitly, since a shell starting the suite in the background leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(options)
    except KeyboardInterrupt:
        print("interrupted: everything the suite started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

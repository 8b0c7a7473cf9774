"""Benchmark: N approvals clicked at once against a Graph emulator with 300 ms latency.

DESIGN.md's target: "100 approvals clicked at once against an emulator with 300 ms Graph
latency all finish in about the time of a few sequential calls, not 100 of them."

Everything is real except Slack and Graph themselves: signed Approve clicks are POSTed to
pimbot's HTTP endpoint (waitress + Bolt), pimbot talks HTTPS to the Graph emulator (latency
injected on every Graph request) and HTTP to the fake Slack, and stores state in SQLite.
The baseline, measured in the same run, is one approval on its own (click → role active in
PIM); the result is the time for all N divided by that baseline.

    .venv/bin/python -m benchmarks.approvals --count 100 --latency 0.3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app.runtime import build_slack_runtime
from bot.app.settings import Settings
from bot.domain.elevation import ElevationRequest, Person, RoleRef
from handlers.http import BackgroundHttpServer
from stand_ins.fake_slack import FakeSlack
from stand_ins.graph_emulator import GraphEmulator, Tenant, default_tenant
from stand_ins.slack_signing import SlackSender
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork

PRA = RoleRef("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator")
APPROVER = "U0GRACE"
TEAM = "T0PIMBOT"


def _tenant(entra_ids: list[str]) -> Tenant:
    """The demo tenant plus one requester per click, each eligible for the role."""
    base = default_tenant().model_dump()
    users = [
        {
            "id": e,
            "user_principal_name": f"req{i}@contoso.example",
            "display_name": f"Requester {i}",
        }
        for i, e in enumerate(entra_ids)
    ]
    eligible = [{"principal": e, "role": PRA.role_definition_id} for e in entra_ids]
    return Tenant.model_validate(
        {
            **base,
            "users": [*base["users"], *users],
            "eligibilities": [*base["eligibilities"], *eligible],
        }
    )


def _seed(database_url: str, people: list[Person]) -> list[str]:
    """Pending requests, as if each person had just submitted the form."""
    engine = make_engine(database_url)
    ids = []
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            for person in people:
                request = ElevationRequest.submit(
                    requester=person,
                    role=PRA,
                    duration=timedelta(hours=1),
                    reason="benchmark",
                    at=datetime.now(UTC),
                    approver_specs=("pim",),
                )
                request.new_events.clear()  # no cards: the benchmark clicks Approve directly
                uow.requests.add(request)
                ids.append(request.id)
            uow.commit()
    finally:
        engine.dispose()
    return ids


def _card(request_id: str) -> dict[str, Any]:
    """The Approve button as the card carries it; the click needs only the request id."""
    return {
        "type": "message",
        "ts": "1700000000.000100",
        "text": "card",
        "blocks": [
            {
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
        ],
    }


def run(count: int, latency: float) -> int:
    people = [Person(TEAM, f"U0REQ{i:04d}", str(uuid.uuid4())) for i in range(2 * count + 2)]
    with tempfile.TemporaryDirectory(prefix="pimbot-bench-") as workdir:
        slack = FakeSlack().start()
        for person in people:
            slack.add_user(
                person.slack_user,
                person.slack_user.lower(),
                email=f"{person.slack_user.lower()}@contoso.example",
            )
        emu = GraphEmulator(
            tenant=_tenant([p.entra_id or "" for p in people]), ca_path=Path(workdir) / "ca.pem"
        ).start()
        database_url = f"sqlite:///{workdir}/pimbot.db"
        env = {
            **emu.env(),
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "PIMBOT_SLACK_API_URL": slack.api_url,
            "PIMBOT_DATA_DIR": workdir,
            "PIMBOT_APPROVALS_CHANNEL": "C0APPROVALS",
        }
        runtime = build_slack_runtime(Settings.from_env(env))
        server = BackgroundHttpServer(runtime.http_app()).start()
        sender = SlackSender(f"{server.url}/slack/events", slack.signing_secret, slack)
        try:
            ids = _seed(database_url, people)
            emu.faults.latency = latency
            # Untimed warm-up: the app token, role settings and approver lookups get cached.
            _approve_all(sender, emu, ids[:1], people[:1])
            baseline = _approve_all(sender, emu, ids[1:2], people[1:2])
            total = _approve_all(sender, emu, ids[2 : count + 2], people[2 : count + 2])
            # The same burst with no Graph latency: what pimbot and the stand-ins cost alone.
            emu.faults.latency = 0.0
            local = _approve_all(sender, emu, ids[count + 2 :], people[count + 2 :])
        finally:
            sender.close()
            server.stop()
            runtime.close()
            emu.stop()
            slack.stop()
    print(
        f"Graph latency {latency * 1000:.0f} ms per request, SQLite, {count} approvers' clicks "
        "at once (pimbot, the fake Slack and the emulator share one Python process)"
    )
    print(f"  one approval alone (baseline):        {baseline:6.2f} s")
    print(
        f"  {count} approvals at once:             {total:6.2f} s  = "
        f"{total / baseline:.1f} x the baseline (sequential: ~{count} x)"
    )
    print(
        f"  the same burst with no Graph latency: {local:6.2f} s  -> Graph latency adds "
        f"{total / local:.2f} x"
    )
    return 0


def _approve_all(
    sender: SlackSender, emu: GraphEmulator, ids: list[str], people: list[Person]
) -> float:
    """Click Approve on every request at once; seconds until PIM shows every activation."""
    barrier = threading.Barrier(len(ids) + 1)
    failures: list[str] = []

    def click(request_id: str) -> None:
        barrier.wait()
        response = sender.click("pim-approve", user=APPROVER, message=_card(request_id))
        if response.status_code != 200:
            failures.append(f"HTTP {response.status_code}")

    threads = [threading.Thread(target=click, args=(rid,)) for rid in ids]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    deadline = started + 600
    waiting = {p.entra_id for p in people}
    while waiting and time.perf_counter() < deadline:
        waiting = {
            e
            for e in waiting
            if not any(
                a["roleDefinitionId"] == PRA.role_definition_id
                for a in emu.state.active_assignments(e or "")
            )
        }
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    if waiting or failures:
        raise SystemExit(f"{len(waiting)} activations missing; click failures: {failures[:5]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per Graph request")
    args = parser.parse_args(argv)
    return run(args.count, args.latency)


if __name__ == "__main__":
    sys.exit(main())

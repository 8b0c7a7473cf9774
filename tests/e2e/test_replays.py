"""A signed request posted twice within Slack's five minutes is applied once, on any replica.

The replay cache is in the database, so both backends are exercised (``database_url``), and
a second pimbot sharing that database stands in for another replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from handlers.middleware import SIGNATURE_WINDOW_SECONDS
from stand_ins.slack_signing import STALE_AFTER
from storage.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import ADA, ADA_ENTRA, SECURITY_READER, Stack


def _end_in_pim(stack: Stack) -> datetime:
    [assignment] = [
        a
        for a in stack.emu.state.active_assignments(ADA_ENTRA)
        if a["roleDefinitionId"] == SECURITY_READER
    ]
    return datetime.fromisoformat(assignment["endDateTime"].replace("Z", "+00:00"))


def _active(stack: Stack) -> object:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    return stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "active until" in m.text], what="active DM"
    )[0]


def test_a_replayed_extension_is_applied_once(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    other = make_stack()  # another replica on the same database
    active_dm = _active(stack)
    opened = len(stack.slack.calls("views.update"))
    stack.sender.click("pim-extend", user=ADA, message=active_dm)
    stack.slack.wait_for("views.update", opened + 1, timeout=30)
    before = _end_in_pim(stack)
    signed = stack.sender.build_view_submission(
        stack.slack.latest_view(ADA), {"extend_duration": "PT30M"}, user=ADA
    )
    assert stack.sender.post(signed).status_code == 200
    stack.wait(lambda: _end_in_pim(stack) > before, what="the end moved in PIM")
    stack.wait(lambda: "now lasts until" in "".join(stack.dm_texts(ADA)[-1:]), what="extended DM")
    time.sleep(1.0)  # let the first submission finish telling Slack
    calls = len(stack.slack.calls())
    replayed = stack.sender.post(signed)
    assert replayed.status_code == 200 and replayed.text == ""
    # The other replica has the same signing secret; the replay cache is the database's.
    other_response = httpx.post(
        other.events_url, content=signed.body.encode(), headers=signed.headers, timeout=10
    )
    assert other_response.status_code == 200 and other_response.text == ""
    time.sleep(1.5)
    assert _end_in_pim(stack) - before == timedelta(minutes=30)
    assert len(stack.slack.calls()) == calls  # nothing was said about the replays
    extends = [r for r in stack.emu.state.requests if r["action"].lower() == "selfextend"]
    assert len(extends) <= 1


def test_replays_of_a_command_run_nothing(stack: Stack) -> None:
    signed = stack.sender.build_command("/pim", "help", user=ADA)
    first = stack.sender.post(signed)
    assert first.status_code == 200 and first.text  # the help, in the ack
    for _ in range(3):
        replayed = stack.sender.post(signed)
        assert replayed.status_code == 200 and replayed.text == ""


def test_old_entries_are_purged(stack: Stack, uow_factory: Callable[[], SqlUnitOfWork]) -> None:
    now = time.time()
    seen_at = datetime.fromtimestamp(now, UTC)
    old = int(now) - SIGNATURE_WINDOW_SECONDS - STALE_AFTER - 120
    with uow_factory() as uow:
        assert uow.replays.remember(old, "v0=old", seen_at)
        assert uow.replays.remember(int(now), "v0=new", seen_at)
        assert not uow.replays.remember(int(now), "v0=new", seen_at)
        uow.commit()
    # The first signed request a replica serves purges what is older than the window.
    assert stack.sender.command("/pim", "help", user=ADA).status_code == 200
    with uow_factory() as uow:
        assert uow.replays.remember(old, "v0=old", seen_at)  # gone, so new again
        assert not uow.replays.remember(int(now), "v0=new", seen_at)  # still inside the window


def test_replicas_racing_on_one_request_let_exactly_one_through(
    uow_factory: Callable[[], SqlUnitOfWork],
) -> None:
    """N replicas recording the same (timestamp, signature) at the same moment: one wins,
    none errors (INSERT ... ON CONFLICT DO NOTHING)."""
    now = int(time.time())
    start = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            start.wait()
            with uow_factory() as uow:
                first = uow.replays.remember(now, "v0=" + "a" * 64, datetime.now(UTC))
                uow.commit()
            results.append(first)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]

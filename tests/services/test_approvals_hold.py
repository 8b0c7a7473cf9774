"""Use cases over real storage: approved roles are not stretched, replays do not extend twice,
stale approvals are not activated."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.elevation import RequestStatus
from bot.domain.errors import AlreadyDecided, PimUnavailable
from bot.domain.rules import RequestForm
from bot.use_cases.services import (
    activate_request,
    approve_extension,
    approve_request,
    extend_request,
    submit_request,
)
from tests.fakes import ADA, GLOBAL_ADMIN, GRACE, SECURITY_READER, T0

HOUR = timedelta(hours=1)


def _form(role=GLOBAL_ADMIN):  # type: ignore[no-untyped-def]
    return RequestForm(role.role_definition_id, HOUR, "incident INC-4711")


def _approved(world, ports=None):  # type: ignore[no-untyped-def]
    ports = ports or world.ports
    request = submit_request(_form(), ADA, ports=ports)
    return approve_request(request.id, GRACE, ports=ports)


def test_extending_an_approved_role_opens_a_new_round(world) -> None:  # type: ignore[no-untyped-def]
    request = _approved(world)
    assert request.status is RequestStatus.ACTIVE
    asked = extend_request(request.id, ADA, 3 * HOUR, ports=world.ports)
    assert asked.extension.pending == 3 * HOUR and asked.ends_at == T0 + HOUR
    assert world.pim.writes("extend") == []
    done = approve_extension(request.id, GRACE, ports=world.ports)
    assert done.ends_at == T0 + 4 * HOUR and done.extension.pending is None


def test_self_extension_up_to_the_policys_total(world) -> None:  # type: ignore[no-untyped-def]
    ports = world.build(
        parse_policy({"roles": {"Global Administrator": {"self_extension": {"up_to": "2h"}}}})
    )
    request = _approved(world, ports)
    extended = extend_request(request.id, ADA, HOUR, ports=ports)
    assert extended.ends_at == T0 + 2 * HOUR and extended.extension.pending is None
    asked = extend_request(request.id, ADA, timedelta(minutes=5), ports=ports)
    assert asked.extension.pending == timedelta(minutes=5)
    assert asked.ends_at == T0 + 2 * HOUR


def test_a_role_needing_no_approval_still_extends_at_once(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    extended = extend_request(request.id, ADA, HOUR, ports=world.ports)
    assert extended.ends_at == T0 + 2 * HOUR


def test_the_same_form_twice_at_once_extends_once(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    outcomes: list[object] = []

    def submit() -> None:
        try:
            outcomes.append(
                extend_request(request.id, ADA, HOUR, ports=world.ports, key="V0SAMEFORM")
            )
        except AlreadyDecided as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(world.pim.writes("extend")) == 1
    assert sum(isinstance(o, AlreadyDecided) for o in outcomes) == 3
    again = extend_request(request.id, ADA, HOUR, ports=world.ports, key="V0NEWFORM")
    assert again.ends_at == T0 + 3 * HOUR


def test_an_approval_left_unused_past_its_ttl_fails_instead_of_activating(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.pim.fail_next.append(PimUnavailable("Graph timed out"))
    approved = approve_request(request.id, GRACE, ports=world.ports)
    assert approved.status is RequestStatus.APPROVED
    world.clock.advance(HOUR + timedelta(minutes=1))
    failed = activate_request(request.id, ports=world.ports)
    assert failed.status is RequestStatus.FAILED
    assert "lapsed" in (failed.failure_reason or "")
    assert len(world.pim.writes("activate")) == 1  # only the attempt that timed out


@pytest.mark.parametrize("late", [timedelta(minutes=30), HOUR])
def test_an_approval_used_within_its_ttl_activates(world, late) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.pim.fail_next.append(PimUnavailable("Graph timed out"))
    approve_request(request.id, GRACE, ports=world.ports)
    world.clock.advance(late)
    assert activate_request(request.id, ports=world.ports).status is RequestStatus.ACTIVE

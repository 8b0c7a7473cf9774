"""The sweep with a controllable clock: every timer, leases, and replicas sharing a database."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.app.scheduler import SWEEP_JOB_ID, Sweeper, build_scheduler
from bot.domain.elevation import ElevationRequest, RequestStatus
from bot.domain.errors import PimUnavailable
from bot.domain.ports import DueWork
from bot.domain.rules import RequestForm
from bot.use_cases.services import approve_request, deactivate_request, submit_request
from tests.fakes import ADA, GLOBAL_ADMIN, GRACE, SECURITY_READER, T0


def _form(role=SECURITY_READER, **overrides):  # type: ignore[no-untyped-def]
    values = dict(
        role_definition_id=role.role_definition_id,
        duration=timedelta(hours=1),
        reason="incident INC-4711",
    )
    values.update(overrides)
    return RequestForm(**values)


def _sweeper(world, **kw) -> Sweeper:  # type: ignore[no-untyped-def]
    return Sweeper(
        ports=world.ports,
        pending_timeout=kw.pop("pending_timeout", timedelta(hours=24)),
        nudge_after=kw.pop("nudge_after", timedelta(hours=1)),
        **kw,
    )


def _get(uow_factory, request_id: str) -> ElevationRequest:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        request = uow.requests.get(request_id)
    assert request is not None
    return request


def test_reminder_goes_out_once_before_expiry(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    sweeper = _sweeper(world)
    world.clock.advance(timedelta(minutes=49))
    assert sweeper.sweep()[DueWork.REMINDER] == 0
    world.clock.advance(timedelta(minutes=1))
    assert sweeper.sweep()[DueWork.REMINDER] == 1
    assert sweeper.sweep()[DueWork.REMINDER] == 0
    assert world.notifier.events_for(request.id).count("reminder") == 1
    assert _get(uow_factory, request.id).timers.reminded_at == T0 + timedelta(minutes=50)


def test_short_activations_are_reminded_sooner(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(duration=timedelta(minutes=10)), ADA, ports=world.ports)
    assert request.timers.remind_at == T0 + timedelta(minutes=5)


def test_expiry_is_recorded_and_told(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.clock.advance(timedelta(hours=1, seconds=1))
    handled = _sweeper(world).sweep()
    assert handled[DueWork.EXPIRY] == 1
    assert _get(uow_factory, request.id).status is RequestStatus.EXPIRED
    assert world.notifier.events_for(request.id)[-1] == "expired"


def test_an_assignment_removed_elsewhere_stops_its_reminder(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.pim.active.clear()  # an admin removed it in the portal
    world.clock.advance(timedelta(minutes=55))
    _sweeper(world).sweep()
    stored = _get(uow_factory, request.id)
    assert stored.status is RequestStatus.EXPIRED
    assert "reminder" not in world.notifier.events_for(request.id)


def test_an_end_moved_in_pim_is_adopted(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    key = (ADA.entra_id, SECURITY_READER.role_definition_id)
    world.pim.active[key] = (T0, T0 + timedelta(hours=3))
    world.clock.advance(timedelta(hours=1, minutes=1))
    _sweeper(world).sweep()
    stored = _get(uow_factory, request.id)
    assert stored.status is RequestStatus.ACTIVE
    assert stored.ends_at == T0 + timedelta(hours=3)
    # Moved outside pimbot: the card and the requester hear it (issue 10).
    assert world.notifier.events_for(request.id)[-1] == "end_moved"


def test_an_end_moved_later_in_pim_is_told_instead_of_a_stale_reminder(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    key = (ADA.entra_id, SECURITY_READER.role_definition_id)
    world.pim.active[key] = (T0, T0 + timedelta(hours=3))
    sweeper = _sweeper(world)
    world.clock.advance(timedelta(minutes=50))  # our reminder is due; PIM's end is hours away
    sweeper.sweep()
    stored = _get(uow_factory, request.id)
    assert stored.ends_at == T0 + timedelta(hours=3)
    assert stored.timers.remind_at == T0 + timedelta(hours=2, minutes=50)
    assert world.notifier.events_for(request.id)[-1] == "end_moved"
    assert "reminder" not in world.notifier.events_for(request.id)
    world.clock.advance(timedelta(hours=2))
    sweeper.sweep()
    assert world.notifier.events_for(request.id)[-1] == "reminder"


def test_scheduled_start_is_announced_when_pim_shows_it(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    start = T0 + timedelta(hours=2)
    request = submit_request(_form(start=start), ADA, ports=world.ports)
    assert request.status is RequestStatus.SCHEDULED
    sweeper = _sweeper(world)
    world.clock.advance(timedelta(hours=2))
    assert sweeper.sweep()[DueWork.SCHEDULED_START] == 1
    stored = _get(uow_factory, request.id)
    assert stored.status is RequestStatus.ACTIVE
    assert stored.ends_at == start + timedelta(hours=1)
    assert world.notifier.events_for(request.id)[-1] == "active"


def test_a_crash_after_approval_is_reconciled_without_a_second_activation(
    world, uow_factory
) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(GLOBAL_ADMIN), ADA, ports=world.ports)
    # Graph created the assignment but pimbot never heard back.
    world.pim.fail_next.append(PimUnavailable("timed out"))
    original = world.pim.activate

    def activate_then_lose_answer(req):  # type: ignore[no-untyped-def]
        world.pim.fail_next.clear()
        original(req)
        raise PimUnavailable("the answer was lost")

    world.pim.activate = activate_then_lose_answer
    assert approve_request(request.id, GRACE, ports=world.ports).status is RequestStatus.APPROVED
    world.pim.activate = original
    world.clock.advance(timedelta(minutes=3))
    _sweeper(world).sweep()
    assert _get(uow_factory, request.id).status is RequestStatus.ACTIVE
    assert len(world.pim.writes("activate")) == 1


def test_a_stuck_approval_whose_activation_never_happened_is_activated(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(GLOBAL_ADMIN), ADA, ports=world.ports)
    world.pim.fail_next.append(PimUnavailable("timed out before sending"))
    approve_request(request.id, GRACE, ports=world.ports)
    sweeper = _sweeper(world)
    world.clock.advance(timedelta(minutes=1))
    assert sweeper.sweep()[DueWork.STUCK_APPROVED] == 0  # still inside its own call
    world.clock.advance(timedelta(minutes=2))
    assert sweeper.sweep()[DueWork.STUCK_APPROVED] == 1
    assert _get(uow_factory, request.id).status is RequestStatus.ACTIVE


def test_pending_requests_nudge_then_time_out(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(GLOBAL_ADMIN), ADA, ports=world.ports)
    sweeper = _sweeper(world)
    world.clock.advance(timedelta(hours=1))
    assert sweeper.sweep()[DueWork.NUDGE] == 1
    assert sweeper.sweep()[DueWork.NUDGE] == 0
    world.clock.advance(timedelta(hours=23))
    assert sweeper.sweep()[DueWork.PENDING_TIMEOUT] == 1
    assert _get(uow_factory, request.id).status is RequestStatus.EXPIRED
    assert world.notifier.events_for(request.id)[-2:] == ["nudge", "timed_out"]


def test_scheduled_deactivation_runs_when_pim_allows(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=1))
    deactivate_request(request.id, ADA, ports=world.ports)
    sweeper = _sweeper(world)
    assert sweeper.sweep()[DueWork.DEACTIVATION] == 0
    world.clock.advance(timedelta(minutes=4))
    assert sweeper.sweep()[DueWork.DEACTIVATION] == 1
    assert _get(uow_factory, request.id).status is RequestStatus.DEACTIVATED
    assert len(world.pim.writes("deactivate")) == 1


def test_a_failing_timer_keeps_its_lease_and_is_retried_after_it(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=50))
    sweeper = _sweeper(world, lease=timedelta(minutes=2))
    original = world.pim.list_active_assignments

    def graph_down(principal_id):  # type: ignore[no-untyped-def]
        raise PimUnavailable("Graph is down")

    world.pim.list_active_assignments = graph_down
    assert sweeper.sweep()[DueWork.REMINDER] == 0
    world.pim.list_active_assignments = original
    world.clock.advance(timedelta(minutes=1))
    assert sweeper.sweep()[DueWork.REMINDER] == 0  # still leased
    world.clock.advance(timedelta(minutes=2))
    assert sweeper.sweep()[DueWork.REMINDER] == 1
    assert world.notifier.events_for(request.id).count("reminder") == 1


def test_a_crashed_replicas_claim_is_taken_over_after_its_lease(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=50))
    with uow_factory() as uow:
        claimed = uow.requests.claim_due(
            DueWork.REMINDER, world.clock.now(), owner="dead", lease=timedelta(minutes=2)
        )
        uow.commit()
    assert claimed == [request.id]
    survivor = _sweeper(world, owner="alive")
    assert survivor.sweep()[DueWork.REMINDER] == 0
    world.clock.advance(timedelta(minutes=2, seconds=1))
    assert survivor.sweep()[DueWork.REMINDER] == 1


def test_build_scheduler_registers_one_sweep_without_starting(world) -> None:  # type: ignore[no-untyped-def]
    scheduler = build_scheduler(_sweeper(world), interval=timedelta(seconds=15))
    [job] = scheduler.get_jobs()
    assert job.id == SWEEP_JOB_ID
    assert scheduler.running is False


def test_two_replicas_send_each_of_500_reminders_exactly_once(
    world,
    uow_factory,  # type: ignore[no-untyped-def]
    active_in_fake_pim,
) -> None:
    ids = _seed_active(uow_factory, 500)
    world.clock.advance(timedelta(minutes=55))
    replicas = [_sweeper(world, owner=f"replica-{i}", batch=500) for i in range(2)]
    threads = [threading.Thread(target=r.sweep) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    reminders = [rid for rid, event in world.notifier.sent if event == "reminder"]
    assert sorted(reminders) == sorted(ids)
    with uow_factory() as uow:
        assert all(uow.requests.get(rid).timers.reminded_at is not None for rid in ids)  # type: ignore[union-attr]


def _seed_active(uow_factory, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    with uow_factory() as uow:
        for i in range(count):
            request = ElevationRequest.submit(
                requester=ADA.__class__("T0PIMBOT", f"U{i:06d}", ADA.entra_id),
                role=SECURITY_READER,
                duration=timedelta(hours=1),
                reason="seeded",
                at=T0,
            )
            request.auto_approve(actor="pimbot", at=T0, why="seed")
            request.mark_active(
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                graph_request_id="g",
                at=T0,
                remind_at=T0 + timedelta(minutes=50),
            )
            request.new_events.clear()  # seeded as if told long ago: nothing owed to Slack
            uow.requests.add(request)
            ids.append(request.id)
        uow.commit()
    return ids


@pytest.fixture
def active_in_fake_pim(world):  # type: ignore[no-untyped-def]
    # Seeded rows share ADA's Entra id: keep Security Reader active for her in the fake PIM.
    world.pim.active[(ADA.entra_id, SECURITY_READER.role_definition_id)] = (
        T0,
        T0 + timedelta(hours=1),
    )


def test_a_notification_lost_to_a_slack_outage_is_delivered_by_the_sweep(
    world, uow_factory
) -> None:  # type: ignore[no-untyped-def]
    world.notifier.broken = True
    request = submit_request(_form(), ADA, ports=world.ports)  # activates at once
    assert world.notifier.events_for(request.id) == []
    world.notifier.broken = False
    sweeper = _sweeper(world)
    assert sweeper.redeliver() == 0  # the first attempt may still be under way
    world.clock.advance(timedelta(minutes=2))
    assert sweeper.redeliver() == 2
    assert world.notifier.events_for(request.id) == ["submitted", "active"]
    assert sweeper.redeliver() == 0  # delivered once, never again


def test_a_crash_between_commit_and_delivery_loses_nothing(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=50))

    class Crash(BaseException):
        """Stands for the process dying: nothing below it runs."""

    def die(*_args):  # type: ignore[no-untyped-def]
        raise Crash

    world.ports.notifier.request_changed = die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        _sweeper(world, owner="dead").sweep()
    assert _get(uow_factory, request.id).timers.reminded_at is not None  # recorded...
    del world.ports.notifier.request_changed  # a fresh process
    world.clock.advance(timedelta(minutes=3))
    _sweeper(world, owner="alive").sweep()
    assert world.notifier.events_for(request.id).count("reminder") == 1  # ...and told once

"""Use cases end to end over real storage (SQLite and PostgreSQL), with fake PIM and Slack."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.elevation import Person, RequestStatus
from bot.domain.errors import (
    ActiveDurationTooShort,
    AlreadyDecided,
    IdentityError,
    InvalidTransition,
    NotAuthorized,
    PimRejected,
    PimUnavailable,
    ValidationFailed,
)
from bot.domain.rules import RequestForm
from bot.use_cases.services import (
    approve_extension,
    approve_request,
    cancel_request,
    deactivate_request,
    deny_extension,
    deny_request,
    expire_request,
    extend_request,
    list_pending_for_approver,
    submit_request,
)
from tests.fakes import (
    ADA,
    ALAN,
    APPROVERS,
    GLOBAL_ADMIN,
    GRACE,
    MALLORY,
    SECURITY_READER,
    T0,
)


def _form(role=GLOBAL_ADMIN, **overrides):  # type: ignore[no-untyped-def]
    values = dict(
        role_definition_id=role.role_definition_id,
        duration=timedelta(hours=1),
        reason="incident INC-4711",
    )
    values.update(overrides)
    return RequestForm(**values)


def test_request_approve_activate_story(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    assert request.status is RequestStatus.PENDING_APPROVAL
    assert world.pim.writes("activate") == []
    done = approve_request(request.id, GRACE, ports=world.ports)
    assert done.status is RequestStatus.ACTIVE
    assert done.ends_at == T0 + timedelta(hours=1)
    assert done.timers.remind_at == T0 + timedelta(minutes=50)
    [activation] = world.pim.writes("activate")
    assert activation.principal_id == ADA.entra_id  # type: ignore[attr-defined]
    assert world.notifier.events_for(request.id) == ["submitted", "approved", "active"]
    with uow_factory() as uow:
        trail = [(e.action, e.to_status) for e in uow.audit.list_for_request(request.id)]
    assert trail == [
        ("submit", "pending_approval"),
        ("approve", "approved"),
        ("activate", "active"),
    ]


def test_roles_without_approval_activate_at_once(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    assert request.status is RequestStatus.ACTIVE
    assert world.notifier.events_for(request.id) == ["submitted", "active"]


def test_policy_can_require_approval_and_a_quorum(world) -> None:  # type: ignore[no-untyped-def]
    ports = world.build(
        parse_policy({"roles": {"Security Reader": {"approval": "required", "quorum": 2}}})
    )
    request = submit_request(_form(SECURITY_READER), ADA, ports=ports)
    assert request.status is RequestStatus.PENDING_APPROVAL
    assert approve_request(request.id, GRACE, ports=ports).status is RequestStatus.PENDING_APPROVAL
    with pytest.raises(AlreadyDecided):
        approve_request(request.id, GRACE, ports=ports)
    assert approve_request(request.id, ALAN, ports=ports).status is RequestStatus.ACTIVE
    assert len(world.pim.writes("activate")) == 1


def test_self_approval_and_strangers_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    with pytest.raises(NotAuthorized, match="your own"):
        approve_request(request.id, ADA, ports=world.ports)
    with pytest.raises(NotAuthorized, match="not an approver"):
        approve_request(request.id, MALLORY, ports=world.ports)
    assert world.pim.writes("activate") == []


def test_deny_needs_a_reason_and_ends_the_request(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    with pytest.raises(ValidationFailed):
        deny_request(request.id, GRACE, "  ", ports=world.ports)
    denied = deny_request(request.id, GRACE, "change freeze", ports=world.ports)
    assert denied.status is RequestStatus.DENIED and denied.deny_reason == "change freeze"
    with pytest.raises(AlreadyDecided, match="Already denied by <@U0GRACE>"):
        approve_request(request.id, ALAN, ports=world.ports)


def test_bad_input_and_ineligible_roles_come_back_per_field(world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as caught:
        submit_request(_form(duration=timedelta(hours=9), reason="x"), ADA, ports=world.ports)
    assert set(caught.value.field_errors) == {"duration", "reason"}
    with pytest.raises(ValidationFailed, match="not eligible"):
        submit_request(_form(), GRACE, ports=world.ports)
    with pytest.raises(IdentityError):
        submit_request(_form(), Person("T0PIMBOT", "U0NOBODY"), ports=world.ports)


def test_one_live_request_per_role(world) -> None:  # type: ignore[no-untyped-def]
    submit_request(_form(), ADA, ports=world.ports)
    with pytest.raises(ValidationFailed, match="already have a request"):
        submit_request(_form(), ADA, ports=world.ports)


def test_an_active_role_cannot_be_requested_again(world) -> None:  # type: ignore[no-untyped-def]
    world.pim.active[(ADA.entra_id, GLOBAL_ADMIN.role_definition_id)] = (
        T0,
        T0 + timedelta(hours=2),
    )
    with pytest.raises(ValidationFailed, match="already active for you until 11:00 UTC"):
        submit_request(_form(), ADA, ports=world.ports)


def test_graph_refusal_marks_the_request_failed_with_the_reason(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.pim.fail_next.append(PimRejected("PIM says the ticket is missing.", code="X"))
    failed = approve_request(request.id, GRACE, ports=world.ports)
    assert failed.status is RequestStatus.FAILED
    assert failed.failure_reason == "PIM says the ticket is missing."
    assert world.notifier.events_for(request.id)[-1] == "failed"


def test_an_ambiguous_graph_failure_leaves_the_request_approved(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    world.pim.fail_next.append(PimUnavailable("Graph timed out."))
    after = approve_request(request.id, GRACE, ports=world.ports)
    assert after.status is RequestStatus.APPROVED  # the sweeper asks Graph before retrying


def test_slack_outage_does_not_undo_a_committed_change(world) -> None:  # type: ignore[no-untyped-def]
    world.notifier.broken = True
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    assert request.status is RequestStatus.ACTIVE


def test_extend_then_deactivate(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=50))
    extended = extend_request(request.id, ADA, timedelta(minutes=30), ports=world.ports)
    assert extended.ends_at == T0 + timedelta(minutes=90)
    assert extended.status is RequestStatus.ACTIVE
    with pytest.raises(NotAuthorized):
        deactivate_request(request.id, GRACE, ports=world.ports)
    ended = deactivate_request(request.id, ADA, ports=world.ports)
    assert ended.status is RequestStatus.DEACTIVATED
    assert world.pim.active == {}
    with pytest.raises(InvalidTransition):
        deactivate_request(request.id, ADA, ports=world.ports)


def test_extension_is_bounded_by_the_maximum(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    with pytest.raises(ValidationFailed, match="at most 8h from now"):
        extend_request(request.id, ADA, timedelta(hours=8), ports=world.ports)


def test_deactivation_in_the_first_five_minutes_is_scheduled(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=2))
    scheduled = deactivate_request(request.id, ADA, ports=world.ports)
    assert scheduled.status is RequestStatus.ACTIVE
    assert scheduled.timers.deactivate_at == T0 + timedelta(minutes=5)
    assert world.pim.writes("deactivate") == []
    assert world.notifier.events_for(request.id)[-1] == "deactivation_scheduled"


def test_pim_refusing_an_early_deactivation_schedules_a_retry(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    world.clock.advance(timedelta(minutes=6))
    world.pim.fail_next.append(ActiveDurationTooShort("too short", code="ActiveDurationTooShort"))
    scheduled = deactivate_request(request.id, ADA, ports=world.ports)
    assert scheduled.status is RequestStatus.ACTIVE
    assert scheduled.timers.deactivate_at == T0 + timedelta(minutes=7)


def test_cancel_and_expire(world) -> None:  # type: ignore[no-untyped-def]
    pending = submit_request(_form(), ADA, ports=world.ports)
    assert cancel_request(pending.id, ADA, ports=world.ports).status is RequestStatus.CANCELLED
    active = submit_request(_form(SECURITY_READER), ADA, ports=world.ports)
    assert expire_request(active.id, ports=world.ports).status is RequestStatus.EXPIRED


def test_pending_list_for_an_approver_excludes_own_requests(world) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    assert [r.id for r in list_pending_for_approver(GRACE, ports=world.ports)] == [request.id]
    assert list_pending_for_approver(ADA, ports=world.ports) == []
    assert list_pending_for_approver(MALLORY, ports=world.ports) == []


def test_twenty_approvers_at_once_produce_exactly_one_approval(world, uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = submit_request(_form(), ADA, ports=world.ports)
    barrier = threading.Barrier(len(APPROVERS))
    outcomes: list[object] = [None] * len(APPROVERS)

    def click(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = approve_request(request.id, APPROVERS[i], ports=world.ports).status
        except AlreadyDecided as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=click, args=(i,)) for i in range(len(APPROVERS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [o for o in outcomes if o is RequestStatus.ACTIVE]
    losers = [o for o in outcomes if isinstance(o, AlreadyDecided)]
    assert len(winners) == 1 and len(losers) == 19, outcomes
    assert all("Already approved by <@U0APPR" in str(exc) for exc in losers)
    assert len(world.pim.writes("activate")) == 1
    with uow_factory() as uow:
        trail = uow.audit.list_for_request(request.id)
        stored = uow.requests.get(request.id)
    assert [e.action for e in trail].count("approve") == 1
    assert stored is not None and len(stored.decisions) == 1


EXTENSION_POLICY = {
    "roles": {"Security Reader": {"extension_requires_approval": True, "quorum": 2}}
}


def test_an_extension_needing_approval_waits_and_keeps_the_role_active(world) -> None:  # type: ignore[no-untyped-def]
    ports = world.build(parse_policy(EXTENSION_POLICY))
    request = submit_request(_form(SECURITY_READER), ADA, ports=ports)
    asked = extend_request(
        request.id,
        ADA,
        timedelta(minutes=30),
        ports=ports,
        reason="the migration is slower than planned",
    )
    assert asked.status is RequestStatus.ACTIVE
    assert asked.extension.pending == timedelta(minutes=30)
    assert asked.ends_at == T0 + timedelta(hours=1)
    assert world.pim.writes("extend") == []
    with pytest.raises(InvalidTransition, match="already waiting"):
        extend_request(request.id, ADA, timedelta(minutes=30), ports=ports)
    with pytest.raises(NotAuthorized, match="your own"):
        approve_extension(request.id, ADA, ports=ports)
    assert approve_extension(request.id, GRACE, ports=ports).extension.pending is not None
    with pytest.raises(AlreadyDecided):
        approve_extension(request.id, GRACE, ports=ports)
    done = approve_extension(request.id, ALAN, ports=ports)
    assert done.extension.pending is None
    assert done.ends_at == T0 + timedelta(minutes=90)
    assert len(world.pim.writes("extend")) == 1
    assert world.notifier.events_for(request.id)[-3:] == [
        "extension_requested",
        "approval_recorded",
        "extended",
    ]


def test_a_denied_extension_leaves_the_end_where_it_was(world) -> None:  # type: ignore[no-untyped-def]
    ports = world.build(parse_policy(EXTENSION_POLICY))
    request = submit_request(_form(SECURITY_READER), ADA, ports=ports)
    extend_request(request.id, ADA, timedelta(minutes=30), ports=ports)
    denied = deny_extension(request.id, GRACE, "wrap it up", ports=ports)
    assert denied.extension.pending is None and denied.ends_at == T0 + timedelta(hours=1)
    assert world.notifier.events_for(request.id)[-1] == "extension_denied"
    with pytest.raises(AlreadyDecided, match="already decided by <@U0GRACE>"):
        approve_extension(request.id, ALAN, ports=ports)
    # A new round may be asked for after a denial, and people decide afresh.
    extend_request(request.id, ADA, timedelta(minutes=15), ports=ports)
    approve_extension(request.id, GRACE, ports=ports)
    assert approve_extension(request.id, ALAN, ports=ports).ends_at == T0 + timedelta(minutes=75)

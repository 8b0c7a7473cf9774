"""Each transition records the event(s) people must hear about (issue 10, item 1).

Walks every (status, action) of ``TRANSITIONS`` through the intention-named methods that lead
there, and every change that is not a status change, and asserts what each one emits; a
refused change emits nothing. A new transition or method without an entry here fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.domain.elevation import (
    SYSTEM,
    TRANSITIONS,
    Action,
    Decision,
    ElevationRequest,
    Event,
    RequestStatus,
)
from bot.domain.errors import AlreadyDecided, InvalidTransition, NotAuthorized
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0

S, A, E = RequestStatus, Action, Event
AT = T0 + timedelta(minutes=10)
Step = Callable[[ElevationRequest], object]


def _submitted(*, quorum: int = 1, break_glass: bool = False) -> ElevationRequest:
    return ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="incident INC-4711",
        at=T0,
        quorum=quorum,
        break_glass=break_glass,
    )


def _approved(r: ElevationRequest) -> None:
    r.auto_approve(actor="pimbot", at=T0, why="test")


def _active(r: ElevationRequest) -> None:
    r.mark_active(starts_at=T0, ends_at=T0 + timedelta(hours=1), graph_request_id="g", at=T0)


# How to bring a fresh request into each status, with the methods the use cases call.
_PATHS: dict[RequestStatus, list[Step]] = {
    S.PENDING_APPROVAL: [],
    S.APPROVED: [_approved],
    S.SCHEDULED: [
        _approved,
        lambda r: r.schedule(
            starts_at=T0 + timedelta(hours=2),
            ends_at=T0 + timedelta(hours=3),
            graph_request_id="g",
            at=T0,
        ),
    ],
    S.AWAITING_PIM: [
        _approved,
        lambda r: r.await_pim(graph_request_id="g", at=T0, approval_id="a", stages=2),
    ],
    S.AWAITING_SIGN_IN: [_approved, lambda r: r.ask_sign_in(why="MFA", at=T0)],
    S.ACTIVE: [_approved, _active],
    S.EXPIRED: [_approved, _active, lambda r: r.expire(at=T0)],
    S.DEACTIVATED: [_approved, _active, lambda r: r.deactivate(ADA, at=T0)],
    S.DENIED: [lambda r: r.deny(GRACE, reason="no", at=T0)],
    S.CANCELLED: [lambda r: r.cancel(ADA, at=T0)],
    S.FAILED: [_approved, lambda r: r.mark_failed(reason="PIM said no", at=T0)],
}


def in_status(status: RequestStatus, **kwargs: object) -> ElevationRequest:
    request = _submitted(**kwargs)  # type: ignore[arg-type]
    for step in _PATHS[status]:
        step(request)
    assert request.status is status
    request.new_events.clear()  # only what the step under test records counts
    return request


# Every method that performs each action, and the events it records.
_END = T0 + timedelta(hours=3)
BY_ACTION: dict[Action, dict[str, tuple[Step, list[Event]]]] = {
    A.APPROVE: {
        "approve": (lambda r: r.approve(GRACE, at=AT), [E.APPROVED]),
        # Only inside a submission, whose SUBMITTED event shows it approved.
        "auto_approve": (lambda r: r.auto_approve(actor="pimbot", at=AT, why="none needed"), []),
    },
    A.DENY: {
        "deny": (lambda r: r.deny(GRACE, reason="not now", at=AT), [E.DENIED]),
        # PIM's own approver said no (in Slack, the portal or by email): the sweep follows.
        "close_in_pim": (lambda r: r.close_in_pim(outcome="Denied", at=AT), [E.DENIED]),
        # An approver denied PIM's approval from Slack, in PIM, as themselves.
        "record_pim_review": (
            lambda r: r.record_pim_review(GRACE, Decision.DENY, at=AT, reason="no"),
            [E.DENIED],
        ),
    },
    A.CANCEL: {"cancel": (lambda r: r.cancel(ADA, at=AT), [E.CANCELLED])},
    A.TIME_OUT: {"time_out": (lambda r: r.time_out(at=AT), [E.TIMED_OUT])},
    A.ACTIVATE: {
        "mark_active": (
            lambda r: r.mark_active(starts_at=AT, ends_at=_END, graph_request_id="g", at=AT),
            [E.ACTIVE],
        )
    },
    A.SCHEDULE: {
        "schedule": (
            lambda r: r.schedule(
                starts_at=AT + timedelta(hours=1), ends_at=_END, graph_request_id="g", at=AT
            ),
            [E.SCHEDULED],
        )
    },
    A.AWAIT_PIM: {
        "await_pim": (lambda r: r.await_pim(graph_request_id="g", at=AT), [E.AWAITING_PIM])
    },
    A.ASK_SIGN_IN: {"ask_sign_in": (lambda r: r.ask_sign_in(why="MFA", at=AT), [E.SIGN_IN_NEEDED])},
    # The activation that follows says what happened: resuming itself is silent.
    A.RESUME: {"resume": (lambda r: r.resume(ADA, at=AT), [])},
    A.FAIL: {
        "mark_failed": (lambda r: r.mark_failed(reason="PIM said no", at=AT), [E.FAILED]),
        "close_in_pim": (lambda r: r.close_in_pim(outcome="TimedOut", at=AT), [E.FAILED]),
    },
    A.EXTEND: {
        "extend": (lambda r: r.extend(ADA, new_end=_END, at=AT), [E.EXTENDED]),
        # The sweep follows an end PIM moved outside pimbot: the card and the requester hear it.
        "adopt_end": (lambda r: r.adopt_end(new_end=_END, at=AT), [E.END_MOVED]),
    },
    A.DEACTIVATE: {"deactivate": (lambda r: r.deactivate(ADA, at=AT), [E.DEACTIVATED])},
    A.EXPIRE: {"expire": (lambda r: r.expire(at=AT), [E.EXPIRED])},
}
# Transitions in the table that a method of that action does not lead to, by design: ``deny``
# is an approver's decision on a pending request; ``close_in_pim`` follows PIM's own approval.
NOT_REACHABLE_YET = {
    (S.AWAITING_PIM, A.DENY, "deny"),
    (S.PENDING_APPROVAL, A.DENY, "close_in_pim"),
    (S.PENDING_APPROVAL, A.DENY, "record_pim_review"),
    (S.APPROVED, A.FAIL, "close_in_pim"),
    (S.SCHEDULED, A.FAIL, "close_in_pim"),
    (S.AWAITING_SIGN_IN, A.FAIL, "close_in_pim"),
}

WALK = [
    (status, action, name)
    for (status, action) in TRANSITIONS
    for name in BY_ACTION[action]
    if (status, action, name) not in NOT_REACHABLE_YET
]


@pytest.mark.parametrize(
    ("status", "action", "method"), WALK, ids=[f"{s.value}-{a.value}-{m}" for s, a, m in WALK]
)
def test_every_transition_records_its_event(status: S, action: A, method: str) -> None:
    request = in_status(status)
    step, expected = BY_ACTION[action][method]
    step(request)
    assert request.status is TRANSITIONS[(status, action)]
    assert request.new_events == expected
    assert request.updated_at == AT  # the outbox row is stamped with the change's time


def test_the_walk_covers_the_whole_table() -> None:
    assert set(BY_ACTION) == set(Action)
    walked = {(s, a) for s, a, _ in WALK} | {(s, a) for s, a, _ in NOT_REACHABLE_YET}
    assert walked == set(TRANSITIONS)


REFUSED = [
    (status, action, name)
    for status in S
    for action in A
    for name in BY_ACTION[action]
    if (status, action) not in TRANSITIONS or (status, action, name) in NOT_REACHABLE_YET
]


@pytest.mark.parametrize(
    ("status", "action", "method"),
    REFUSED,
    ids=[f"{s.value}-{a.value}-{m}" for s, a, m in REFUSED],
)
def test_a_refused_change_records_nothing(status: S, action: A, method: str) -> None:
    request = in_status(status)
    step, _ = BY_ACTION[action][method]
    with pytest.raises((InvalidTransition, AlreadyDecided, NotAuthorized)):
        step(request)
    assert request.new_events == []
    assert request.status is status


def test_an_approval_short_of_quorum_records_that_it_was_counted() -> None:
    request = in_status(S.PENDING_APPROVAL, quorum=2)
    assert request.approve(GRACE, at=AT) is False
    assert request.new_events == [E.APPROVAL_RECORDED]
    assert request.approve(ALAN, at=AT) is True
    assert request.new_events == [E.APPROVAL_RECORDED, E.APPROVED]


def _last_pim_stage() -> ElevationRequest:
    request = in_status(S.AWAITING_PIM)
    request.record_pim_review(GRACE, Decision.APPROVE, at=AT)
    request.new_events.clear()
    return request


def _active_awaiting_extension(quorum: int = 1) -> ElevationRequest:
    request = in_status(S.ACTIVE, quorum=quorum)
    request.ask_extension(ADA, extra=timedelta(hours=1), reason="more", at=AT)
    request.new_events.clear()
    return request


# Changes that are not status changes: (how to prepare, the change, what it records).
NON_STATUS: dict[str, tuple[Callable[[], ElevationRequest], Step, list[Event]]] = {
    "submit": (lambda: _submitted(), lambda r: None, [E.SUBMITTED]),
    "ask_extension": (
        lambda: in_status(S.ACTIVE),
        lambda r: r.ask_extension(ADA, extra=timedelta(hours=1), reason="more", at=AT),
        [E.EXTENSION_REQUESTED],
    ),
    # At quorum nothing yet: EXTENDED comes from ``extend`` once PIM moved the end.
    "approve_extension": (
        _active_awaiting_extension,
        lambda r: r.approve_extension(GRACE, at=AT),
        [],
    ),
    "approve_extension short of quorum": (
        lambda: _active_awaiting_extension(quorum=2),
        lambda r: r.approve_extension(GRACE, at=AT),
        [E.APPROVAL_RECORDED],
    ),
    "deny_extension": (
        _active_awaiting_extension,
        lambda r: r.deny_extension(GRACE, reason="enough", at=AT),
        [E.EXTENSION_DENIED],
    ),
    "claim_extension_key": (
        lambda: in_status(S.ACTIVE),
        lambda r: r.claim_extension_key("V0FORM", at=AT),
        [],
    ),
    # Part of a break-glass submission, whose SUBMITTED event raises the alarm.
    "open_review": (
        lambda: in_status(S.APPROVED, break_glass=True),
        lambda r: r.open_review(due=AT + timedelta(hours=1), at=AT),
        [],
    ),
    "mark_review_nudged": (
        lambda: in_status(S.ACTIVE, break_glass=True),
        lambda r: r.mark_review_nudged(next_due=AT + timedelta(hours=1), at=AT),
        [E.REVIEW_NUDGE],
    ),
    "acknowledge_review": (
        lambda: in_status(S.ACTIVE, break_glass=True),
        lambda r: r.acknowledge_review(GRACE, at=AT),
        [E.REVIEWED],
    ),
    "mark_nudged": (
        lambda: in_status(S.PENDING_APPROVAL),
        lambda r: r.mark_nudged(at=AT),
        [E.NUDGE],
    ),
    "schedule_deactivation": (
        lambda: in_status(S.ACTIVE),
        lambda r: r.schedule_deactivation(ADA, when=AT + timedelta(minutes=5), at=AT),
        [E.DEACTIVATION_SCHEDULED],
    ),
    "record_pim_review": (
        lambda: in_status(S.AWAITING_PIM),
        lambda r: r.record_pim_review(GRACE, Decision.APPROVE, at=AT),
        [E.PIM_STAGE_APPROVED],  # stage 1 of 2: the next stage's approvers get the card
    ),
    "record_pim_review of the last stage": (
        lambda: _last_pim_stage(),
        lambda r: r.record_pim_review(ALAN, Decision.APPROVE, at=AT),
        [E.APPROVAL_RECORDED],  # PIM provisions; the activation that follows says ACTIVE
    ),
    "escalate_pim_stage": (
        lambda: in_status(S.AWAITING_PIM),
        lambda r: r.escalate_pim_stage(at=AT),
        [E.PIM_ESCALATED],  # the stage's escalation approvers get the card
    ),
    "mark_reminded": (
        lambda: in_status(S.ACTIVE),
        lambda r: r.mark_reminded(at=AT),
        [E.REMINDER],
    ),
}


@pytest.mark.parametrize("name", list(NON_STATUS))
def test_every_other_change_records_its_event(name: str) -> None:
    prepare, step, expected = NON_STATUS[name]
    request = prepare()
    before = request.status
    step(request)
    assert request.new_events == expected
    assert request.status is before


def test_an_extension_at_quorum_waits_for_pim_then_says_extended() -> None:
    request = _active_awaiting_extension(quorum=2)
    request.approve_extension(GRACE, at=AT)
    assert not request.extension_ready
    request.approve_extension(ALAN, at=AT)
    assert request.extension_ready
    request.extend(GRACE, new_end=_END, at=AT)
    assert request.new_events == [E.APPROVAL_RECORDED, E.EXTENDED]
    assert not request.extension_ready


# Read-only, or helpers named above under the action they perform.
QUERIES = {
    "approvals",
    "approvals_needed",
    "decided_by",
    "has_decided",
    "approval_lapsed",
    "approved_extension_rounds",
    "moment",
    "snapshot",
}


def test_every_public_method_of_the_request_is_walked_here() -> None:
    methods = {
        name
        for name, member in inspect.getmembers(ElevationRequest)
        if not name.startswith("_") and callable(member)
    }
    walked = {name for names in BY_ACTION.values() for name in names}
    walked |= {name.split(" ")[0] for name in NON_STATUS}
    assert methods - QUERIES == walked


def test_a_snapshot_carries_no_pending_events() -> None:
    request = _submitted()
    request.approve(GRACE, at=AT)
    copy = request.snapshot()
    assert copy.new_events == [] and copy.new_audit_entries == []
    assert request.new_events == [E.SUBMITTED, E.APPROVED]  # the original keeps them


def test_the_system_moves_ends_only_by_following_pim() -> None:
    """``adopt_end`` is the sweep's; it audits as pimbot, and never shortens the role."""
    request = in_status(S.ACTIVE)
    request.adopt_end(new_end=_END, at=AT)
    assert request.new_audit_entries[-1].actor == SYSTEM.key
    with pytest.raises(InvalidTransition):
        request.adopt_end(new_end=T0 + timedelta(minutes=30), at=AT)
    assert request.new_events == [E.END_MOVED]


def test_ports_still_name_the_domains_events() -> None:
    from bot.domain import ports

    assert ports.Event is Event

"""The transition table is the spec: every (status, action) pair is checked here."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.elevation import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    Action,
    Decision,
    ElevationRequest,
    Person,
    RequestStatus,
    next_status,
)
from bot.domain.errors import AlreadyDecided, InvalidTransition, NotAuthorized
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0

S, A = RequestStatus, Action
EXPECTED = {
    (S.PENDING_APPROVAL, A.APPROVE): S.APPROVED,
    (S.PENDING_APPROVAL, A.DENY): S.DENIED,
    (S.PENDING_APPROVAL, A.CANCEL): S.CANCELLED,
    (S.PENDING_APPROVAL, A.TIME_OUT): S.EXPIRED,
    (S.APPROVED, A.ACTIVATE): S.ACTIVE,
    (S.APPROVED, A.SCHEDULE): S.SCHEDULED,
    (S.APPROVED, A.AWAIT_PIM): S.AWAITING_PIM,
    (S.APPROVED, A.FAIL): S.FAILED,
    (S.APPROVED, A.ASK_SIGN_IN): S.AWAITING_SIGN_IN,
    (S.AWAITING_SIGN_IN, A.ASK_SIGN_IN): S.AWAITING_SIGN_IN,
    (S.AWAITING_SIGN_IN, A.RESUME): S.APPROVED,
    (S.AWAITING_SIGN_IN, A.CANCEL): S.CANCELLED,
    (S.AWAITING_SIGN_IN, A.FAIL): S.FAILED,
    (S.SCHEDULED, A.ACTIVATE): S.ACTIVE,
    (S.SCHEDULED, A.CANCEL): S.CANCELLED,
    (S.SCHEDULED, A.FAIL): S.FAILED,
    (S.AWAITING_PIM, A.ACTIVATE): S.ACTIVE,
    (S.AWAITING_PIM, A.SCHEDULE): S.SCHEDULED,
    (S.AWAITING_PIM, A.DENY): S.DENIED,
    (S.AWAITING_PIM, A.CANCEL): S.CANCELLED,
    (S.AWAITING_PIM, A.FAIL): S.FAILED,
    (S.ACTIVE, A.EXTEND): S.ACTIVE,
    (S.ACTIVE, A.DEACTIVATE): S.DEACTIVATED,
    (S.ACTIVE, A.EXPIRE): S.EXPIRED,
}
ALL_PAIRS = [(status, action) for status in S for action in A]


@pytest.mark.parametrize(
    ("status", "action"), ALL_PAIRS, ids=[f"{s.value}-{a.value}" for s, a in ALL_PAIRS]
)
def test_every_status_action_pair_follows_the_table(status: S, action: A) -> None:
    if (status, action) in EXPECTED:
        assert next_status(status, action) is EXPECTED[(status, action)]
    else:
        with pytest.raises(InvalidTransition):
            next_status(status, action)


def test_the_table_in_code_is_exactly_the_documented_one() -> None:
    assert TRANSITIONS == EXPECTED


def test_terminal_statuses_have_no_way_out() -> None:
    assert {s for (s, _a) in TRANSITIONS} & TERMINAL_STATUSES == set()


def _request(quorum: int = 1) -> ElevationRequest:
    return ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="incident 42",
        at=T0,
        quorum=quorum,
    )


def test_submit_records_an_audit_entry() -> None:
    request = _request()
    assert [(e.action, e.to_status) for e in request.new_audit_entries] == [
        ("submit", "pending_approval")
    ]


def test_break_glass_review_is_opened_nudged_and_acknowledged_once() -> None:
    request = ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="outage 42, nobody reachable",
        at=T0,
        break_glass=True,
    )
    request.auto_approve(actor=ADA.key, at=T0, why="break-glass")
    request.open_review(due=T0 + timedelta(hours=1), at=T0)
    assert request.awaits_review and request.timers.review_due_at == T0 + timedelta(hours=1)
    request.mark_review_nudged(next_due=T0 + timedelta(hours=2), at=T0 + timedelta(hours=1))
    assert request.timers.review_due_at == T0 + timedelta(hours=2)
    request.acknowledge_review(GRACE, at=T0 + timedelta(hours=1, minutes=5))
    assert not request.awaits_review and request.timers.review_due_at is None
    assert request.review is not None and request.review.by == GRACE
    with pytest.raises(AlreadyDecided, match="Already acknowledged by <@"):
        request.acknowledge_review(ALAN, at=T0 + timedelta(hours=2))
    with pytest.raises(InvalidTransition):
        request.mark_review_nudged(next_due=T0 + timedelta(hours=3), at=T0 + timedelta(hours=2))
    assert [e.action for e in request.new_audit_entries][-3:] == [
        "break_glass_invoked",
        "break_glass_review_nudged",
        "break_glass_acknowledged",
    ]


def test_only_break_glass_is_reviewed() -> None:
    request = _request()
    with pytest.raises(InvalidTransition):
        request.open_review(due=T0, at=T0)
    with pytest.raises(InvalidTransition):
        request.acknowledge_review(GRACE, at=T0)


def test_quorum_of_two_needs_two_distinct_people() -> None:
    request = _request(quorum=2)
    assert request.approve(GRACE, at=T0) is False
    assert request.status is S.PENDING_APPROVAL
    with pytest.raises(AlreadyDecided, match="already approved"):
        request.approve(GRACE, at=T0)
    assert request.approve(ALAN, at=T0) is True
    assert request.status is S.APPROVED
    assert [e.action for e in request.new_audit_entries][-2:] == ["approval_recorded", "approve"]


def test_one_deny_ends_the_request_with_its_reason() -> None:
    request = _request(quorum=2)
    request.approve(GRACE, at=T0)
    request.deny(ALAN, reason="not during the freeze", at=T0)
    assert request.status is S.DENIED
    assert request.deny_reason == "not during the freeze"
    with pytest.raises(AlreadyDecided, match="Already denied by <@U0ALAN>"):
        request.approve(GRACE, at=T0)


def test_a_decided_request_says_who_decided() -> None:
    request = _request()
    request.approve(GRACE, at=T0)
    with pytest.raises(AlreadyDecided, match="Already approved by <@U0GRACE>"):
        request.approve(ALAN, at=T0)


def test_only_the_requester_cancels() -> None:
    request = _request()
    with pytest.raises(NotAuthorized):
        request.cancel(GRACE, at=T0)
    request.cancel(ADA, at=T0)
    assert request.status is S.CANCELLED


def test_extension_keeps_the_request_active_and_moves_its_end() -> None:
    request = _request()
    request.approve(GRACE, at=T0)
    request.mark_active(starts_at=T0, ends_at=T0 + timedelta(hours=1), graph_request_id="g1", at=T0)
    request.extend(ADA, new_end=T0 + timedelta(hours=2), at=T0 + timedelta(minutes=50))
    assert request.status is S.ACTIVE
    assert request.ends_at == T0 + timedelta(hours=2)
    assert request.extension.count == 1
    with pytest.raises(InvalidTransition, match="later"):
        request.extend(ADA, new_end=T0 + timedelta(hours=1), at=T0)


def test_timed_out_means_closed_undecided_and_nothing_else() -> None:
    def fresh() -> ElevationRequest:
        return ElevationRequest.submit(
            requester=ADA, role=GLOBAL_ADMIN, duration=timedelta(hours=1), reason="r", at=T0
        )

    pending, lapsed, ended = fresh(), fresh(), fresh()
    lapsed.time_out(at=T0 + timedelta(hours=24))
    ended.approve(GRACE, at=T0)
    ended.mark_active(starts_at=T0, ends_at=T0 + timedelta(hours=1), graph_request_id="g", at=T0)
    ended.expire(at=T0 + timedelta(hours=1))
    assert [r.timed_out for r in (pending, lapsed, ended)] == [False, True, False]
    assert lapsed.status is ended.status is RequestStatus.EXPIRED
    with pytest.raises(AlreadyDecided, match="timed out before anyone decided"):
        lapsed.approve(GRACE, at=T0 + timedelta(hours=25))


def _held_by_pim(stages: int = 2) -> ElevationRequest:
    request = _request()
    request.auto_approve(actor="pimbot", at=T0, why="PIM runs its own approval")
    request.await_pim(graph_request_id="g", at=T0, approval_id="approval-1", stages=stages)
    return request


def test_pims_stages_move_on_one_approval_at_a_time() -> None:
    request = _held_by_pim(stages=2)
    assert request.decidable_in_pim and request.pim_approval is not None
    request.record_pim_review(GRACE, Decision.APPROVE, at=T0)
    assert request.pim_approval.stage == 2 and request.status is RequestStatus.AWAITING_PIM
    request.record_pim_review(ALAN, Decision.APPROVE, at=T0)
    assert request.pim_approval.stage == 2  # the last stage: PIM provisions, pimbot follows
    assert [(d.pim_stage, d.approver.slack_user) for d in request.decisions] == [
        (1, GRACE.slack_user),
        (2, ALAN.slack_user),
    ]
    with pytest.raises(AlreadyDecided):
        request.record_pim_review(ALAN, Decision.APPROVE, at=T0)


def test_nobody_decides_pims_approval_of_their_own_request() -> None:
    request = _held_by_pim()
    with pytest.raises(NotAuthorized):
        request.record_pim_review(ADA, Decision.APPROVE, at=T0)
    same_entra = Person("T0OTHER", "U0ADA2", ADA.entra_id)
    with pytest.raises(NotAuthorized):
        request.record_pim_review(same_entra, Decision.APPROVE, at=T0)
    assert request.decisions == []


def test_a_denial_at_any_stage_ends_the_request() -> None:
    request = _held_by_pim(stages=2)
    request.record_pim_review(GRACE, Decision.APPROVE, at=T0)
    request.record_pim_review(ALAN, Decision.DENY, at=T0, reason="not during the freeze")
    assert request.status is RequestStatus.DENIED
    assert request.deny_reason == "not during the freeze"
    assert not request.decidable_in_pim

"""The domain side of approvals that hold: extension rules, self-extension in the policy file,
approval expiry, the extension idempotency key, and the decisions that are idempotent by state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.elevation import ElevationRequest, RequestStatus
from bot.domain.errors import AlreadyDecided, ConfigurationError, InvalidTransition
from bot.domain.rules import RolePolicy, RoleSettings, effective_rules, extension_needs_approval
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0

HOUR = timedelta(hours=1)
NEEDS_APPROVAL = RoleSettings(GLOBAL_ADMIN.role_definition_id, approval_required=True)
NO_APPROVAL = RoleSettings(GLOBAL_ADMIN.role_definition_id, approval_required=False)


def _rules(settings: RoleSettings, policy: RolePolicy | None = None):  # type: ignore[no-untyped-def]
    return effective_rules(GLOBAL_ADMIN, settings, policy or RolePolicy())


# --- extension_needs_approval -------------------------------------------------------------------


def test_an_approved_role_needs_approval_for_any_extension_by_default() -> None:
    rules = _rules(NEEDS_APPROVAL)
    assert extension_needs_approval(rules, approved_by_people=True, total=HOUR + timedelta(1))


def test_self_extension_allows_up_to_the_stated_total_only() -> None:
    rules = _rules(NEEDS_APPROVAL, RolePolicy(self_extension_up_to=2 * HOUR))
    assert not extension_needs_approval(rules, approved_by_people=True, total=2 * HOUR)
    assert extension_needs_approval(
        rules, approved_by_people=True, total=2 * HOUR + timedelta(minutes=5)
    )


def test_self_extension_never_loosens_pims_approval_for_extension() -> None:
    settings = RoleSettings(
        GLOBAL_ADMIN.role_definition_id,
        approval_required=True,
        approval_required_for_extension=True,
    )
    rules = _rules(settings, RolePolicy(self_extension_up_to=2 * HOUR))
    assert extension_needs_approval(rules, approved_by_people=True, total=HOUR)


def test_people_approved_it_even_if_the_role_no_longer_requires_approval() -> None:
    rules = _rules(NO_APPROVAL)
    assert extension_needs_approval(rules, approved_by_people=True, total=2 * HOUR)
    assert not extension_needs_approval(rules, approved_by_people=False, total=2 * HOUR)


def test_the_policys_extension_requires_approval_applies_to_every_role() -> None:
    rules = _rules(NO_APPROVAL, RolePolicy(extension_requires_approval=True))
    assert extension_needs_approval(rules, approved_by_people=False, total=HOUR)


# --- the policy file ---------------------------------------------------------------------------


def test_self_extension_is_read_per_role_and_from_defaults() -> None:
    policy = parse_policy(
        {
            "defaults": {"self_extension": {"up_to": "90m"}},
            "roles": {"Global Administrator": {"self_extension": {"up_to": "2h"}}},
        }
    )
    assert policy.policy_for(GLOBAL_ADMIN).self_extension_up_to == 2 * HOUR
    assert policy.defaults.self_extension_up_to == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"self_extension": {"up_to": 2}}, "with a unit"),
        ({"self_extension": {"up_to": "30h"}}, "between 5m and 24h"),
        ({"self_extension": {"upto": "2h"}}, "unknown key"),
        ({"self_extension": {}}, "self_extension.up_to"),
        (
            {"self_extension": {"up_to": "2h"}, "extension_requires_approval": True},
            "contradicts extension_requires_approval",
        ),
        ({"self_extension": {"up_to": "3h"}, "max_duration": "2h"}, "longer than max_duration"),
    ],
)
def test_bad_self_extension_is_refused_at_start_up(rules: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_policy({"roles": {"Global Administrator": rules}})
    assert message in str(caught.value.user_message) or message in str(caught.value)


# --- approval expiry ---------------------------------------------------------------------------


def _approved(**fields: object) -> ElevationRequest:
    request = ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=HOUR, reason="incident 4711", at=T0, **fields
    )  # type: ignore[arg-type]
    request.approve(GRACE, at=T0)
    return request


def test_an_approval_lapses_after_its_ttl() -> None:
    request = _approved()
    assert not request.approval_lapsed(at=T0 + HOUR, ttl=HOUR)
    assert request.approval_lapsed(at=T0 + HOUR + timedelta(seconds=1), ttl=HOUR)


def test_an_approval_for_a_future_start_is_good_until_that_start_plus_ttl() -> None:
    request = _approved(requested_start=T0 + 24 * HOUR)
    assert not request.approval_lapsed(at=T0 + 25 * HOUR, ttl=HOUR)
    assert request.approval_lapsed(at=T0 + 25 * HOUR + timedelta(seconds=1), ttl=HOUR)


def test_only_an_approved_request_can_lapse() -> None:
    request = _approved()
    request.mark_active(starts_at=T0, ends_at=T0 + HOUR, graph_request_id="g", at=T0)
    assert not request.approval_lapsed(at=T0 + 48 * HOUR, ttl=HOUR)


# --- idempotency -------------------------------------------------------------------------------


def _active() -> ElevationRequest:
    request = _approved()
    request.mark_active(starts_at=T0, ends_at=T0 + HOUR, graph_request_id="g", at=T0)
    return request


def test_the_same_extension_form_is_claimed_once() -> None:
    request = _active()
    request.claim_extension_key("V0EXTEND1", at=T0)
    with pytest.raises(AlreadyDecided, match="already sent"):
        request.claim_extension_key("V0EXTEND1", at=T0)
    request.claim_extension_key("V0EXTEND2", at=T0)  # a new form is a new extension


def test_an_extension_key_cannot_be_claimed_on_an_ended_role() -> None:
    request = _active()
    request.deactivate(ADA, at=T0 + HOUR / 2)
    with pytest.raises(InvalidTransition):
        request.claim_extension_key("V0EXTEND1", at=T0)


def test_approve_deny_cancel_and_deactivate_are_idempotent_by_state() -> None:
    pending = ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=HOUR, reason="incident 4711", at=T0, quorum=2
    )
    pending.approve(GRACE, at=T0)
    with pytest.raises(AlreadyDecided):
        pending.approve(GRACE, at=T0)  # a replayed click counts once
    pending.deny(ALAN, reason="no", at=T0)
    with pytest.raises(AlreadyDecided):
        pending.deny(ALAN, reason="no", at=T0)
    cancelled = ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=HOUR, reason="incident 4711", at=T0
    )
    cancelled.cancel(ADA, at=T0)
    with pytest.raises(InvalidTransition):
        cancelled.cancel(ADA, at=T0)
    active = _active()
    active.deactivate(ADA, at=T0 + HOUR / 2)
    with pytest.raises(InvalidTransition):
        active.deactivate(ADA, at=T0 + HOUR / 2)


def test_approved_extension_rounds_exclude_the_one_still_waiting() -> None:
    request = _active()
    request.ask_extension(ADA, extra=HOUR, reason="more", at=T0)
    assert request.approve_extension(GRACE, at=T0)
    request.extend(GRACE, new_end=T0 + 2 * HOUR, at=T0)
    request.ask_extension(ADA, extra=HOUR, reason="more", at=T0)
    assert request.approved_extension_rounds() == [1]
    assert request.status is RequestStatus.ACTIVE

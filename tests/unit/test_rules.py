"""Effective rules (PIM tightened by policy) and the checks on a person's form."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.authority import ApproverSet, check_may_decide
from bot.domain.elevation import ElevationRequest, Person
from bot.domain.errors import NotAuthorized
from bot.domain.rules import (
    ApprovalMode,
    Mode,
    RequestForm,
    RolePolicy,
    RoleSettings,
    effective_rules,
    validate_request,
)
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0

PIM = RoleSettings(
    GLOBAL_ADMIN.role_definition_id,
    max_duration=timedelta(hours=8),
    ticket_required=False,
    approval_required=True,
)


NO_POLICY = RolePolicy()

NO_POLICY = RolePolicy()


def _rules(settings: RoleSettings = PIM, policy: RolePolicy = NO_POLICY):  # type: ignore[no-untyped-def]
    return effective_rules(GLOBAL_ADMIN, settings, policy, default_channel="C0DEFAULT")


def _form(**overrides: object) -> RequestForm:
    values: dict[str, object] = dict(
        role_definition_id=GLOBAL_ADMIN.role_definition_id,
        duration=timedelta(hours=1),
        reason="incident 4711",
    )
    values.update(overrides)
    return RequestForm(**values)  # type: ignore[arg-type]


def test_policy_can_shorten_but_never_lengthen_the_maximum() -> None:
    assert _rules(policy=RolePolicy(max_duration=timedelta(hours=2))).max_duration == timedelta(
        hours=2
    )
    longer = _rules(policy=RolePolicy(max_duration=timedelta(hours=12)))
    assert longer.max_duration == timedelta(hours=8)
    assert longer.max_duration_source == "PIM"


def test_auto_approval_is_ignored_where_pim_requires_approval() -> None:
    assert _rules(policy=RolePolicy(approval=ApprovalMode.AUTO)).approval_required is True
    no_pim_approval = RoleSettings(GLOBAL_ADMIN.role_definition_id, approval_required=False)
    assert (
        _rules(no_pim_approval, RolePolicy(approval=ApprovalMode.AUTO)).approval_required is False
    )
    assert _rules(no_pim_approval, RolePolicy(approval=ApprovalMode.REQUIRED)).approval_required


def test_ticket_requirement_comes_from_either_side() -> None:
    assert _rules(policy=RolePolicy(ticket_required=True)).ticket_required
    assert _rules(RoleSettings("x", ticket_required=True)).ticket_required
    assert not _rules().ticket_required


def test_channel_falls_back_to_the_default_and_approvers_to_pim() -> None:
    rules = _rules()
    assert rules.approvals_channel == "C0DEFAULT"
    assert [s.as_text() for s in rules.approvers] == ["pim"]


def test_a_good_form_has_no_errors() -> None:
    assert validate_request(_form(), _rules(), now=T0) == {}


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"duration": timedelta(minutes=2)}, "duration", "Too short"),
        ({"duration": timedelta(hours=9)}, "duration", "at most 8h"),
        ({"duration": None}, "duration", "how long"),
        ({"reason": "  "}, "reason", "Say why"),
        ({"reason": "x" * 470}, "reason", "at most 300"),
        ({"reason": "why\x00not"}, "reason", "control character"),
        ({"start": T0 - timedelta(minutes=5)}, "start", "in the past"),
        ({"start": T0 + timedelta(days=31)}, "start", "30 days"),
        ({"ticket_number": "x" * 101}, "ticket_number", "at most 100"),
        ({"ticket_number": "INC 1\x00"}, "ticket_number", "control characters"),
        ({"ticket_system": "Jira"}, "ticket_number", "needs a ticket number"),
        ({"break_glass": True}, "break_glass", "break-glass list"),
    ],
)
def test_bad_input_gets_a_message_on_its_field(
    overrides: dict[str, object], field: str, words: str
) -> None:
    errors = validate_request(_form(**overrides), _rules(), now=T0)
    assert field in errors
    assert words in errors[field]


def test_ticket_pattern_and_requirement() -> None:
    rules = _rules(policy=RolePolicy(ticket_required=True, ticket_pattern=r"INC-\d+"))
    assert "needs a ticket" in validate_request(_form(), rules, now=T0)["ticket_number"]
    assert (
        "does not look like"
        in validate_request(_form(ticket_number="JIRA-1"), rules, now=T0)["ticket_number"]
    )
    assert validate_request(_form(ticket_number="INC-42"), rules, now=T0) == {}


def test_roles_needing_mfa_are_refused_in_broker_mode_with_a_way_forward() -> None:
    rules = _rules(RoleSettings("x", mfa_required=True))
    message = validate_request(_form(), rules, now=T0, mode=Mode.BROKER)["role"]
    assert "multi-factor" in message and "Azure portal" in message
    acrs = _rules(RoleSettings("x", authentication_context="c1"))
    assert "authentication context" in validate_request(_form(), acrs, now=T0)["role"]
    assert "role" not in validate_request(_form(), rules, now=T0, mode=Mode.DELEGATED)


BREAK_GLASS_REASON = "Production outage INC-4711, nobody reachable"


def test_break_glass_allowed_for_listed_people_where_the_policy_lets_it_bypass_pim() -> None:
    rules = _rules(
        policy=RolePolicy(
            break_glass_requesters=("U0ADA",), break_glass_overrides_pim_approval=True
        )
    )
    form = _form(break_glass=True, reason=BREAK_GLASS_REASON)
    assert validate_request(form, rules, now=T0, requester_slack_id="U0ADA") == {}
    assert rules.offers_break_glass("U0ADA") and not rules.offers_break_glass("U0ALAN")


def test_break_glass_never_bypasses_pim_approval_unless_the_policy_says_so() -> None:
    rules = _rules(policy=RolePolicy(break_glass_requesters=("U0ADA",)))
    form = _form(break_glass=True, reason=BREAK_GLASS_REASON)
    errors = validate_request(form, rules, now=T0, requester_slack_id="U0ADA")
    assert "PIM requires approval" in errors["break_glass"]
    assert not rules.offers_break_glass("U0ADA")


def test_break_glass_where_only_the_policy_asks_for_approval_needs_no_override() -> None:
    no_pim_approval = RoleSettings(GLOBAL_ADMIN.role_definition_id, approval_required=False)
    policy = RolePolicy(approval=ApprovalMode.REQUIRED, break_glass_requesters=("U0ADA",))
    rules = _rules(no_pim_approval, policy)
    form = _form(break_glass=True, reason=BREAK_GLASS_REASON)
    assert validate_request(form, rules, now=T0, requester_slack_id="U0ADA") == {}


def test_break_glass_needs_a_real_reason_and_a_role_that_needs_approval() -> None:
    policy = RolePolicy(break_glass_requesters=("U0ADA",), break_glass_overrides_pim_approval=True)
    short = validate_request(
        _form(break_glass=True, reason="outage"),
        _rules(policy=policy),
        now=T0,
        requester_slack_id="U0ADA",
    )
    assert "at least 20" in short["reason"]
    free = _rules(RoleSettings(GLOBAL_ADMIN.role_definition_id, approval_required=False), policy)
    errors = validate_request(
        _form(break_glass=True, reason=BREAK_GLASS_REASON), free, now=T0, requester_slack_id="U0ADA"
    )
    assert "untick break glass" in errors["break_glass"]


def _pending() -> ElevationRequest:
    return ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=timedelta(hours=1), reason="incident", at=T0
    )


def test_requester_cannot_approve_own_request_even_from_another_slack_account() -> None:
    approvers = ApproverSet(frozenset({"U0ADA", "U0ADA2"}), frozenset())
    with pytest.raises(NotAuthorized, match="your own"):
        check_may_decide(_pending(), ADA, approvers)
    second_account = Person("T0OTHER", "U0ADA2", ADA.entra_id)
    with pytest.raises(NotAuthorized, match="your own"):
        check_may_decide(_pending(), second_account, approvers)


def test_only_people_in_the_approver_set_may_decide() -> None:
    approvers = ApproverSet(frozenset({"U0GRACE"}), frozenset({ALAN.entra_id or ""}))
    check_may_decide(_pending(), GRACE, approvers)
    check_may_decide(_pending(), ALAN, approvers)  # by Entra id
    with pytest.raises(NotAuthorized, match="not an approver"):
        check_may_decide(_pending(), Person("T0PIMBOT", "U0EVE"), approvers)

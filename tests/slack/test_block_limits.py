"""Every builder stays inside Slack's limits with the worst input people and PIM can produce."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.models.blocks import (
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.elevation import ElevationRequest, Person, RoleRef, Ticket
from bot.domain.ports import ActiveAssignment, EligibleRole, Event
from bot.domain.rules import MAX_REASON_LENGTH, MAX_TICKET_LENGTH
from handlers.blocks import (
    check_message_limits,
    check_view_limits,
    deny_reason_modal,
    extend_modal,
    help_blocks,
    help_text,
    home_view,
    info_card,
    loading_modal,
    notice_modal,
    request_card,
    request_modal,
    requester_message,
    review_card,
)
from tests.slack.slack_fixtures import ALAN, GRACE, NOW, make_request, make_rules

# Escaping makes this three times longer: every "<", ">" and "&" grows to 4-5 characters.
EVIL_REASON = ("<!channel> & " * 100)[:MAX_REASON_LENGTH]
LONG_NAME = "Privileged Authentication Administrator for the <Contoso> & Fabrikam tenants " * 4
ROLES = [RoleRef(f"{i:08d}-0000-0000-0000-000000000000", f"{LONG_NAME} #{i}") for i in range(200)]


def worst_request(**overrides: object) -> ElevationRequest:
    fields: dict[str, object] = {
        "requester": Person("T0PIMBOT", "U0ADA", display_name=EVIL_REASON),
        "role": RoleRef(
            ROLES[0].role_definition_id, LONG_NAME, "/administrativeUnits/" + "x" * 900
        ),
        "reason": EVIL_REASON,
        "ticket": Ticket("<!here>&" * (MAX_TICKET_LENGTH // 8), "<!here>&" * 12),
        "quorum": 5,
        "requested_start": NOW + timedelta(days=2),
    }
    fields.update(overrides)
    request = make_request(**fields)
    for approver in (GRACE, ALAN):
        request.approve(approver, at=NOW)
    return request


def worst_active() -> ElevationRequest:
    request = make_request(reason=EVIL_REASON, role=RoleRef("r", LONG_NAME))
    request.approve(GRACE, at=NOW)
    request.mark_active(
        starts_at=NOW, ends_at=NOW + timedelta(hours=8), graph_request_id="g", at=NOW
    )
    return request


def worst_denied() -> ElevationRequest:
    request = make_request(reason=EVIL_REASON, role=RoleRef("r", LONG_NAME))
    request.deny(GRACE, reason=EVIL_REASON, at=NOW)
    return request


def worst_failed() -> ElevationRequest:
    request = make_request(reason=EVIL_REASON, role=RoleRef("r", LONG_NAME))
    request.approve(GRACE, at=NOW)
    request.mark_failed(reason=EVIL_REASON * 10, at=NOW)
    return request


def assert_message_ok(text: str, blocks: list) -> None:  # type: ignore[type-arg]
    assert check_message_limits(blocks, text) == []
    assert "<!channel>" not in text


def assert_view_ok(view: View) -> None:
    assert check_view_limits(view) == []


def test_approver_card_with_everything_at_its_limit() -> None:
    recent = [worst_active() for _ in range(50)]
    card = request_card(
        worst_request(),
        recent_elevations=recent,
        approver_names=[EVIL_REASON] * 300,
    )
    assert_message_ok(card.text, card.blocks)


def test_info_card_at_its_limit() -> None:
    request = make_request(reason=EVIL_REASON, role=RoleRef("r", LONG_NAME), break_glass=True)
    request.auto_approve(actor="pimbot", at=NOW, why="break-glass")
    card = info_card(request, why=EVIL_REASON * 5)
    assert_message_ok(card.text, card.blocks)


@pytest.mark.parametrize("reminder", [False, True])
@pytest.mark.parametrize("reviewed", [False, True])
def test_review_card_at_its_limit(reminder: bool, reviewed: bool) -> None:
    request = make_request(reason=EVIL_REASON, role=RoleRef("r", LONG_NAME), break_glass=True)
    request.auto_approve(actor="pimbot", at=NOW, why="break-glass")
    request.open_review(due=NOW + timedelta(hours=1), at=NOW)
    if reviewed:
        request.acknowledge_review(Person("T0", "U0GRACE", display_name=EVIL_REASON), at=NOW)
    card = review_card(request, reminder=reminder)
    assert_message_ok(card.text, card.blocks)


@pytest.mark.parametrize("event", list(Event))
@pytest.mark.parametrize("make", [worst_request, worst_active, worst_denied, worst_failed])
def test_requester_messages_at_their_limit(event: Event, make: object) -> None:
    message = requester_message(make(), event, "Pacific/Chatham")  # type: ignore[operator]
    assert_message_ok(message.text, message.blocks)


def test_request_modal_with_two_hundred_long_roles_in_many_groups() -> None:
    eligible = [
        EligibleRole(role, member_type="Group", via_group_id=f"group-{i % 150}")
        for i, role in enumerate(ROLES)
    ]
    active = [ActiveAssignment(r, "Activated", NOW, NOW + timedelta(hours=1)) for r in ROLES]
    rules = {
        r.role_definition_id: make_rules(
            r,
            ticket_required=True,
            ticket_pattern="INC" + "\\d" * 500,
            break_glass_requesters=("U0ADA",),
            quorum=3,
            mfa_required=True,
        )
        for r in ROLES
    }
    names = {f"group-{i}": LONG_NAME for i in range(150)}
    for selected in (None, ROLES[199].role_definition_id):
        view = request_modal(
            eligible,
            active,
            rules,
            selected,
            private_metadata="x" * 3000,
            requester_slack_id="U0ADA",
            group_names=names,
        )
        assert_view_ok(view)


def test_other_modals_at_their_limit() -> None:
    assert_view_ok(loading_modal(LONG_NAME, EVIL_REASON * 10))
    assert_view_ok(notice_modal(LONG_NAME, EVIL_REASON * 10))
    assert_view_ok(deny_reason_modal("r" * 36, request=worst_request()))
    assert_view_ok(extend_modal(worst_active(), timedelta(hours=24), needs_approval=True))


def test_home_tab_with_long_lists_stays_under_one_hundred_blocks() -> None:
    view = home_view(
        [EligibleRole(r) for r in ROLES],
        [ActiveAssignment(r, "Activated", NOW, None) for r in ROLES],
        [worst_active() for _ in range(100)] + [make_request() for _ in range(100)],
        [worst_request() for _ in range(100)],
        tz_name="Asia/Kolkata",
    )
    assert_view_ok(view)


def test_help_fits() -> None:
    assert_message_ok(help_text(), help_blocks())


# --- the checks themselves can fail ------------------------------------------------------------


def test_check_message_limits_reports_what_slack_would_refuse() -> None:
    blocks = [SectionBlock(text="x", block_id=f"b{i}") for i in range(51)]
    assert any("51 blocks" in p for p in check_message_limits(blocks))
    same = [SectionBlock(text="x", block_id="same"), SectionBlock(text="y", block_id="same")]
    assert any("duplicate" in p for p in check_message_limits(same))
    assert any("fallback" in p for p in check_message_limits([SectionBlock(text="x")], " "))


def test_check_view_limits_reports_long_inputs_and_missing_submit() -> None:
    view = View(
        type="modal",
        title="Too many",
        blocks=[
            InputBlock(
                label="Reason",
                block_id="reason",
                element=PlainTextInputElement(action_id="r", max_length=5000),
            )
        ],
    )
    problems = check_view_limits(view)
    assert any("max_length" in p for p in problems)
    assert any("no submit" in p for p in problems)
    big = View(type="home", blocks=[SectionBlock(text="x") for _ in range(100)])
    assert check_view_limits(big) == []
    raw = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    assert any("101 blocks" in p for p in check_view_limits(raw))

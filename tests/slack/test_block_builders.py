"""Block Kit builders: what each surface shows, which buttons it offers, and that text is safe."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.domain.elevation import ElevationRequest, Person, RequestStatus, RoleRef
from bot.domain.ports import ActiveAssignment, EligibleRole, Event
from handlers import text
from handlers.blocks import (
    BREAK_GLASS_VALUE,
    STATUS_LABELS,
    SUBCOMMANDS,
    deny_reason_modal,
    extend_modal,
    help_blocks,
    help_text,
    home_view,
    info_card,
    request_card,
    request_modal,
    requester_message,
    review_card,
)
from handlers.ids import ActionId, BlockId, CallbackId
from tests.slack.slack_fixtures import (
    ADA,
    ALAN,
    EXCHANGE_ADMIN,
    GLOBAL_ADMIN,
    GRACE,
    NOW,
    make_request,
    make_rules,
)

EVIL = "<!channel> ping & <@U0GRACE> <https://evil.example|click> <!subteam^S0APPROVERS>"


def dump(blocks: list[Block] | View) -> str:
    if isinstance(blocks, View):
        return json.dumps(blocks.to_dict())
    return json.dumps([b.to_dict() for b in blocks])


def block(blocks: list[Block] | View, block_id: str) -> dict[str, Any]:
    items = blocks.blocks if isinstance(blocks, View) else blocks
    for b in items or []:
        data = b.to_dict() if isinstance(b, Block) else b
        if data.get("block_id") == block_id:
            return data
    raise AssertionError(f"no block {block_id}")


def action_ids(blocks: list[Block]) -> list[str]:
    ids = []
    for b in blocks:
        data = b.to_dict()
        for element in [*data.get("elements", []), data.get("accessory") or {}]:
            if element.get("type") == "button":
                ids.append(element["action_id"])
    return ids


def active_request(**overrides: Any) -> ElevationRequest:
    request = make_request(**overrides)
    request.approve(GRACE, at=NOW)
    request.mark_active(
        starts_at=NOW, ends_at=NOW + timedelta(hours=2), graph_request_id="g-1", at=NOW
    )
    return request


def in_status(status: RequestStatus) -> ElevationRequest:
    request = make_request()
    if status is RequestStatus.PENDING_APPROVAL:
        return request
    if status is RequestStatus.CANCELLED:
        request.cancel(ADA, at=NOW)
    elif status is RequestStatus.DENIED:
        request.deny(GRACE, reason="Not during the freeze", at=NOW)
    elif status is RequestStatus.EXPIRED:
        request.time_out(at=NOW)
    else:
        request.approve(GRACE, at=NOW)
        later = NOW + timedelta(hours=1)
        if status is RequestStatus.SCHEDULED:
            request.schedule(starts_at=later, ends_at=later, graph_request_id=None, at=NOW)
        elif status is RequestStatus.AWAITING_PIM:
            request.await_pim(graph_request_id="g", at=NOW)
        elif status is RequestStatus.AWAITING_SIGN_IN:
            request.ask_sign_in(why="the role requires MFA", at=NOW)
        elif status is RequestStatus.FAILED:
            request.mark_failed(reason="PIM said the role needs MFA", at=NOW)
        elif status is not RequestStatus.APPROVED:
            request.mark_active(starts_at=NOW, ends_at=later, graph_request_id="g", at=NOW)
            if status is RequestStatus.DEACTIVATED:
                request.deactivate(ADA, at=NOW)
    assert request.status is status
    return request


# --- text safety ---------------------------------------------------------------------------------


def test_escape_replaces_only_the_three_control_characters_ampersand_first() -> None:
    assert text.escape("a & <b> \"c\" 'd'") == "a &amp; &lt;b&gt; \"c\" 'd'"
    assert text.escape("&lt;") == "&amp;lt;"


def test_truncate_adds_an_ellipsis_and_never_splits_an_entity() -> None:
    assert text.truncate("short", 10) == "short"
    assert text.truncate("abcdefghij", 5) == "abcd…"
    assert text.truncate(text.escape("ab<<<<"), 6) == "ab…"  # not "ab&lt…"
    assert text.truncate(text.escape("ab<<<<"), 8) == "ab&lt;…"
    assert len(text.mrkdwn("&" * 1000, 100)) <= 100


def test_a_reason_full_of_mentions_pings_nobody_on_the_card() -> None:
    card = request_card(make_request(reason=EVIL), approver_names=[EVIL])
    rendered = dump(card.blocks) + card.text
    for token in ("<!channel>", "<@U0GRACE>", "<https://evil", "<!subteam"):
        assert token not in rendered
    assert "&lt;!channel&gt; ping &amp;" in rendered


def test_fallback_text_is_always_present_and_escaped() -> None:
    evil_role = RoleRef("r-1", "<!here> Role & Co")
    card = request_card(make_request(role=evil_role))
    assert card.text
    assert "<!here>" not in card.text
    assert "&lt;!here&gt; Role &amp; Co" in card.text
    for event in Event:
        message = requester_message(active_request(role=evil_role), event, "UTC")
        assert message.text and "<!here>" not in message.text


# --- the approver card ---------------------------------------------------------------------------


def test_pending_card_offers_approve_and_deny_carrying_only_the_request_id() -> None:
    request = make_request()
    card = request_card(request)
    actions = block(card.blocks, BlockId.DECISION_ACTIONS)
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert set(buttons) == {ActionId.APPROVE, ActionId.DENY}
    assert {b["value"] for b in buttons.values()} == {request.id}
    assert buttons[ActionId.APPROVE]["confirm"]["title"]["text"] == "Approve this request?"


@pytest.mark.parametrize(
    "status", [s for s in RequestStatus if s is not RequestStatus.PENDING_APPROVAL]
)
def test_decided_cards_have_no_decision_buttons(status: RequestStatus) -> None:
    card = request_card(in_status(status))
    assert ActionId.APPROVE not in action_ids(card.blocks)
    assert ActionId.DENY not in action_ids(card.blocks)


@pytest.mark.parametrize("status", list(RequestStatus))
def test_every_status_has_one_label_and_the_card_shows_it(status: RequestStatus) -> None:
    label = STATUS_LABELS[status]
    assert label.emoji.startswith(":") and label.text
    status_text = block(request_card(in_status(status)).blocks, BlockId.STATUS)["text"]["text"]
    assert status_text.startswith(f"{label.emoji} *{label.text}*")


def test_quorum_progress_reads_one_of_two_and_names_who_approved() -> None:
    request = make_request(quorum=2)
    assert request.approve(GRACE, at=NOW) is False
    status_text = block(request_card(request).blocks, BlockId.STATUS)["text"]["text"]
    assert "1 of 2 approvals" in status_text
    assert "<@U0GRACE>" in status_text
    assert ActionId.APPROVE in action_ids(request_card(request).blocks)


def test_explicit_quorum_progress_wins() -> None:
    card = request_card(make_request(quorum=3), quorum_progress=(2, 3))
    assert "2 of 3 approvals" in block(card.blocks, BlockId.STATUS)["text"]["text"]


def test_denied_card_shows_who_denied_and_why_escaped() -> None:
    request = make_request()
    request.deny(ALAN, reason="Use <!here> the read-only role", at=NOW)
    status_text = block(request_card(request).blocks, BlockId.STATUS)["text"]["text"]
    assert "by <@U0ALAN>" in status_text
    assert "Use &lt;!here&gt; the read-only role" in status_text


def test_card_shows_requester_ticket_recent_elevations_and_approvers() -> None:
    recent = [active_request(role=EXCHANGE_ADMIN) for _ in range(7)]
    card = request_card(
        make_request(), recent_elevations=recent, approver_names=["Grace Hopper", "Alan Turing"]
    )
    rendered = dump(card.blocks)
    assert "<@U0ADA>" in rendered
    assert "INC0012345 (ServiceNow)" in rendered
    assert "Exchange Administrator for 2h" in rendered
    assert "and 2 more" in rendered
    assert "Can approve: Grace Hopper, Alan Turing" in rendered


def test_info_card_for_break_glass_says_so_and_has_no_buttons() -> None:
    request = make_request(break_glass=True)
    request.auto_approve(actor="pimbot", at=NOW, why="break-glass")
    card = info_card(request, why="Break glass invoked by the requester")
    assert card.blocks[0].to_dict()["text"]["text"].startswith("Break-glass activation")
    assert action_ids(card.blocks) == []


def test_review_card_asks_for_acknowledgement_then_says_who_gave_it() -> None:
    request = make_request(break_glass=True)
    request.auto_approve(actor="U0ADA", at=NOW, why="break-glass")
    request.open_review(due=NOW + timedelta(hours=1), at=NOW)
    card = review_card(request)
    assert action_ids(card.blocks) == [ActionId.ACKNOWLEDGE_BREAK_GLASS.value]
    assert "Needs review" in dump(card.blocks)
    assert "still needs review" in card.text
    reminder = review_card(request, reminder=True)
    assert "Still not reviewed" in dump(reminder.blocks)
    request.acknowledge_review(Person("T0", "U0GRACE", "e-grace"), at=NOW + timedelta(minutes=5))
    done = review_card(request)
    assert action_ids(done.blocks) == []
    assert "Acknowledged* by <@U0GRACE>" in dump(done.blocks)


# --- the requester's DMs -------------------------------------------------------------------------


def test_active_dm_shows_the_end_in_the_persons_zone_and_utc_with_both_buttons() -> None:
    message = requester_message(active_request(), Event.ACTIVE, "Europe/Berlin")
    rendered = dump(message.blocks)
    assert "16:00 CEST on Tue 14 May (14:00 UTC)" in rendered
    assert action_ids(message.blocks) == [ActionId.EXTEND, ActionId.DEACTIVATE]


def test_unknown_time_zone_falls_back_to_utc() -> None:
    message = requester_message(active_request(), Event.ACTIVE, "Mars/Olympus_Mons")
    assert "14:00 UTC on Tue 14 May" in message.text


def test_reminder_offers_extend_and_deactivate_now() -> None:
    message = requester_message(active_request(), Event.REMINDER, "America/New_York")
    assert "10:00 EDT" in message.text
    assert action_ids(message.blocks) == [ActionId.EXTEND, ActionId.DEACTIVATE]


def test_denied_dm_carries_the_reason() -> None:
    request = make_request()
    request.deny(GRACE, reason="Ask again after the change freeze", at=NOW)
    message = requester_message(request, Event.DENIED)
    assert "<@U0GRACE> denied" in message.text
    assert message.text.endswith("Reason: Ask again after the change freeze")
    assert "Ask again after the change freeze" in dump(message.blocks)
    assert action_ids(message.blocks) == []


def test_failed_dm_says_why_in_words() -> None:
    message = requester_message(in_status(RequestStatus.FAILED), Event.FAILED)
    assert "PIM said the role needs MFA" in message.text


@pytest.mark.parametrize("status", [RequestStatus.EXPIRED, RequestStatus.DEACTIVATED])
def test_finished_elevations_offer_no_buttons(status: RequestStatus) -> None:
    event = Event.EXPIRED if status is RequestStatus.EXPIRED else Event.DEACTIVATED
    assert action_ids(requester_message(in_status(status), event).blocks) == []


def test_submitted_dm_lets_the_requester_cancel() -> None:
    message = requester_message(make_request(), Event.SUBMITTED)
    assert action_ids(message.blocks) == [ActionId.CANCEL]


# --- the request modal ---------------------------------------------------------------------------


def role_select(view: View) -> dict[str, Any]:
    return block(view, BlockId.ROLE)["element"]  # type: ignore[no-any-return]


def test_roles_are_grouped_deduplicated_and_active_ones_marked() -> None:
    eligible = [
        EligibleRole(GLOBAL_ADMIN),
        EligibleRole(EXCHANGE_ADMIN, member_type="Group", via_group_id="g-1"),
        EligibleRole(GLOBAL_ADMIN, member_type="Group", via_group_id="g-1"),
    ]
    active = [ActiveAssignment(GLOBAL_ADMIN, "Activated", NOW, NOW + timedelta(hours=2))]
    view = request_modal(eligible, active, {}, group_names={"g-1": "Messaging admins"})
    groups = role_select(view)["option_groups"]
    assert [g["label"]["text"] for g in groups] == ["Eligible", "Via group Messaging admins"]
    assert [o["text"]["text"] for o in groups[0]["options"]] == [
        "Global Administrator (active until 14:00 UTC)"
    ]
    values = [o["value"] for g in groups for o in g["options"]]
    assert len(values) == len(set(values)) == 2


def test_duration_is_bounded_by_the_selected_roles_maximum() -> None:
    rules = {GLOBAL_ADMIN.role_definition_id: make_rules(max_duration=timedelta(hours=3))}
    view = request_modal([EligibleRole(GLOBAL_ADMIN)], [], rules, GLOBAL_ADMIN.role_definition_id)
    duration = block(view, BlockId.DURATION)
    assert duration["label"]["text"] == "Duration (at most 3h)"
    assert [o["value"] for o in duration["element"]["options"]] == [
        "PT15M",
        "PT30M",
        "PT1H",
        "PT2H",
        "PT3H",
    ]
    assert role_select(view)["initial_option"]["value"] == GLOBAL_ADMIN.role_definition_id


def test_ticket_is_required_for_a_selected_role_that_needs_one() -> None:
    rules = {GLOBAL_ADMIN.role_definition_id: make_rules(ticket_required=True)}
    view = request_modal([EligibleRole(GLOBAL_ADMIN)], [], rules, GLOBAL_ADMIN.role_definition_id)
    ticket = block(view, BlockId.TICKET_NUMBER)
    assert ticket["label"]["text"] == "Ticket number (required)"
    assert ticket.get("optional", False) is False


def test_without_a_selection_the_hint_names_roles_needing_a_ticket() -> None:
    rules = {
        GLOBAL_ADMIN.role_definition_id: make_rules(ticket_required=True),
        EXCHANGE_ADMIN.role_definition_id: make_rules(EXCHANGE_ADMIN),
    }
    view = request_modal([EligibleRole(GLOBAL_ADMIN), EligibleRole(EXCHANGE_ADMIN)], [], rules)
    ticket = block(view, BlockId.TICKET_NUMBER)
    assert ticket["optional"] is True
    assert ticket["hint"]["text"] == "Required for Global Administrator."
    assert view.submit is not None


def test_break_glass_shows_only_for_people_on_a_break_glass_list() -> None:
    rules = {GLOBAL_ADMIN.role_definition_id: make_rules(break_glass_requesters=("U0ADA",))}
    eligible = [EligibleRole(GLOBAL_ADMIN)]
    for_ada = request_modal(eligible, [], rules, requester_slack_id="U0ADA")
    for_alan = request_modal(eligible, [], rules, requester_slack_id="U0ALAN")
    options = block(for_ada, BlockId.BREAK_GLASS)["element"]["options"]
    assert [o["value"] for o in options] == [BREAK_GLASS_VALUE]
    with pytest.raises(AssertionError):
        block(for_alan, BlockId.BREAK_GLASS)


def test_two_hundred_roles_show_one_hundred_and_say_how_to_find_the_rest() -> None:
    roles = [RoleRef(f"role-{i:03d}", f"Role {i:03d}") for i in range(200)]
    view = request_modal([EligibleRole(r) for r in roles], [], {}, "role-150")
    options = role_select(view)["options"]
    assert len(options) == 100
    assert "role-150" in {o["value"] for o in options}
    overflow = block(view, BlockId.ROLE_OVERFLOW)["elements"][0]["text"]
    assert "Showing 100 of 200" in overflow and "/pim request" in overflow


def test_no_eligible_roles_is_said_plainly_without_a_submit_button() -> None:
    view = request_modal([], [], {})
    assert view.submit is None
    assert "no PIM roles" in dump(view)


# --- other modals, home, help --------------------------------------------------------------------


def test_deny_reason_modal_carries_the_request_id_only() -> None:
    request = make_request()
    view = deny_reason_modal(request.id, request=request)
    assert view.callback_id == CallbackId.DENY_REASON_MODAL
    assert view.private_metadata == request.id
    assert block(view, BlockId.DENY_REASON)["element"]["max_length"] == 500


def test_extend_modal_offers_no_more_than_the_allowed_extra() -> None:
    view = extend_modal(active_request(), timedelta(minutes=45), tz_name="Europe/London")
    values = [o["value"] for o in block(view, BlockId.EXTEND_DURATION)["element"]["options"]]
    assert values == ["PT15M", "PT30M", "PT45M"]
    assert view.private_metadata
    assert "15:00 BST" in dump(view)
    nothing_left = extend_modal(active_request(), timedelta(minutes=2))
    assert nothing_left.submit is None


def test_home_has_buttons_on_requests_waiting_for_me() -> None:
    pending = [make_request(requester=ALAN), make_request(requester=ALAN)]
    mine = [active_request(), make_request()]
    view = home_view([EligibleRole(GLOBAL_ADMIN)], [], mine, pending)
    ids = action_ids(view.blocks)  # type: ignore[arg-type]
    assert ids.count(ActionId.APPROVE) == 2
    assert ids.count(ActionId.DENY) == 2
    assert ActionId.DEACTIVATE in ids and ActionId.CANCEL in ids
    assert ActionId.OPEN_REQUEST_MODAL in ids
    assert view.type == "home"


def test_help_lists_every_subcommand() -> None:
    rendered = help_text() + dump(help_blocks())
    for usage in ("request [role]", "roles", "status", "pending", "deactivate [role]"):
        assert f"/pim {usage}" in rendered
    for usage, _ in SUBCOMMANDS:
        assert f"`/pim {usage}`" in help_text()

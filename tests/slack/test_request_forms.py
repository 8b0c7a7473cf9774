"""Modal submissions parse into typed forms, or into errors keyed by the input's block id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.ports import EligibleRole
from bot.domain.rules import RequestForm, validate_request
from handlers.blocks import BREAK_GLASS_VALUE, deny_reason_modal, extend_modal, request_modal
from handlers.forms import ExtendForm, parse_deny_reason, parse_extend_form, parse_request_form
from handlers.ids import BlockId
from stand_ins.slack_signing import state_values
from tests.slack.slack_fixtures import (
    EXCHANGE_ADMIN,
    GLOBAL_ADMIN,
    GRACE,
    NOW,
    make_request,
    make_rules,
)

RULES = {
    GLOBAL_ADMIN.role_definition_id: make_rules(break_glass_requesters=("U0ADA",)),
    EXCHANGE_ADMIN.role_definition_id: make_rules(EXCHANGE_ADMIN),
}
VIEW = request_modal(
    [EligibleRole(GLOBAL_ADMIN), EligibleRole(EXCHANGE_ADMIN)],
    [],
    RULES,
    requester_slack_id="U0ADA",
).to_dict()


def submitted(**values: Any) -> Any:
    return state_values(VIEW, values)


def test_a_complete_submission_becomes_a_request_form() -> None:
    start = datetime(2024, 5, 14, 15, 30, tzinfo=UTC)
    form = parse_request_form(
        submitted(
            role=GLOBAL_ADMIN.role_definition_id,
            duration="PT2H",
            reason="  Investigate the sign-in alert  ",
            ticket_number="INC42",
            ticket_system="ServiceNow",
            start=int(start.timestamp()),
            break_glass=[BREAK_GLASS_VALUE],
        )
    )
    assert form == RequestForm(
        role_definition_id=GLOBAL_ADMIN.role_definition_id,
        duration=timedelta(hours=2),
        reason="Investigate the sign-in alert",
        ticket_number="INC42",
        ticket_system="ServiceNow",
        start=start,
        break_glass=True,
    )
    assert isinstance(form, RequestForm) and form.start is not None
    assert form.start.tzinfo is not None


def test_optional_fields_left_empty_are_empty() -> None:
    form = parse_request_form(submitted(role=EXCHANGE_ADMIN.role_definition_id, reason="why not"))
    assert isinstance(form, RequestForm)
    assert (form.ticket_number, form.ticket_system, form.start, form.break_glass) == (
        "",
        "",
        None,
        False,
    )
    assert form.duration is None  # nothing chosen: validate_request says so


def test_no_role_selected_is_a_field_error_on_the_role_block() -> None:
    assert parse_request_form(submitted(reason="x")) == {BlockId.ROLE: "Choose a role."}


def test_duration_from_a_number_input_counts_minutes() -> None:
    values = {
        BlockId.ROLE: {"a": {"type": "static_select", "selected_option": {"value": "r-1"}}},
        BlockId.DURATION: {"d": {"type": "number_input", "value": "45"}},
    }
    form = parse_request_form(values)
    assert isinstance(form, RequestForm)
    assert form.duration == timedelta(minutes=45)


def test_an_unreadable_duration_is_a_field_error() -> None:
    values = {
        BlockId.ROLE: {"a": {"type": "static_select", "selected_option": {"value": "r-1"}}},
        BlockId.DURATION: {"d": {"type": "plain_text_input", "value": "a while"}},
    }
    assert set(parse_request_form(values)) == {BlockId.DURATION}  # type: ignore[arg-type]


def test_a_parsed_form_feeds_validate_request_with_the_same_field_names() -> None:
    form = parse_request_form(submitted(role=GLOBAL_ADMIN.role_definition_id, reason="no"))
    assert isinstance(form, RequestForm)
    errors = validate_request(form, RULES[GLOBAL_ADMIN.role_definition_id], now=NOW)
    assert set(errors) == {BlockId.DURATION, BlockId.REASON}
    view_block_ids = {b["block_id"] for b in VIEW["blocks"]}
    assert set(errors) <= view_block_ids  # ack(errors=...) lands under the right inputs


def test_deny_reason_is_required() -> None:
    view = deny_reason_modal("req-1").to_dict()
    assert parse_deny_reason(state_values(view, {BlockId.DENY_REASON: " Not now "})) == "Not now"
    assert set(parse_deny_reason(state_values(view, {}))) == {BlockId.DENY_REASON}


def test_extend_form() -> None:
    request = make_request()
    request.approve(GRACE, at=NOW)
    request.mark_active(
        starts_at=NOW, ends_at=NOW + timedelta(hours=1), graph_request_id="g", at=NOW
    )
    view = extend_modal(request, timedelta(hours=2)).to_dict()
    values = {BlockId.EXTEND_DURATION: "PT30M", BlockId.REASON: "Still migrating"}
    assert parse_extend_form(state_values(view, values)) == ExtendForm(
        timedelta(minutes=30), "Still migrating"
    )
    assert set(parse_extend_form(state_values(view, {}))) == {BlockId.EXTEND_DURATION}  # type: ignore[arg-type]

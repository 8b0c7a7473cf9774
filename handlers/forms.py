"""Typed parsing of modal submissions: ``view["state"]["values"]`` in, a form or field errors out.

Errors are keyed by block id (= the ``bot.domain.rules`` field names), so a handler can answer
``ack(response_action="errors", errors=errors)`` and each message lands under its input.
Only the shape is checked here; ``bot.domain.rules.validate_request`` checks the content.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.durations import minutes, parse_duration
from bot.domain.errors import RequestNotFound
from bot.domain.rules import RequestForm, note_problem
from handlers.blocks.request_modal import BREAK_GLASS_VALUE
from handlers.ids import BlockId

StateValues = Mapping[str, Mapping[str, Mapping[str, Any]]]
FieldErrors = dict[str, str]


@dataclass(frozen=True)
class ExtendForm:
    extra: timedelta
    reason: str


def parse_request_form(values: StateValues) -> RequestForm | FieldErrors:
    """The request modal's answers as a ``RequestForm``, or one message per unusable field."""
    errors: FieldErrors = {}
    role_id = _selected(values, BlockId.ROLE)
    if not role_id:
        errors[BlockId.ROLE] = "Choose a role."
    duration = _duration(values, BlockId.DURATION, errors)
    start: datetime | None = None
    epoch = _element(values, BlockId.START).get("selected_date_time")
    if epoch is not None:
        try:
            start = datetime.fromtimestamp(int(epoch), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            errors[BlockId.START] = "That start time could not be read; pick it again."
    if errors:
        return errors
    return RequestForm(
        role_definition_id=role_id or "",
        duration=duration,
        reason=_text(values, BlockId.REASON),
        ticket_number=_text(values, BlockId.TICKET_NUMBER),
        ticket_system=_text(values, BlockId.TICKET_SYSTEM),
        start=start,
        break_glass=BREAK_GLASS_VALUE in _checked(values, BlockId.BREAK_GLASS),
    )


def parse_deny_reason(values: StateValues) -> str | FieldErrors:
    reason = _text(values, BlockId.DENY_REASON)
    if not reason:
        return {BlockId.DENY_REASON: "Say why, so the requester knows what to change."}
    problem = note_problem(reason, "reason")
    if problem:
        return {BlockId.DENY_REASON: problem}
    return reason


def parse_extend_form(values: StateValues) -> ExtendForm | FieldErrors:
    errors: FieldErrors = {}
    extra = _duration(values, BlockId.EXTEND_DURATION, errors)
    if extra is None and not errors:
        errors[BlockId.EXTEND_DURATION] = "Choose how much longer you need it."
    reason = _text(values, BlockId.REASON)
    problem = note_problem(reason, "reason")
    if problem:
        errors[BlockId.REASON] = problem
    if errors or extra is None:
        return errors
    return ExtendForm(extra=extra, reason=reason)


def state_values(view: Mapping[str, Any]) -> StateValues:
    """``view.state.values``, or nothing usable: a tampered view must not raise here."""
    state = view.get("state")
    values = state.get("values") if isinstance(state, Mapping) else None
    return values if isinstance(values, Mapping) else {}


def request_id_from(value: object) -> str:
    """The request id a button value or ``private_metadata`` carries: a UUID, nothing else.

    Anything else (tampered, truncated, a NUL byte) is refused before it reaches a query.
    """
    try:
        if isinstance(value, str) and len(value) == 36 and str(uuid.UUID(value)) == value.lower():
            return value
    except ValueError:
        pass
    raise RequestNotFound("That button or form does not belong to a request pimbot knows.")


def _element(values: StateValues, block_id: str) -> Mapping[str, Any]:
    # An input block holds exactly one element; read it whatever its action id. Any other
    # shape (a tampered payload) reads as an empty element.
    block = values.get(block_id)
    element = next(iter(block.values()), {}) if isinstance(block, Mapping) else {}
    return element if isinstance(element, Mapping) else {}


def _selected(values: StateValues, block_id: str) -> str | None:
    option = _element(values, block_id).get("selected_option")
    if not isinstance(option, Mapping) or option.get("value") is None:
        return None
    return str(option["value"])


def _text(values: StateValues, block_id: str) -> str:
    value = _element(values, block_id).get("value")
    return value.strip() if isinstance(value, str) else ""


def _checked(values: StateValues, block_id: str) -> set[str]:
    options = _element(values, block_id).get("selected_options")
    if not isinstance(options, list):
        return set()
    return {str(o.get("value")) for o in options if isinstance(o, Mapping)}


def _duration(values: StateValues, block_id: str, errors: FieldErrors) -> timedelta | None:
    element = _element(values, block_id)
    kind = element.get("type")
    raw = _selected(values, block_id) if "selected_option" in element else element.get("value")
    if raw in (None, ""):
        return None
    try:
        if kind == "number_input":
            # A number field for duration counts minutes, like a bare number typed anywhere.
            return minutes(float(str(raw)))
        return parse_duration(str(raw))
    except (ValueError, OverflowError):
        errors[block_id] = "Use a duration such as 30m, 1h30m or 2h."
        return None

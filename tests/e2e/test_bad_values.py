"""Bad values from Slack, through pimbot's real HTTP endpoint: each becomes a field error or a
clear reply, never a 500, and nothing is silently dropped (issue 9, finding 10)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from stand_ins.slack_signing import (
    FORM,
    interactivity_body,
    state_values,
    view_submission_payload,
)
from tests.e2e.conftest import ADA, APPROVALS, GRACE, PRA, SECURITY_READER, Stack

REASON = "Rotate the emergency access keys"
PIM_JUSTIFICATION_LIMIT = 500  # PIM's justification field
MAX_REASON_LENGTH = 300  # what is left of 500 after " (via pimbot, request <id>; approved by …)"
MAX_NOTE_LENGTH = 500  # deny and extension reasons


def _submit(
    stack: Stack, user: str, view: dict[str, Any], values: dict[str, Any], **raw: Any
) -> Any:
    """Submit ``view`` with ``values``, then overwrite elements with what a tampering client
    (or a Slack bug) could send: ``raw`` maps block id -> the element's whole state."""
    state = state_values(view, values)
    for block_id, element_state in raw.items():
        action_id = next(iter(state[block_id]))
        state[block_id][action_id] = element_state
    payload = view_submission_payload(stack.sender.actor(user), view, state)
    return stack.sender.post(stack.sender.sign(interactivity_body(payload), FORM))


def _select(value: str) -> dict[str, Any]:
    return {
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": value[:70]}, "value": value},
    }


def _text(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def _request_form(stack: Stack, role: str = PRA) -> dict[str, Any]:
    view = stack.open_form(ADA)
    if view["blocks"][0].get("element", {}).get("initial_option", {}).get("value") != role:
        before = len(stack.slack.calls("views.update"))
        stack.sender.select("pim-role-select", role, user=ADA, view=view)
        stack.slack.wait_for("views.update", before + 1, timeout=30)
        view = stack.slack.latest_view(ADA)
    return view


def _errors(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response_action"] == "errors", body
    return dict(body["errors"])


def _stored(stack: Stack) -> int:
    with stack.runtime.deps.ports.uow() as uow:
        return len(uow.requests.list_for_requester(stack.runtime.deps.identify(ADA), limit=50))


@pytest.mark.parametrize(
    "duration",
    ["99999999999999", "P9999999999D", "PT99999999999999H", "inf", "nan", "-5", "PT-5M", "1e400"],
)
def test_absurd_durations_are_field_errors(stack: Stack, duration: str) -> None:
    view = _request_form(stack)
    response = _submit(
        stack,
        ADA,
        view,
        {"role": PRA, "duration": "PT1H", "reason": REASON},
        duration=_select(duration),
    )
    assert "duration" in _errors(response)
    assert stack.emu.state.requests == []


def test_nul_bytes_and_broken_text_are_field_errors_and_nothing_vanishes(stack: Stack) -> None:
    # On PostgreSQL a NUL in a text column made the INSERT fail after the modal had closed:
    # the request silently vanished. Now each comes back on its field while the form is open.
    view = _request_form(stack)
    base = {"role": PRA, "duration": "PT1H", "reason": REASON}
    for block_id, value in (
        ("reason", "Rotate the keys\x00 now please"),
        ("reason", "Rotate the keys \ud800 now please"),
        ("ticket_number", "CHG-1\x00"),
        ("ticket_system", "Service\x00Now"),
    ):
        errors = _errors(
            _submit(stack, ADA, view, {**base, block_id: "x"}, **{block_id: _text(value)})
        )
        assert block_id in errors, (block_id, errors)
        assert "character" in errors[block_id]
    assert _stored(stack) == 0
    # The same form with clean values goes through and is stored.
    assert _submit(stack, ADA, view, base).status_code == 200
    stack.wait(lambda: _stored(stack) == 1, what="the clean request stored")


def test_the_reason_is_limited_to_what_pim_keeps_and_never_cut(stack: Stack) -> None:
    view = _request_form(stack, SECURITY_READER)
    over = "r" * (MAX_REASON_LENGTH + 1)
    errors = _errors(
        _submit(stack, ADA, view, {"role": SECURITY_READER, "duration": "PT1H", "reason": over})
    )
    assert str(MAX_REASON_LENGTH) in errors["reason"]
    longest = "Investigate alert 77 " + "x" * (MAX_REASON_LENGTH - 21)
    assert len(longest) == MAX_REASON_LENGTH
    response = _submit(
        stack, ADA, view, {"role": SECURITY_READER, "duration": "PT1H", "reason": longest}
    )
    assert response.status_code == 200 and not response.content
    sent = stack.wait(
        lambda: [r for r in stack.emu.state.requests if r["roleDefinitionId"] == SECURITY_READER],
        what="the activation in PIM",
    )[0]
    assert sent["justification"].startswith(longest + " (via pimbot")  # whole, not cut
    assert len(sent["justification"]) <= PIM_JUSTIFICATION_LIMIT
    # The form tells Slack's client the same limit.
    reason_input = next(b for b in view["blocks"] if b.get("block_id") == "reason")
    assert reason_input["element"]["max_length"] == MAX_REASON_LENGTH


def test_ticket_numbers_and_systems_are_checked_for_length_and_characters(stack: Stack) -> None:
    view = _request_form(stack)
    base = {"role": PRA, "duration": "PT1H", "reason": REASON}
    cases = [
        ({"ticket_number": "C" * 101}, "ticket_number", "at most 100"),
        ({"ticket_number": "CHG 1\nDROP"}, "ticket_number", "control characters"),
        ({"ticket_number": "<script>"}, "ticket_number", "letters, digits"),
        ({"ticket_number": "CHG-1", "ticket_system": "S" * 101}, "ticket_system", "at most 100"),
        ({"ticket_number": "CHG-1", "ticket_system": "Jira<@U0GRACE>"}, "ticket_system", "letters"),
        ({"ticket_system": "ServiceNow"}, "ticket_number", "needs a ticket number"),
    ]
    for values, field, message in cases:
        raw = {k: _text(v) for k, v in values.items()}
        errors = _errors(_submit(stack, ADA, view, {**base, **{k: "x" for k in values}}, **raw))
        assert message in errors.get(field, ""), (values, errors)
    assert _stored(stack) == 0


def _deny_form(stack: Stack) -> dict[str, Any]:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny", user=GRACE, message=card)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    return stack.slack.latest_view(GRACE)


def test_deny_reasons_have_a_server_side_limit(stack: Stack) -> None:
    view = _deny_form(stack)
    long = _submit(
        stack, GRACE, view, {"deny_reason": "x"}, deny_reason=_text("n" * (MAX_NOTE_LENGTH + 1))
    )
    assert str(MAX_NOTE_LENGTH) in _errors(long)["deny_reason"]
    nul = _submit(stack, GRACE, view, {"deny_reason": "x"}, deny_reason=_text("no\x00"))
    assert "character" in _errors(nul)["deny_reason"]
    # A tampered private_metadata closes the form with a notice; nothing is decided.
    forged = {**view, "private_metadata": "not-a-request\x00"}
    response = _submit(stack, GRACE, forged, {"deny_reason": "Not now"})
    assert response.status_code == 200
    assert response.json()["response_action"] == "update"
    assert "does not belong to a request" in json.dumps(response.json()["view"])
    with stack.runtime.deps.ports.uow() as uow:
        [request] = uow.requests.list_pending()
    assert request.decisions == []


def test_extension_reasons_and_durations_are_checked(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    active_dm = stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "active until" in m.text], what="active DM"
    )[0]
    opened = len(stack.slack.calls("views.update"))
    stack.sender.click("pim-extend", user=ADA, message=active_dm)
    stack.slack.wait_for("views.update", opened + 1, timeout=30)
    view = stack.slack.latest_view(ADA)
    long = _submit(
        stack, ADA, view, {"extend_duration": "PT30M"}, reason=_text("e" * (MAX_NOTE_LENGTH + 1))
    )
    assert str(MAX_NOTE_LENGTH) in _errors(long)["reason"]
    for duration in ("P9999999999D", "99999999999999", "nan"):
        errors = _errors(
            _submit(
                stack, ADA, view, {"extend_duration": "PT30M"}, extend_duration=_select(duration)
            )
        )
        assert "extend_duration" in errors


def test_tampered_button_values_get_a_clear_reply(stack: Stack) -> None:
    before = len(stack.slack.calls())
    response = stack.sender.click("pim-approve", "x\x00' OR 1=1 --", user=GRACE)
    assert response.status_code == 200
    reply = stack.wait(
        lambda: [c for c in stack.slack.calls()[before:] if "does not belong" in str(c.args)],
        what="a reply to the clicker",
    )
    assert "Something went wrong" not in str(reply)


def test_slash_command_free_text(stack: Stack) -> None:
    opened = len(stack.slack.calls("views.open"))
    junk = stack.sender.command("/pim", "request ;;%%<>&\u202e\ufeff", user=ADA)
    assert junk.status_code == 200
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    long = stack.sender.command("/pim", "request " + "a" * 5000, user=ADA)
    assert long.status_code == 200 and "longer than any" in long.text
    nul = stack.sender.command("/pim", "deactivate \x00", user=ADA)
    assert nul.status_code == 200 and "control character" in nul.text


# --- bodies Bolt cannot parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (urlencode({"payload": "{not json"}), FORM),
        (urlencode({"payload": "[1, 2]"}), FORM),
        (urlencode({"payload": ""}), FORM),
        ("{broken", "application/json"),
        ("[]", "application/json"),
    ],
)
def test_bodies_that_do_not_parse_get_400_signed_and_401_unsigned(
    stack: Stack, body: str, content_type: str
) -> None:
    before = len(stack.slack.calls())
    signed = stack.sender.post(stack.sender.sign(body, content_type))
    assert signed.status_code == 400, signed.text
    unsigned = stack.sender.post(stack.sender.sign(body, content_type), bad_signature=True)
    assert unsigned.status_code == 401
    assert len(stack.slack.calls()) == before  # nothing said to Slack on their behalf


def test_a_body_that_is_not_utf8_gets_400(stack: Stack) -> None:
    raw = b"payload=%7B%22a%22%3A1%7D\xff\xfe"
    ts = int(time.time())
    mac = hmac.new(stack.slack.signing_secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256)
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
    }
    response = stack.sender.http.post(stack.events_url, content=raw, headers=headers)
    assert response.status_code == 400


def test_submissions_with_broken_state_shapes_are_field_errors(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    view = _request_form(stack)
    base = {"role": PRA, "duration": "PT1H", "reason": REASON}
    for raw in (
        {"duration": {"type": "static_select", "selected_option": "PT1H"}},
        {"duration": {"type": "static_select", "selected_option": None}},
        {"role": {"type": "static_select", "selected_option": [1]}},
        {"reason": {"type": "plain_text_input", "value": ["a", "b"]}},
    ):
        response = _submit(stack, ADA, view, base, **raw)
        assert response.status_code == 200, (raw, response.text)
        assert response.json()["response_action"] == "errors", raw
    assert APPROVALS not in {c.args.get("channel") for c in stack.slack.calls("chat.postMessage")}

"""An unexpected error after the ack reaches the person, on the surface they used, with a
reference an admin can find in the logs; no loading modal is left spinning."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import GRACE, PRA, SECURITY_READER, Stack

ADA = "U0ADA"
REASON = "Rotate the emergency access keys"
# Where a person can be told: the reply to a command, an ephemeral or a DM, a modal, App Home.
TELLING = {
    "response_url",
    "chat.postEphemeral",
    "chat.postMessage",
    "views.update",
    "views.publish",
    "views.open",
}


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def _active_dm(stack: Stack) -> Any:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    return stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "active until" in m.text], what="active DM"
    )[0]


def _pending_card(stack: Stack) -> Any:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    return stack.card()


# Each surface: (module attribute to break, set-up before the break, the act after it).
Setup = Callable[[Stack], Any]
Act = Callable[[Stack, Any], Any]


def _status(stack: Stack, _: Any) -> Any:
    return stack.sender.command("/pim", "status", user=ADA)


def _click(action_id: str, user: str) -> Act:
    return lambda stack, message: stack.sender.click(action_id, user=user, message=message)


def _submit_request(stack: Stack, _: Any) -> Any:
    return stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)


def _open_deny_form(stack: Stack) -> Any:
    card = _pending_card(stack)
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny", user=GRACE, message=card)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    return stack.slack.latest_view(GRACE)


def _submit_deny(stack: Stack, view: Any) -> Any:
    return stack.sender.submit_view(view, {"deny_reason": "Not during the freeze"}, user=GRACE)


def _open_form(stack: Stack, _: Any) -> Any:
    return stack.sender.command("/pim", "request", user=ADA)


def _open_home(stack: Stack, _: Any) -> Any:
    return stack.sender.open_home(GRACE)


def _nothing(_stack: Stack) -> None:
    return None


SURFACES: dict[str, tuple[str, Setup, Act, str, str]] = {
    # name: (what breaks, set-up, act, who is told, the Slack method that tells them)
    "slash command": ("handlers.commands.list_my_requests", _nothing, _status, ADA, "response_url"),
    "approve button": (
        "bot.use_cases.pim_approvals.approve",
        _pending_card,
        _click("pim-approve", GRACE),
        GRACE,
        "chat.postEphemeral",
    ),
    "deny button (opens the form)": (
        "bot.use_cases.pim_approvals.open_for_decision",
        _pending_card,
        _click("pim-deny", GRACE),
        GRACE,
        "chat.postEphemeral",
    ),
    "extend button (opens the form)": (
        "handlers.actions.open_for_extension",
        _active_dm,
        _click("pim-extend", ADA),
        ADA,
        "chat.postMessage",
    ),
    "deactivate button": (
        "handlers.actions.deactivate_request",
        _active_dm,
        _click("pim-deactivate", ADA),
        ADA,
        "chat.postMessage",
    ),
    "request form submission": (
        "handlers.views.store_request",
        _nothing,
        _submit_request,
        ADA,
        "chat.postMessage",
    ),
    "deny reason submission": (
        "bot.use_cases.pim_approvals.deny",
        _open_deny_form,
        _submit_deny,
        GRACE,
        "chat.postMessage",
    ),
    "request form fill after views.open": (
        "handlers.modal_flow.request_modal",
        _nothing,
        _open_form,
        ADA,
        "views.update",
    ),
    "extend form fill after views.open": (
        "handlers.modal_flow.extend_modal",
        _active_dm,
        _click("pim-extend", ADA),
        ADA,
        "views.update",
    ),
    "app home publish": (
        "handlers.home.list_pending_for_approver",
        _nothing,
        _open_home,
        GRACE,
        "views.publish",
    ),
}


def _reference(call: Any) -> str | None:
    found = re.search(r"reference: `([0-9a-f]+)`", str(call.args))
    return found.group(1) if found else None


@pytest.mark.parametrize("surface", list(SURFACES))
def test_an_unexpected_error_after_the_ack_is_told_with_a_reference(
    surface: str,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target, setup, act, user, method = SURFACES[surface]
    caplog.set_level(logging.INFO)
    arranged = setup(stack)
    before = len(stack.slack.calls())
    monkeypatch.setattr(target, _boom)

    response = act(stack, arranged)
    assert response.status_code == 200, response.text

    def told() -> list[Any]:
        return [
            c
            for c in stack.slack.calls()[before:]
            if c.method in TELLING and _reference(c) is not None
        ]

    [call] = stack.wait(told, what=f"{user} told about the error ({surface})")
    assert call.method == method, call
    if method in ("chat.postEphemeral", "views.publish"):
        assert call.args.get("user") == user or call.args.get("user_id") == user
    if method == "chat.postMessage":
        assert call.args["channel"] in (user, stack.slack.dm_channel(user))
    if method == "views.update":
        # The loading modal itself is replaced: nothing is left spinning.
        opened = [c for c in stack.slack.calls("views.open") if c.response.get("ok")][-1]
        assert call.args["view_id"] == opened.response["view"]["id"]
        assert "went wrong" in str(call.args["view"])
    reference = _reference(call)
    logged = stack.wait(
        lambda: [
            r
            for r in caplog.records
            if r.levelno >= logging.ERROR
            and r.exc_info
            and isinstance(r.exc_info[1], RuntimeError)
            and getattr(r, "correlation_id", None) == reference
        ],
        what="the error logged with its reference",
    )
    assert len(logged) == 1

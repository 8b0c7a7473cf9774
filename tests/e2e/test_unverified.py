"""Nothing is answered, logged or sent to Slack on behalf of a request that is not Slack's.

Forged bodies name real users and channels, carry response URLs and trigger ids, and come with
every kind of bad signing header. Each must get a 401 (or a 413 when too big) and leave the fake
Slack with no call at all: no chat.postMessage, no views.*, no response_url POST.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from slack_bolt import BoltRequest

from stand_ins.slack_signing import (
    FORM,
    JSON_TYPE,
    Actor,
    app_home_opened_envelope,
    block_actions_payload,
    command_form,
    interactivity_body,
    signature,
)
from tests.e2e.conftest import ADA, APPROVALS, Stack

MIB = 1024 * 1024


def _bodies(stack: Stack) -> dict[str, tuple[str, str]]:
    """A command, an interaction and an event, each naming Ada and the approvals channel."""
    actor = Actor(ADA)
    command = urlencode(
        command_form(
            "/pim",
            "request",
            actor,
            trigger_id=stack.slack.new_trigger_id(ADA),
            response_url=stack.slack.new_response_url(),
            channel_id=APPROVALS,
        )
    )
    action = {"action_id": "pim-approve", "block_id": "b", "type": "button", "value": "x"}
    message = {"ts": "1700000000.000100", "text": "card", "blocks": []}
    interaction = interactivity_body(
        block_actions_payload(
            actor,
            action,
            trigger_id=stack.slack.new_trigger_id(ADA),
            response_url=stack.slack.new_response_url(),
            message=message,
            channel_id=APPROVALS,
        )
    )
    event = json.dumps(
        app_home_opened_envelope(ADA, channel_id=stack.slack.dm_channel(ADA), event_id="Ev0FORGED")
    )
    return {
        "command": (command, FORM),
        "interaction": (interaction, FORM),
        "event": (event, JSON_TYPE),
    }


def _bad_headers(secret: str, body: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = signature(secret, now, body)
    return {
        "non-numeric timestamp": {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": good},
        "missing timestamp": {"X-Slack-Signature": good},
        "empty timestamp": {"X-Slack-Request-Timestamp": "", "X-Slack-Signature": good},
        "huge timestamp": {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": good},
        "negative timestamp": {"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": good},
        "float timestamp": {
            "X-Slack-Request-Timestamp": f"{now}.5",
            "X-Slack-Signature": good,
        },
        "non-ascii digits": {"X-Slack-Request-Timestamp": "١٧٠٠", "X-Slack-Signature": good},
        "missing signature": {"X-Slack-Request-Timestamp": str(now)},
        "non-ascii signature": {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": "v0=\u00e9" + good[4:],
        },
        "wrong secret": {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": signature("not-the-secret", now, body),
        },
    }


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.mark.parametrize("variant", ["command", "interaction", "event"])
def test_unverified_requests_get_401_and_nothing_reaches_slack(
    stack: Stack, raw: httpx.Client, variant: str
) -> None:
    body, content_type = _bodies(stack)[variant]
    stack.slack.clear_calls()
    for case, headers in _bad_headers(stack.slack.signing_secret, body).items():
        response = raw.post(
            stack.events_url,
            content=body.encode(),
            headers={"Content-Type": content_type, **_raw(headers)},
        )
        assert response.status_code == 401, (case, response.status_code, response.text)
    # Listeners and error handlers run on threads after the answer: give them time to act.
    time.sleep(1.0)
    assert stack.slack.calls() == []


def _raw(headers: dict[str, str]) -> dict[str, bytes]:
    # httpx encodes str headers as ASCII; a forger sends whatever bytes they like.
    return {k: v.encode("utf-8") for k, v in headers.items()}


def test_a_signed_request_still_works(stack: Stack) -> None:
    response = stack.sender.command("/pim", "help", user=ADA)
    assert response.status_code == 200


def test_oversized_body_is_refused_before_it_is_read(
    stack: Stack, raw: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "FORGED-BODY-MARKER"
    body = (marker + "x" * 1000) * (2 * MIB // 1000)
    stack.slack.clear_calls()
    response = raw.post(
        stack.events_url,
        content=body.encode(),
        headers={"Content-Type": FORM, "X-Slack-Request-Timestamp": str(int(time.time()))},
    )
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for _ in range(4):
            yield body.encode()[:MIB]

    response = raw.post(stack.events_url, content=chunks(), headers={"Content-Type": FORM})
    assert response.status_code == 413
    assert marker not in caplog.text
    assert stack.slack.calls() == []


def test_a_rejected_body_never_reaches_the_logs(
    make_stack: Callable[..., Stack], raw: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Bolt's loggers take the root level when the app is built, as under `pimbot run`.
    caplog.set_level(logging.DEBUG)
    stack = make_stack()
    body, content_type = _bodies(stack)["command"]
    marker = "FORGED-BODY-MARKER"
    body += "&text2=" + marker
    for headers in _bad_headers(stack.slack.signing_secret, body).values():
        raw.post(
            stack.events_url,
            content=body.encode(),
            headers={"Content-Type": content_type, **_raw(headers)},
        )
    # Bolt's own verification logs the body of a bad signature; reach it directly too.
    now = str(int(time.time()))
    stack.runtime.app.dispatch(
        BoltRequest(
            body=body,
            headers={"x-slack-request-timestamp": now, "x-slack-signature": "v0=" + "0" * 64},
        )
    )
    assert "refused" in caplog.text  # pimbot says it refused them, without the body
    assert marker not in caplog.text


def test_the_size_limit_is_a_setting(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(PIMBOT_MAX_REQUEST_BYTES="2000")
    body, content_type = _bodies(stack)["command"]
    padded = body + "&pad=" + "x" * 2000
    response = stack.sender.post(stack.sender.sign(padded, content_type))
    assert response.status_code == 413
    assert stack.sender.command("/pim", "help", user=ADA).status_code == 200


def test_bolt_error_handler_answers_only_verified_requests(stack: Stack) -> None:
    """Behind the door too: a request reaching Bolt unverified (here dispatched directly) that
    crashes Bolt's own verification is logged, never answered in Slack."""
    body, _ = _bodies(stack)["interaction"]
    stack.slack.clear_calls()
    response = stack.runtime.app.dispatch(
        BoltRequest(
            body=body,
            headers={"x-slack-request-timestamp": "abc", "x-slack-signature": "v0=" + "0" * 64},
        )
    )
    assert response.status >= 400
    time.sleep(1.0)
    assert stack.slack.calls() == []

"""What approvers see: their own reminder, extensions on the card, follow-ups in its thread."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.domain.elevation import ElevationRequest
from handlers.blocks import (
    approver_followup,
    approver_nudge,
    check_message_limits,
    info_card,
    request_card,
)
from tests.slack.slack_fixtures import ADA, GRACE, NOW, make_request

HOUR = timedelta(hours=1)


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b.to_dict() for b in content.blocks]


def _action_ids(content: Any) -> list[str]:
    return [
        e["action_id"] for b in _blocks(content) if b["type"] == "actions" for e in b["elements"]
    ]


def _active(request: ElevationRequest) -> ElevationRequest:
    request.approve(GRACE, at=NOW)
    request.mark_active(starts_at=NOW, ends_at=NOW + 2 * HOUR, graph_request_id="g", at=NOW)
    return request


def test_the_approver_nudge_says_who_asked_what_and_how_long_ago() -> None:
    request = make_request()
    content = approver_nudge(request, NOW + timedelta(hours=1, minutes=5))
    assert "Your request" not in content.text
    assert "<@U0ADA> asked for Global Administrator (2h) 1h 5m ago" in content.text
    assert _action_ids(content) == ["pim-approve", "pim-deny"]
    assert check_message_limits(_blocks(content), content.text) == []


def test_a_decided_nudge_loses_its_buttons() -> None:
    request = _active(make_request())
    content = approver_nudge(request, NOW + HOUR)
    assert _action_ids(content) == []
    assert "active" in content.text


def test_the_card_shows_each_extension_and_who_approved_it() -> None:
    request = _active(make_request())
    request.extend(ADA, new_end=NOW + 3 * HOUR, at=NOW)  # a self-extension
    request.ask_extension(ADA, extra=HOUR, reason="still needed", at=NOW)
    request.approve_extension(GRACE, at=NOW)
    request.extend(GRACE, new_end=NOW + 4 * HOUR, at=NOW)
    for content in (request_card(request), info_card(request)):
        text = str(_blocks(content))
        assert "Extended 2 times" in text
        assert "approved by <@U0GRACE>" in text and "1 without a new approval" in text
        assert "now until" in text


def test_a_card_never_extended_says_nothing_about_extensions() -> None:
    assert "Extended" not in str(_blocks(request_card(_active(make_request()))))


def test_follow_ups_for_extension_early_end_and_failure() -> None:
    request = _active(make_request())
    assert "was extended" in approver_followup(request, "extended").text
    assert "ended" in approver_followup(request, "deactivated").text
    failed = make_request()
    failed.approve(GRACE, at=NOW)
    failed.mark_failed(reason="the approval lapsed", at=NOW)
    content = approver_followup(failed, "failed")
    assert "the approval lapsed" in content.text
    assert check_message_limits(_blocks(content), content.text) == []

"""``GET /metrics`` after a demo-like run through the real stack, parsed as Prometheus would."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bot.app.metrics import Metrics
from tests.e2e.conftest import ADA, ADA_ENTRA, APPROVALS, GRACE, PRA, SECURITY_READER, Stack
from tests.observability.conftest import scrape

# Security Reader needs no approval in PIM; asking anyway leaves a request pending.
POLICY = """
roles:
  Security Reader:
    approval: required
    approvers:
      - slack_user: U0GRACE
"""


def _deny(stack: Stack, reason: str) -> None:
    card = stack.card()
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny", user=GRACE, message=card)
    stack.slack.wait_for("views.open", opened + 1)
    stack.sender.submit_view(stack.slack.latest_view(GRACE), {"deny_reason": reason}, user=GRACE)
    stack.wait(lambda: "denied your request" in "".join(stack.dm_texts(ADA)[-1:]), what="denied DM")


def _active_in_pim(stack: Stack, role: str) -> bool:
    return any(a["roleDefinitionId"] == role for a in stack.emu.state.active_assignments(ADA_ENTRA))


def test_a_demo_like_run_shows_in_the_metrics(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(policy=POLICY)
    before = scrape(stack)
    assert before.value("pimbot_requests_total", outcome="submitted") == 0
    assert before.value("pimbot_pending_approvals") == 0

    # Denied: the DM to the requester is rate limited once on the way.
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    stack.slack.rate_limit_next("chat.postMessage", 1, retry_after=0)
    _deny(stack, "Not during the change freeze")

    # Approved and active, with Graph throttling the approval's work once.
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    stack.wait(lambda: len(stack.channel_messages(APPROVALS)) >= 2, what="the second card")
    card = stack.channel_messages(APPROVALS)[-1]
    stack.emu.faults.throttle_next(1, retry_after="0.1")
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: _active_in_pim(stack, PRA), what="activation in PIM")
    stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="active DM")

    # Left waiting for an approver.
    stack.request(ADA, {"duration": "PT1H", "reason": "Look at alert 77"}, SECURITY_READER)
    stack.wait(lambda: len(stack.channel_messages(APPROVALS)) >= 3, what="the third card")

    # 55 minutes on, the reminder (ten minutes before the end) is five minutes overdue.
    stack.emu.advance_clock(55 * 60)
    handled = stack.runtime.sweeper.sweep()
    assert handled[next(k for k in handled if k.value == "reminder")] == 1

    metrics = scrape(stack)
    outcomes = {
        outcome: metrics.value("pimbot_requests_total", outcome=outcome)
        for outcome in ("submitted", "approved", "denied", "active", "failed", "expired")
    }
    assert outcomes == {
        "submitted": 3,
        "approved": 1,
        "denied": 1,
        "active": 1,
        "failed": 0,
        "expired": 0,
    }
    assert metrics.value("pimbot_approval_to_active_seconds_count") == 1
    assert metrics.value("pimbot_approval_to_active_seconds_bucket", le="+Inf") == 1

    assert metrics.total("pimbot_graph_requests_total") > 0
    assert metrics.value("pimbot_graph_requests_total", method="POST", status="201") == 1
    # The first Graph call after the click is throttled: the approver's UPN lookup for PIM's
    # justification, just before the activation.
    assert metrics.total("pimbot_graph_requests_total", status="429") == 1
    assert metrics.value("pimbot_graph_throttled_total") == 1
    assert metrics.value("pimbot_graph_retries_total", reason="http_429") == 1
    assert metrics.total("pimbot_graph_request_duration_seconds_count") == metrics.total(
        "pimbot_graph_requests_total"
    )

    assert metrics.total("pimbot_slack_requests_total") > 0
    # views.open is only ever called on the client Bolt builds for each request.
    assert metrics.total("pimbot_slack_requests_total", method="views.open", ok="true") >= 3
    assert metrics.value("pimbot_slack_rate_limited_total", method="chat.postMessage") == 1
    assert metrics.value("pimbot_slack_requests_total", method="chat.postMessage", ok="false") == 1

    assert metrics.value("pimbot_pending_approvals") == 1
    assert metrics.value("pimbot_timers_handled_total", kind="reminder") == 1
    assert metrics.value("pimbot_sweep_duration_seconds_count") == 1
    lag = metrics.value("pimbot_scheduler_lag_seconds")
    assert lag is not None and 5 * 60 <= lag < 6 * 60


def test_the_pending_gauge_follows_the_database(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(policy=POLICY)
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    stack.card()
    assert scrape(stack).value("pimbot_pending_approvals") == 1
    _deny(stack, "Not today")
    assert scrape(stack).value("pimbot_pending_approvals") == 0


def test_a_database_hiccup_drops_the_gauge_not_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    def unreachable() -> dict[str, int]:
        raise ConnectionError("database is restarting")

    metrics.count_pending(unreachable)
    with caplog.at_level(logging.WARNING, logger="bot.app.metrics"):
        text = generate_latest(registry).decode()

    assert "pimbot_pending_approvals" not in text.replace("# HELP", "").replace("# TYPE", "")
    assert 'pimbot_requests_total{outcome="submitted"} 0.0' in text
    assert "pending approvals not counted" in caplog.text

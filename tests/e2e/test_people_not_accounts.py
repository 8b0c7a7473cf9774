"""Issue 9: people, not Slack accounts, decide; nothing is shown before authority is checked.

Every test goes through pimbot's real HTTP endpoint with signed payloads, the fake Slack Web
API, the Graph emulator over HTTPS and real storage (SQLite and PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.stand_ins.fake_slack import SlackMessage
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import ADA, APPROVALS, GRACE, PRA, SECURITY_READER, Stack

REASON = "Rotate the emergency access keys"
SIOBHAN = "U0SIOBHAN"  # a full member, in Entra, but no approver of anything


def _said(stack: Stack) -> str:
    return " ".join(str(c.args) for c in stack.slack.calls())


def _activations(stack: Stack, role: str) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.emu.state.requests
        if r["roleDefinitionId"] == role and r["action"].lower() == "adminassign"
    ]


def _audit(database_url: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return uow.audit.list_recent(limit=200)
    finally:
        engine.dispose()


def _add_siobhan(stack: Stack) -> None:
    stack.slack.add_user(
        SIOBHAN, "siobhan", real_name="Siobhan O'Brien", email="siobhan.obrien@contoso.example"
    )


def _active_dm(stack: Stack) -> SlackMessage:
    found: list[SlackMessage] = stack.wait(
        lambda: [m for m in stack.dms(ADA) if "active until" in m.text], what="active DM"
    )
    return found[-1]


# --- finding 11: forms before authority --------------------------------------------------------


def test_the_deny_form_opens_only_for_an_approver(stack: Stack) -> None:
    _add_siobhan(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny", user=SIOBHAN, message=card)
    stack.wait(lambda: "not an approver" in _said(stack), what="Siobhan is told")
    stack.sender.click("pim-deny", user=ADA, message=card)
    stack.wait(lambda: "own request" in _said(stack), what="Ada is told")
    time.sleep(0.3)
    assert len(stack.slack.calls("views.open")) == opened
    assert REASON not in str(stack.slack.calls("views.open"))
    # An approver still gets the form.
    stack.sender.click("pim-deny", user=GRACE, message=card)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    assert "Privileged Role Administrator" in str(stack.slack.latest_view(GRACE))


def test_the_extend_form_opens_only_for_the_requester(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    dm = _active_dm(stack)
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-extend", user=GRACE, message=dm)
    stack.wait(lambda: "can change this elevation" in _said(stack), what="Grace is told")
    time.sleep(0.3)
    assert len(stack.slack.calls("views.open")) == opened
    stack.sender.click("pim-extend", user=ADA, message=dm)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)


def test_the_extension_deny_form_opens_only_for_an_approver(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        policy="roles:\n  Security Reader:\n    extension_requires_approval: true\n"
        "    approvers: [{slack_usergroup: pim-approvers}]\n"
    )
    _add_siobhan(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    dm = _active_dm(stack)
    updated = len(stack.slack.calls("views.update"))
    stack.sender.click("pim-extend", user=ADA, message=dm)
    stack.slack.wait_for("views.update", updated + 1, timeout=30)
    stack.sender.submit_view(stack.slack.latest_view(ADA), {"extend_duration": "PT30M"}, user=ADA)
    card = stack.wait(
        lambda: [m for m in stack.channel_messages(APPROVALS) if "extend" in m.text.lower()],
        what="extension card",
    )[0]
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny-extension", user=SIOBHAN, message=card)
    stack.wait(lambda: "not an approver" in _said(stack), what="Siobhan is told")
    time.sleep(0.3)
    assert len(stack.slack.calls("views.open")) == opened
    stack.sender.click("pim-deny-extension", user=GRACE, message=card)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)

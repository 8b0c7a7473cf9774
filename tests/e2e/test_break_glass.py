"""Break glass is loud, needs a reason and is reviewed after the fact (issue 9, finding 8),
through pimbot's real HTTP endpoint with the Graph emulator and real storage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.domain.ports import DueWork
from stand_ins.fake_slack import BOT_USER_ID, SlackMessage
from stand_ins.slack_signing import (
    FORM,
    interactivity_body,
    state_values,
    view_submission_payload,
)
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import ADA, ALAN, APPROVALS, GRACE, PRA, SECURITY_READER, Stack

SECURITY = "C0SECURITY"
REASON = "Production outage INC-4711: nobody can approve in time"
ALLOWED = (
    "roles:\n"
    "  Privileged Role Administrator:\n"
    f"    break_glass: [{ADA}]\n"
    "    break_glass_overrides_pim_approval: true\n"
)
NOT_OVERRIDDEN = f"roles:\n  Privileged Role Administrator:\n    break_glass: [{ADA}]\n"
ACK = "pim-acknowledge-break-glass"


def _quiet_stack(make_stack: Callable[..., Stack], policy: str = ALLOWED) -> Stack:
    """The setting the issue found quiet: no approvals channel. A security channel instead."""
    stack = make_stack(policy=policy, PIMBOT_APPROVALS_CHANNEL="", PIMBOT_SECURITY_CHANNEL=SECURITY)
    stack.slack.add_channel(SECURITY, "security", members=[BOT_USER_ID])
    return stack


def _form(stack: Stack) -> dict[str, Any]:
    view = stack.open_form(ADA)
    before = len(stack.slack.calls("views.update"))
    stack.sender.select("pim-role-select", PRA, user=ADA, view=view)
    stack.slack.wait_for("views.update", before + 1, timeout=30)
    return stack.slack.latest_view(ADA)


def _break_glass(stack: Stack, reason: str = REASON) -> Any:
    view = _form(stack)
    values = {"role": PRA, "duration": "PT4H", "reason": reason, "break_glass": True}
    return stack.sender.submit_view(view, values, user=ADA)


def _activated(stack: Stack) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.emu.state.requests
        if r["roleDefinitionId"] == PRA and r["action"].lower() == "adminassign"
    ]


def _review_cards(stack: Stack, channel: str) -> list[SlackMessage]:
    return [m for m in stack.slack.messages(channel) if "Break-glass" in m.text]


def _buttons(message: SlackMessage) -> list[str]:
    return [
        e.get("action_id")
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


def _button_value(message: SlackMessage) -> str:
    return next(
        str(e["value"])
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if e.get("action_id") == ACK
    )


def _audit_actions(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return [e.action for e in reversed(uow.audit.list_recent(limit=200))]
    finally:
        engine.dispose()


def test_break_glass_is_loud_everywhere_and_reviewed_after_the_fact(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = _quiet_stack(make_stack)
    assert _break_glass(stack).status_code == 200
    stack.wait(lambda: _activated(stack), what="activation in PIM without approval")
    # The security channel and every approver of the role (Grace, and Alan through the PIM
    # Approvers group) get a review card with an Acknowledge button; the requester does not.
    security = stack.wait(lambda: _review_cards(stack, SECURITY), what="security channel card")
    grace = stack.wait(lambda: _review_cards(stack, stack.slack.dm_channel(GRACE)), what="Grace")
    alan = stack.wait(lambda: _review_cards(stack, stack.slack.dm_channel(ALAN)), what="Alan")
    for card in (security[0], grace[0], alan[0]):
        assert ACK in _buttons(card)
        assert REASON in str(card.blocks)
    assert _review_cards(stack, stack.slack.dm_channel(ADA)) == []
    request_id = _button_value(security[0])
    stack.wait(lambda: "broke glass" in str(stack.dms(ADA)[-1:]), what="requester told")
    actions = _audit_actions(database_url)
    assert "break_glass_invoked" in actions and "break_glass_notified" in actions

    # The requester may not review their own break glass; someone who is no approver neither.
    stack.sender.click(ACK, user=ADA, message=security[0])
    stack.wait(
        lambda: "your own break-glass" in str(stack.slack.calls()[-1].args), what="own refused"
    )
    # Grace acknowledges from her DM: every copy updates in place, the button goes.
    stack.sender.click(ACK, user=GRACE, message=grace[0])

    def all_acknowledged() -> bool:
        copies = [
            stack.slack.message(SECURITY, security[0].ts),
            stack.slack.message(stack.slack.dm_channel(GRACE), grace[0].ts),
            stack.slack.message(stack.slack.dm_channel(ALAN), alan[0].ts),
        ]
        return all(
            "Acknowledged" in str(c.blocks)
            and f"<@{GRACE}>" in str(c.blocks)
            and ACK not in _buttons(c)
            for c in copies
        )

    stack.wait(all_acknowledged, what="every review card updated")
    assert "break_glass_acknowledged" in _audit_actions(database_url)
    # A second acknowledgement is refused with who did it.
    stack.sender.click(ACK, request_id, user=ALAN)
    stack.wait(lambda: "Already acknowledged" in str(stack.slack.calls()[-1].args), what="again")
    assert _audit_actions(database_url).count("break_glass_acknowledged") == 1


def test_an_unacknowledged_break_glass_is_nudged_until_someone_acknowledges(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = _quiet_stack(make_stack)
    _break_glass(stack)
    stack.wait(lambda: _review_cards(stack, SECURITY), what="security channel card")
    stack.wait(lambda: "active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active")
    grace_dm = stack.slack.dm_channel(GRACE)
    first = len(_review_cards(stack, grace_dm))
    sweeper = stack.runtime.sweeper
    assert sweeper.sweep().get(_kind(), 0) == 0  # not due yet
    stack.emu.clock.advance(timedelta(hours=1, minutes=1))
    assert sweeper.sweep()[_kind()] == 1
    assert len(_review_cards(stack, grace_dm)) == first + 1
    reminder = _review_cards(stack, grace_dm)[-1]
    assert "Still not reviewed" in str(reminder.blocks) and ACK in _buttons(reminder)
    assert sweeper.sweep()[_kind()] == 0  # the next reminder is an hour later
    stack.emu.clock.advance(timedelta(hours=1, minutes=1))
    assert sweeper.sweep()[_kind()] == 1
    assert _audit_actions(database_url).count("break_glass_review_nudged") == 2
    stack.sender.click(ACK, user=GRACE, message=reminder)
    stack.wait(
        lambda: "Acknowledged" in str(stack.slack.message(grace_dm, reminder.ts).blocks),
        what="acknowledged",
    )
    stack.emu.clock.advance(timedelta(hours=2))
    assert sweeper.sweep()[_kind()] == 0  # acknowledged: no more reminders


def test_break_glass_never_bypasses_pim_approval_unless_the_policy_allows_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = _quiet_stack(make_stack, policy=NOT_OVERRIDDEN)
    view = _form(stack)
    # Not offered in the form for this role...
    assert "break_glass" not in {b.get("block_id") for b in view["blocks"]}
    # ... and refused when a client sends the checkbox anyway.
    state = state_values(view, {"role": PRA, "duration": "PT1H", "reason": REASON})
    state["break_glass"] = {
        "pim-break-glass-checkbox": {
            "type": "checkboxes",
            "selected_options": [{"value": "break_glass", "text": {"type": "mrkdwn", "text": "x"}}],
        }
    }
    payload = view_submission_payload(stack.sender.actor(ADA), view, state)
    response = stack.sender.post(stack.sender.sign(interactivity_body(payload), FORM))
    errors = response.json()["errors"]
    assert "PIM requires approval" in " ".join(errors.values())
    assert _activated(stack) == [] and stack.emu.state.requests == []


def test_break_glass_needs_a_real_reason(make_stack: Callable[..., Stack]) -> None:
    stack = _quiet_stack(make_stack)
    response = _break_glass(stack, reason="outage")
    assert "at least 20" in response.json()["errors"]["reason"]
    assert stack.emu.state.requests == []


def test_with_an_approvals_channel_it_is_loud_there_and_in_every_approvers_dm(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(policy=ALLOWED)
    _break_glass(stack)
    card = stack.wait(lambda: _review_cards(stack, APPROVALS), what="approvals channel card")
    assert ACK in _buttons(card[0])
    for approver in (GRACE, ALAN):
        stack.wait(
            lambda a=approver: _review_cards(stack, stack.slack.dm_channel(a)),
            what=f"DM to {approver}",
        )
    assert len(stack.slack.messages(APPROVALS)) == 1  # the review card, not an info card too


def _kind() -> DueWork:
    return DueWork("break_glass_review")


def test_the_quiet_case_from_the_issue_now_reaches_every_approver(
    make_stack: Callable[..., Stack],
) -> None:
    # As found: no approvals channel, a break-glass list, nothing else configured. Break glass
    # posted one DM to the requester and nothing else. (Security Reader: only the policy asks
    # for approval, so break glass bypasses no PIM setting here.)
    stack = make_stack(
        policy="roles:\n  Security Reader:\n    approval: required\n"
        f"    approvers: [{{slack_usergroup: pim-approvers}}]\n    break_glass: [{ADA}]\n",
        PIMBOT_APPROVALS_CHANNEL="",
    )
    view = stack.open_form(ADA)
    before = len(stack.slack.calls("views.update"))
    stack.sender.select("pim-role-select", SECURITY_READER, user=ADA, view=view)
    stack.slack.wait_for("views.update", before + 1, timeout=30)
    values = {"role": SECURITY_READER, "duration": "PT1H", "reason": REASON, "break_glass": True}
    assert (
        stack.sender.submit_view(stack.slack.latest_view(ADA), values, user=ADA).status_code == 200
    )
    for approver in (GRACE, ALAN):
        cards = stack.wait(
            lambda a=approver: _review_cards(stack, stack.slack.dm_channel(a)),
            what=f"a review card for {approver}",
        )
        assert ACK in _buttons(cards[0])

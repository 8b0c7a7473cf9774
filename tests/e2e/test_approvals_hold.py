"""Approvals that cannot be stretched or reused, deliveries that never post twice, and approvers
who hear their own reminders and what became of what they approved (issue 9: 1, 6, 12, 15)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from stand_ins.fake_slack import SlackMessage
from tests.e2e.conftest import ADA, ADA_ENTRA, APPROVALS, GRACE, PRA, SECURITY_READER, Stack

REASON = "Rotate the emergency access keys"


def _buttons(message: Any) -> list[str]:
    return [
        e.get("action_id")
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


def _end_in_pim(stack: Stack, role: str) -> datetime:
    [assignment] = [
        a for a in stack.emu.state.active_assignments(ADA_ENTRA) if a["roleDefinitionId"] == role
    ]
    return datetime.fromisoformat(assignment["endDateTime"].replace("Z", "+00:00"))


def _activations(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.emu.state.requests if r["action"].lower() == "adminassign"]


def _active_dm(stack: Stack) -> SlackMessage:
    return stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "active until" in m.text], what="active DM"
    )[0]


def _approved_pra(stack: Stack) -> SlackMessage:
    """Ada asks for PRA for 1 hour, Grace approves, PIM activates: the approver card."""
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)
    _active_dm(stack)
    return card


def _open_extend(stack: Stack) -> dict[str, Any]:
    opened = len(stack.slack.calls("views.update"))
    latest = stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "pim-extend" in _buttons(m)], what="Extend"
    )[0]
    stack.sender.click("pim-extend", user=ADA, message=latest)
    stack.slack.wait_for("views.update", opened + 1, timeout=30)
    return stack.slack.latest_view(ADA)


def _extension_cards(stack: Stack) -> list[SlackMessage]:
    return [
        m
        for m in stack.channel_messages(APPROVALS)
        if m.text.lower().startswith("<@u0ada> asks to extend")
    ]


def _replies(stack: Stack, card: SlackMessage) -> list[SlackMessage]:
    return [m for m in stack.channel_messages(APPROVALS) if m.thread_ts == card.ts]


# --- 1. an approved elevation cannot be stretched without approval ----------------------------


def test_extending_an_approved_role_needs_a_new_approval(stack: Stack) -> None:
    card = _approved_pra(stack)
    approved_end = _end_in_pim(stack, PRA)
    stack.sender.submit_view(_open_extend(stack), {"extend_duration": "PT2H"}, user=ADA)
    [extension] = stack.wait(lambda: _extension_cards(stack), what="an extension card")
    stack.wait(
        lambda: "needs approval again" in "".join(stack.dm_texts(ADA)[-1:]), what="Ada is told"
    )
    assert _end_in_pim(stack, PRA) == approved_end  # nothing moved in PIM on her word alone

    stack.sender.click("pim-approve-extension", user=GRACE, message=extension)
    stack.wait(lambda: _end_in_pim(stack, PRA) > approved_end, what="the end moved in PIM")
    assert _end_in_pim(stack, PRA) - approved_end == timedelta(hours=2)
    # The approvers' own card shows the extension, who approved it, and the new end.
    stack.wait(
        lambda: "Extended once" in str(stack.slack.message(APPROVALS, card.ts).blocks),
        what="the card shows the extension",
    )
    blocks = str(stack.slack.message(APPROVALS, card.ts).blocks)
    assert "approved by <@U0GRACE>" in blocks and "now until" in blocks


def test_self_extension_allowed_up_to_the_stated_total_then_approval_again(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        policy="roles:\n  Privileged Role Administrator:\n    self_extension: {up_to: 2h}\n"
    )
    card = _approved_pra(stack)
    approved_end = _end_in_pim(stack, PRA)
    form = _open_extend(stack)
    assert "extend it yourself up to 2h in all" in str(form["blocks"])
    stack.sender.submit_view(form, {"extend_duration": "PT1H"}, user=ADA)
    stack.wait(lambda: _end_in_pim(stack, PRA) > approved_end, what="self-extension in PIM")
    assert _end_in_pim(stack, PRA) - approved_end == timedelta(hours=1)
    assert not _extension_cards(stack)
    # Approvers see it: on the card, and in a short thread reply under it.
    stack.wait(
        lambda: "1 without a new approval" in str(stack.slack.message(APPROVALS, card.ts).blocks),
        what="the card shows the self-extension",
    )
    stack.wait(lambda: _replies(stack, card), what="a thread reply for the approvers")
    assert "was extended" in _replies(stack, card)[0].text
    assert len(_replies(stack, card)) == 1

    # Past two hours in all it goes to the approvers again.
    stack.sender.submit_view(_open_extend(stack), {"extend_duration": "PT30M"}, user=ADA)
    stack.wait(lambda: _extension_cards(stack), what="an extension card")
    assert _end_in_pim(stack, PRA) - approved_end == timedelta(hours=1)


# --- 6. a replayed extend submission extends once ------------------------------------------------


def test_the_same_extend_submission_posted_twice_extends_once(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    _active_dm(stack)
    before = _end_in_pim(stack, SECURITY_READER)
    view = _open_extend(stack)
    first = stack.sender.build_view_submission(view, {"extend_duration": "PT30M"}, user=ADA)
    assert stack.sender.post(first).status_code == 200
    stack.wait(lambda: _end_in_pim(stack, SECURITY_READER) > before, what="the first extension")
    # The very same submission again, signed at another second (so the replay cache, which
    # keys on timestamp and signature, lets it through): the use case itself must refuse it.
    signed_at = int(first.headers["X-Slack-Request-Timestamp"])
    again = stack.sender.sign(first.body, first.headers["Content-Type"], timestamp=signed_at - 1)
    assert stack.sender.post(again).status_code == 200
    stack.wait(
        lambda: "already sent" in " ".join(str(c.args) for c in stack.slack.calls()),
        what="the second submission is answered",
    )
    assert _end_in_pim(stack, SECURITY_READER) - before == timedelta(minutes=30)


# --- 12. stale approvals, and deliveries that post once per target ----------------------------


def test_an_approval_not_used_in_time_is_not_activated_days_later(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.open_home(GRACE)  # Grace is known to pimbot before Graph goes away
    stack.wait(lambda: stack.slack.home_view(GRACE), what="Grace's home tab")
    # Graph stops answering just as Grace approves: the activation's outcome is unknown, so
    # pimbot leaves the request approved for the sweep to reconcile (never a blind resend).
    stack.emu.faults.drop_next(200)
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: "Activating it now" in "".join(stack.dm_texts(ADA)), what="approved DM")
    stack.wait(lambda: stack.emu.faults.snapshot()["drop_next"] < 200, what="the attempt")
    settled = -1
    while settled != stack.emu.faults.snapshot()["drop_next"]:  # until pimbot gives up
        settled = stack.emu.faults.snapshot()["drop_next"]
        time.sleep(2)
    stack.emu.faults.reset()
    # Graph is back, but only two days later does the sweep get to it.
    stack.emu.advance_clock(2 * 24 * 3600)
    stack.runtime.sweeper.sweep()
    assert not _activations(stack)  # no activation on a two-day-old yes
    assert not stack.emu.state.active_assignments(ADA_ENTRA)
    stack.wait(lambda: "lapsed" in "".join(stack.dm_texts(ADA)[-1:]), what="Ada is told why")
    stack.wait(
        lambda: "lapsed" in str(stack.slack.message(APPROVALS, card.ts).blocks),
        what="the card says why",
    )
    stack.wait(lambda: _replies(stack, card), what="a thread reply for Grace")
    assert "failed" in _replies(stack, card)[0].text


def test_a_retried_delivery_updates_its_card_instead_of_posting_another(stack: Stack) -> None:
    # The card goes out, then telling the requester fails: the whole delivery is retried.
    stack.slack.fail_next("chat.postMessage", "internal_error", after=1)
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.wait(
        lambda: [c for c in stack.slack.calls("chat.postMessage") if not c.ok], what="the failure"
    )
    stack.emu.advance_clock(2 * 60)  # past the outbox's redelivery delay
    stack.runtime.sweeper.sweep()
    stack.wait(lambda: "went to the approvers" in "".join(stack.dm_texts(ADA)), what="the DM")
    assert [m.ts for m in stack.channel_messages(APPROVALS)] == [card.ts]  # one card, updated
    assert "pim-approve" in _buttons(stack.slack.message(APPROVALS, card.ts))


# --- 15. approvers get their own reminder, and hear what became of what they approved --------


def test_approvers_get_their_own_nudge_with_approve_and_deny(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(PIMBOT_APPROVALS_CHANNEL="")  # cards by DM, so approvers are nudged
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.wait(lambda: stack.dms(GRACE), what="Grace's card")
    stack.emu.advance_clock(61 * 60)
    stack.runtime.sweeper.sweep()
    nudge = stack.wait(
        lambda: [m for m in stack.dms(GRACE) if "still waiting" in m.text], what="the nudge"
    )[0]
    assert "Your request" not in nudge.text
    assert "<@U0ADA> asked for" in nudge.text and "(1h) 1h 1m ago" in nudge.text
    assert {"pim-approve", "pim-deny"} <= set(_buttons(nudge))
    assert "pim-cancel" not in _buttons(nudge)
    assert not [m for m in stack.dms(ADA) if "asked for" in m.text]  # not to the requester

    stack.sender.click("pim-approve", user=GRACE, message=nudge)
    # (PIM is asked with a real-time start while the emulator's clock runs ahead, so look at
    # what pimbot recorded rather than at the emulator's instances.)
    stack.wait(lambda: _activations(stack), what="the activation in PIM")
    stack.wait(lambda: "is active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active")
    stack.wait(
        lambda: "pim-approve" not in _buttons(stack.slack.message(nudge.channel, nudge.ts)),
        what="the nudge loses its buttons once decided",
    )


def test_approvers_hear_when_what_they_approved_ends_early(stack: Stack) -> None:
    card = _approved_pra(stack)
    stack.emu.advance_clock(6 * 60)  # past PIM's five-minute minimum
    stack.sender.click("pim-deactivate", user=ADA, message=_active_dm(stack))
    stack.wait(lambda: _replies(stack, card), what="a thread reply under the card")
    assert "ended" in _replies(stack, card)[0].text and "early" in _replies(stack, card)[0].text

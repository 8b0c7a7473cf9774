"""Transitions say what they did (issue 10, item 1): a change that alters what a person sees
reaches the card and the requester without any use case remembering to say so."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from tests.e2e.conftest import ADA, ADA_ENTRA, APPROVALS, GRACE, PRA, Stack

REASON = "Rotate the emergency access keys"
REQUESTS = "/roleManagement/directory/roleAssignmentScheduleRequests"


def _end_in_pim(stack: Stack) -> datetime:
    [assignment] = [
        a for a in stack.emu.state.active_assignments(ADA_ENTRA) if a["roleDefinitionId"] == PRA
    ]
    return datetime.fromisoformat(assignment["endDateTime"].replace("Z", "+00:00"))


def _admin_extends_in_the_portal(stack: Stack, new_end: datetime) -> None:
    """An admin moves the end in PIM itself (adminExtend over HTTPS), not through pimbot."""
    start = stack.emu.state.active_assignments(ADA_ENTRA)[0]["startDateTime"]
    body = {
        "action": "adminExtend",
        "principalId": ADA_ENTRA,
        "roleDefinitionId": PRA,
        "directoryScopeId": "/",
        "justification": "extended by the on-call admin in the Entra portal",
        "scheduleInfo": {
            "startDateTime": start,
            "expiration": {
                "type": "afterDateTime",
                "endDateTime": new_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        },
    }
    with httpx.Client(verify=stack.emu.client_ssl_context(), trust_env=False) as client:
        response = client.post(
            stack.emu.graph_url + REQUESTS,
            headers={"Authorization": f"Bearer {stack.emu.mint_token()}"},
            json=body,
        )
    assert response.status_code == 201, response.text


def test_an_end_moved_in_pim_reaches_the_card_and_the_requester(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: "active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active DM")
    approved_end = _end_in_pim(stack)
    dms_before = len(stack.dms(ADA))

    new_end = approved_end + timedelta(hours=2)
    _admin_extends_in_the_portal(stack, new_end)
    assert _end_in_pim(stack) == new_end
    # pimbot's own end comes; the sweep asks PIM, which shows the later end.
    stack.emu.clock.advance(timedelta(hours=1, minutes=1))
    stack.runtime.sweeper.sweep()

    epoch = f"<!date^{int(new_end.timestamp())}^"
    blocks = str(stack.slack.message(APPROVALS, card.ts).blocks)
    assert epoch in blocks, "the approvers' card still shows the old end"
    dms = stack.dms(ADA)
    assert len(dms) == dms_before + 1, "Ada was not told"
    latest = dms[-1]
    assert "changed in PIM, outside pimbot" in latest.text
    assert f"{new_end:%H:%M} UTC" in latest.text
    assert "pim-extend" in str(latest.blocks)  # still active: her buttons stay
    # The approvers hear it too, in a thread under the card they approved.
    replies = [m for m in stack.channel_messages(APPROVALS) if m.thread_ts == card.ts]
    assert any("changed in PIM" in m.text for m in replies)
    # Delivered once: a second sweep finds nothing owed.
    stack.runtime.sweeper.sweep()
    assert len(stack.dms(ADA)) == dms_before + 1


def test_an_end_moved_before_the_reminder_is_told_instead_of_a_stale_reminder(
    stack: Stack,
) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.sender.click("pim-approve", user=GRACE, message=stack.card())
    stack.wait(lambda: "active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active DM")
    new_end = _end_in_pim(stack) + timedelta(hours=2)
    _admin_extends_in_the_portal(stack, new_end)
    # Our reminder comes 10 minutes before the old end; PIM's end is two hours past that.
    stack.emu.clock.advance(timedelta(minutes=51))
    stack.runtime.sweeper.sweep()
    latest = stack.dms(ADA)[-1]
    assert "changed in PIM, outside pimbot" in latest.text
    assert f"{new_end:%H:%M} UTC" in latest.text
    assert not any("ends at" in text for text in stack.dm_texts(ADA))  # no stale reminder
    # The reminder comes before the real end instead.
    stack.emu.clock.advance(timedelta(hours=2))
    stack.runtime.sweeper.sweep()
    reminder = stack.dms(ADA)[-1]
    assert "ends at" in reminder.text and f"{new_end:%H:%M} UTC" in reminder.text

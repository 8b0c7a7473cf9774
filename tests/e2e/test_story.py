"""The full story through Slack's front door: request, card, approve, activation, DMs."""

from __future__ import annotations

from tests.e2e.conftest import ADA, ADA_ENTRA, APPROVALS, GRACE, PRA, Stack


def test_request_card_approve_activate_and_tell_everyone(stack: Stack) -> None:
    response = stack.request(
        ADA, {"duration": "PT1H", "reason": "Rotate the break-glass keys"}, PRA
    )
    assert response.status_code == 200, response.text
    card = stack.card()
    assert "Privileged Role Administrator" in card.text
    assert any(b.get("type") == "actions" for b in card.blocks)  # Approve / Deny

    stack.sender.click("pim-approve", user=GRACE, message=card)
    active = stack.wait(
        lambda: [
            a for a in stack.emu.state.active_assignments(ADA_ENTRA) if a["roleDefinitionId"] == PRA
        ],
        what="activation in PIM",
    )
    assert active
    stack.wait(
        lambda: any("active" in t.lower() for t in stack.dm_texts(ADA)), what="the active DM"
    )
    updated = stack.slack.message(APPROVALS, card.ts)
    assert updated.edits >= 1
    assert not any(b.get("type") == "actions" for b in updated.blocks)  # buttons gone

"""PIM's own approvals decided from Slack: the approver decides *in PIM, as themselves* (their
own sign-in), PIM records the approver, and pimbot follows what PIM does, wherever it was
decided. Through pimbot's real HTTP endpoint, the emulator over HTTPS and both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stand_ins.graph_emulator import Tenant, default_tenant
from stand_ins.graph_emulator.tenant import ApprovalStageSettings, Approver
from tests.e2e.conftest import ADA, ADA_ENTRA, ALAN, APPROVALS, GRACE, PRA, Stack
from tests.e2e.test_delegated import (
    PEOPLE,
    connect,
    decide_in_portal,
    finish_sign_in,
    self_requests,
    sign_in_link,
    sign_in_link_count,
)

TWO_STAGES = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"  # Conditional Access Administrator
GRACE_ENTRA = "5846ce5e-e5bf-49f8-8732-e9c302694d9e"
ALAN_ENTRA = "df1790b4-cca9-4cb3-80f7-6c1595cf002e"
# Roles without MFA go through the broker in auto mode: pin these to the person.
PINNED = """
roles:
  Privileged Role Administrator:
    mode: delegated
  Conditional Access Administrator:
    mode: delegated
"""


def _stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack(PINNED, delegated=True)
    connect(stack)  # Ada
    return stack


def _connect(stack: Stack, slack_user: str, who: str) -> None:
    """An approver signs in beforehand (``/pim connect``)."""
    before = sign_in_link_count(stack, slack_user)
    stack.sender.command("/pim", "connect", user=slack_user)
    page, _ = finish_sign_in(stack, sign_in_link(stack, slack_user, after=before), who)
    assert page.status_code == 200, page.text


def _ask(stack: Stack, role: str) -> dict[str, Any]:
    stack.request(ADA, {"duration": "PT1H", "reason": "Grant the auditors access"}, role)
    [made] = stack.wait(lambda: self_requests(stack, "selfActivate"), what="selfActivate")
    assert str(made["status"]).startswith("PendingApproval") and made["approvalId"]
    return made


def _pim_card(stack: Stack, stage: int = 1) -> Any:
    def found() -> Any:
        cards = [
            m
            for m in stack.channel_messages(APPROVALS)
            if f"stage {stage} of" in str(m.blocks) and "pim-approve" in str(m.blocks)
        ]
        return cards[-1] if cards else None

    return stack.wait(found, what=f"PIM's approval card for stage {stage}")


def approve_in_pim(stack: Stack, user: str, card: Any, why: str = "Ticket checked") -> None:
    """Approve on PIM's card: the stage requires the approver's justification (PIM's
    isApproverJustificationRequired), so the click opens a form for it first."""
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-approve", user=user, message=card)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    view = stack.slack.latest_view(user)
    assert view["title"]["text"] == "Approve in PIM"
    stack.sender.submit_view(view, {"deny_reason": why}, user=user)


def _steps(stack: Stack) -> list[dict[str, Any]]:
    return [s for a in stack.emu.state.approvals for s in a["steps"]]


def _replies(stack: Stack, user: str) -> str:
    return " ".join(
        str(c.args)
        for c in stack.slack.calls()
        if c.method in ("chat.postEphemeral", "response_url", "chat.postMessage")
        and (
            c.args.get("user") == user
            or c.args.get("channel") in (user, stack.slack.dm_channel(user))
        )
    )


def test_grace_approves_in_pim_from_slack_and_ada_is_active_as_herself(
    make_stack: Callable[..., Stack],
) -> None:
    stack = _stack(make_stack)
    made = _ask(stack, PRA)
    card = _pim_card(stack)
    assert "adminAssign" not in str(stack.emu.state.requests)
    # Grace has not signed in yet: her click brings a sign-in link; the decision follows it.
    approve_in_pim(stack, GRACE, card)
    link = sign_in_link(stack, GRACE)
    stack.wait(lambda: "sign in" in _replies(stack, GRACE).lower(), what="the sign-in answer")
    page, _ = finish_sign_in(stack, link, "grace")
    assert page.status_code == 200 and "decision is recorded in PIM" in page.text, page.text
    [step] = _steps(stack)
    assert step["reviewResult"] == "Approve" and step["reviewedBy"]["id"] == GRACE_ENTRA
    assert step["justification"] == "Ticket checked"  # hers, asked for, carried to PIM
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    assert made["principalId"] == ADA_ENTRA
    updated = stack.slack.message(APPROVALS, card.ts)
    assert "pim-approve" not in str(updated.blocks)  # decided: the buttons are gone


def test_two_stages_need_one_approval_each_from_different_people(
    make_stack: Callable[..., Stack],
) -> None:
    stack = _stack(make_stack)
    _connect(stack, GRACE, "grace")
    _connect(stack, ALAN, "alan")
    _ask(stack, TWO_STAGES)
    first = _pim_card(stack, 1)
    # Alan is stage 2's approver, not stage 1's: PIM refuses him and nothing changes.
    approve_in_pim(stack, ALAN, first)
    stack.wait(
        lambda: "not an approver for this request in PIM" in _replies(stack, ALAN),
        what="the refusal",
    )
    assert all(s["reviewResult"] == "NotReviewed" for s in _steps(stack))
    approve_in_pim(stack, GRACE, first)
    second = _pim_card(stack, 2)
    assert not any("is active until" in t for t in stack.dm_texts(ADA))
    approve_in_pim(stack, ALAN, second)
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    reviewers = [s["reviewedBy"]["id"] for s in _steps(stack)]
    assert reviewers == [GRACE_ENTRA, ALAN_ENTRA]


def test_a_denial_at_the_second_stage_ends_it(make_stack: Callable[..., Stack]) -> None:
    stack = _stack(make_stack)
    _connect(stack, GRACE, "grace")
    _connect(stack, ALAN, "alan")
    _ask(stack, TWO_STAGES)
    approve_in_pim(stack, GRACE, _pim_card(stack, 1))
    second = _pim_card(stack, 2)
    opened = len(stack.slack.calls("views.open"))
    stack.sender.click("pim-deny", user=ALAN, message=second)
    stack.slack.wait_for("views.open", opened + 1, timeout=30)
    stack.sender.submit_view(
        stack.slack.latest_view(ALAN), {"deny_reason": "Not during the freeze"}, user=ALAN
    )
    stack.wait(lambda: any("denied" in t for t in stack.dm_texts(ADA)), what="denied")
    denied = [s for s in _steps(stack) if s["reviewResult"] == "Deny"]
    assert [s["reviewedBy"]["id"] for s in denied] == [ALAN_ENTRA]
    assert self_requests(stack, "selfActivate")[0]["status"] == "Denied"


def test_nobody_approves_their_own_request(make_stack: Callable[..., Stack]) -> None:
    stack = _stack(make_stack)
    _ask(stack, PRA)
    stack.sender.click("pim-approve", user=ADA, message=_pim_card(stack))
    stack.wait(lambda: "own request" in _replies(stack, ADA), what="the refusal")
    assert all(s["reviewResult"] == "NotReviewed" for s in _steps(stack))


def test_a_decision_made_in_pims_portal_is_picked_up_within_one_sweep(
    make_stack: Callable[..., Stack],
) -> None:
    stack = _stack(make_stack)
    made = _ask(stack, PRA)
    card = _pim_card(stack)
    decide_in_portal(
        stack,
        made["id"],
        {
            "decision": "approve",
            "reviewer": PEOPLE["grace"][0],
            "justification": "Looked at the ticket in the portal",
        },
    )
    stack.runtime.sweeper.sweep()
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    updated = stack.slack.message(APPROVALS, card.ts)
    assert "pim-approve" not in str(updated.blocks)
    assert "approved by Grace Hopper" in str(updated.blocks)  # read from PIM's own steps


def test_a_stage_decided_in_the_portal_moves_the_card_to_the_next_stage(
    make_stack: Callable[..., Stack],
) -> None:
    stack = _stack(make_stack)
    _connect(stack, ALAN, "alan")
    made = _ask(stack, TWO_STAGES)
    _pim_card(stack, 1)
    decide_in_portal(
        stack,
        made["id"],
        {"decision": "approve", "reviewer": PEOPLE["grace"][0], "justification": "ok"},
    )
    stack.runtime.sweeper.sweep()
    second = _pim_card(stack, 2)
    assert "stage 1 approved by Grace Hopper" in str(second.blocks)
    approve_in_pim(stack, ALAN, second)
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")


def test_the_requester_cancels_in_pim_from_slack(make_stack: Callable[..., Stack]) -> None:
    stack = _stack(make_stack)
    _ask(stack, PRA)
    card = _pim_card(stack)
    waiting = stack.wait(
        lambda: [m for m in stack.dms(ADA) if "waiting for approval in PIM" in m.text],
        what="the awaiting-PIM DM",
    )[-1]
    stack.sender.click("pim-cancel", user=ADA, message=waiting)
    stack.wait(lambda: self_requests(stack, "selfActivate")[0]["status"] == "Canceled")
    stack.wait(lambda: any("cancel" in t.lower() for t in stack.dm_texts(ADA)), what="cancelled")
    assert "pim-approve" not in str(stack.slack.message(APPROVALS, card.ts).blocks)


def _escalating_tenant() -> Tenant:
    """PRA with one stage: Grace decides, and after 30 unanswered minutes Alan may too."""
    tenant = default_tenant()
    stage = ApprovalStageSettings(
        approvers=(Approver(user="grace@contoso.example"),),
        escalation_enabled=True,
        escalation_minutes=30,
        escalation_approvers=(Approver(user="alan@contoso.example"),),
    )
    roles = tuple(
        role.model_copy(
            update={
                "activation": role.activation.model_copy(
                    update={"approvers": (), "approval_stages": (stage,)}
                )
            }
        )
        if role.id == PRA
        else role
        for role in tenant.roles
    )
    return tenant.model_copy(update={"roles": roles})


def test_an_unanswered_stage_escalates_when_pim_does(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(PINNED, tenant=_escalating_tenant(), delegated=True)
    connect(stack)
    _connect(stack, ALAN, "alan")
    _ask(stack, PRA)
    _pim_card(stack)
    stack.runtime.sweeper.sweep()
    assert not _escalation_card(stack)  # not before the escalation time
    stack.emu.advance_clock(31 * 60)
    stack.runtime.sweeper.sweep()
    card = stack.wait(lambda: _escalation_card(stack), what="the escalation card to Alan")
    approve_in_pim(stack, ALAN, card)
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    [step] = _steps(stack)
    assert step["reviewedBy"]["id"] == ALAN_ENTRA


def _escalation_card(stack: Stack) -> Any:
    cards = [m for m in stack.dms(ALAN) if "pim-approve" in str(m.blocks)]
    return cards[-1] if cards else None

"""Everything a person can do in Slack, through pimbot's real HTTP endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stand_ins.slack_signing import state_values, view_submission_payload
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import (
    ADA,
    ADA_ENTRA,
    ALAN,
    APPROVALS,
    EXCHANGE_ADMIN,
    GLOBAL_ADMIN,
    GRACE,
    PRA,
    SECURITY_READER,
    Stack,
)

REASON = "Rotate the emergency access keys"


def _activations(stack: Stack, role: str) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.emu.state.requests
        if r["roleDefinitionId"] == role and r["action"].lower() == "adminassign"
    ]


def _buttons(message: Any) -> list[str]:
    return [
        e.get("action_id")
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    ]


def _submit_raw(stack: Stack, user: str, overrides: dict[str, Any]) -> Any:
    """Submit the request form with state a tampering client could send (values off-list)."""
    view = stack.open_form(user)
    state = state_values(view, {"role": PRA, "duration": "PT1H", "reason": REASON})
    for block_id, element_state in overrides.items():
        action_id = next(iter(state[block_id]))
        state[block_id][action_id] = element_state
    payload = view_submission_payload(stack.sender.actor(user), view, state)
    from stand_ins.slack_signing import interactivity_body

    return stack.sender.post(
        stack.sender.sign(interactivity_body(payload), "application/x-www-form-urlencoded")
    )


def _said(stack: Stack) -> str:
    """Everything pimbot has sent to Slack so far, as one string."""
    return " ".join(str(c.args) for c in stack.slack.calls())


def _audit(database_url: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return uow.audit.list_recent(limit=100)
    finally:
        engine.dispose()


# --- the transport ---------------------------------------------------------------------------


def test_bad_signatures_and_stale_timestamps_are_refused(stack: Stack) -> None:
    assert stack.sender.command("/pim", "help", user=ADA, bad_signature=True).status_code == 401
    assert stack.sender.command("/pim", "help", user=ADA, stale=True).status_code == 401
    assert stack.slack.calls("views.open") == []


def test_health_and_unknown_paths(stack: Stack) -> None:
    import httpx

    base = stack.events_url.removesuffix("/slack/events")
    health = httpx.get(f"{base}/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True
    assert httpx.get(f"{base}/nope").status_code == 404


def test_help_and_unknown_subcommands_answer_with_help(stack: Stack) -> None:
    for text in ("help", "frobnicate"):
        response = stack.sender.command("/pim", text, user=ADA)
        assert response.status_code == 200
        assert "/pim request" in response.text and "deactivate" in response.text


def test_modal_opens_in_a_loading_state_then_fills_in(stack: Stack) -> None:
    started = time.monotonic()
    response = stack.sender.command("/pim", "", user=ADA)
    assert response.status_code == 200
    assert time.monotonic() - started < 3  # acked within Slack's budget
    opened = stack.slack.wait_for("views.open", timeout=30)[0]
    assert "Asking PIM" in str(opened.args["view"])
    stack.slack.wait_for("views.update", timeout=30)
    view = stack.slack.latest_view(ADA)
    text = str(view)
    for role in ("Privileged Role Administrator", "Security Reader", "Exchange Administrator"):
        assert role in text


# --- deciding ----------------------------------------------------------------------------------


def test_deny_with_reason_tells_the_requester(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-deny", user=GRACE, message=card)
    stack.slack.wait_for("views.open", 2, timeout=30)
    stack.sender.submit_view(
        stack.slack.latest_view(GRACE), {"deny_reason": "Not during the change freeze"}, user=GRACE
    )
    stack.wait(lambda: "denied your request" in stack.dm_texts(ADA)[-1], what="denied DM")
    denied = stack.dms(ADA)[-1]
    assert "Not during the change freeze" in str(denied.blocks)
    assert _buttons(stack.slack.message(APPROVALS, card.ts)) == []
    assert _activations(stack, PRA) == []


def test_quorum_of_two_needs_two_different_approvers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(policy="roles:\n  Privileged Role Administrator:\n    quorum: 2\n")
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(
        lambda: "1 of 2" in str(stack.slack.message(APPROVALS, card.ts).blocks),
        what="quorum progress on the card",
    )
    assert _activations(stack, PRA) == []
    stack.sender.click("pim-approve", user=GRACE, message=card)  # the same person again
    time.sleep(0.5)
    assert _activations(stack, PRA) == []
    stack.sender.click("pim-approve", user=ALAN, message=card)
    stack.wait(lambda: _activations(stack, PRA), what="activation after the second approval")
    assert len(_activations(stack, PRA)) == 1


def test_roles_needing_no_approval_activate_at_once_with_an_info_card(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT2H", "reason": "Investigate alert 77"}, SECURITY_READER)
    stack.wait(lambda: _activations(stack, SECURITY_READER), what="immediate activation")
    info = stack.card()
    assert "Security Reader" in info.text and _buttons(info) == []
    stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="active DM")


def test_self_approval_is_refused(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.sender.click("pim-approve", user=ADA, message=stack.card())
    stack.wait(
        lambda: any("own request" in str(c.args) for c in stack.slack.calls()), what="refusal"
    )
    assert _activations(stack, PRA) == []


def test_guests_and_external_users_are_refused_and_audited(stack: Stack, database_url: str) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    for outsider in ("U0GUEST", "U0EXTERNAL"):
        stack.sender.click("pim-approve", user=outsider, message=card)
    stack.wait(
        lambda: len([a for a in _audit(database_url) if a.action == "identity_refused"]) == 2,
        what="two audit entries",
    )
    stack.wait(
        lambda: "Guests cannot" in _said(stack) and "Slack Connect" in _said(stack),
        what="both refusals told",
    )
    response = stack.sender.command("/pim", "roles", user="U0GUEST")
    assert response.status_code == 200
    assert _activations(stack, PRA) == []


def test_a_double_click_activates_once(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    clicks = [
        threading.Thread(
            target=stack.sender.click,
            args=("pim-approve",),
            kwargs={"user": GRACE, "message": card},
        )
        for _ in range(2)
    ]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    stack.wait(lambda: _activations(stack, PRA), what="activation")
    time.sleep(0.5)
    assert len(_activations(stack, PRA)) == 1


def test_two_approvers_racing_activate_once(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    barrier = threading.Barrier(2)

    def click(user: str) -> None:
        barrier.wait()
        stack.sender.click("pim-approve", user=user, message=card)

    racers = [threading.Thread(target=click, args=(u,)) for u in (GRACE, ALAN)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    stack.wait(lambda: _activations(stack, PRA), what="activation")
    time.sleep(0.5)
    assert len(_activations(stack, PRA)) == 1
    stack.wait(lambda: "Already approved by" in _said(stack), what="the loser is told")


# --- modal field errors ------------------------------------------------------------------------


def test_each_bad_input_comes_back_on_its_field(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(
        policy="roles:\n  Exchange Administrator:\n    ticket_pattern: '^CHG-\\d+$'\n"
    )
    too_long = _submit_raw(
        stack,
        ADA,
        {
            "duration": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "9 hours"},
                    "value": "PT9H",
                },
            }
        },
    )
    assert "Too long" in too_long.json()["errors"]["duration"]
    too_short = _submit_raw(stack, ADA, {"reason": {"type": "plain_text_input", "value": "x"}})
    assert "at least" in too_short.json()["errors"]["reason"]
    past = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    in_past = _submit_raw(
        stack, ADA, {"start": {"type": "datetimepicker", "selected_date_time": past}}
    )
    assert "past" in in_past.json()["errors"]["start"]
    not_eligible = _submit_raw(
        stack,
        ADA,
        {
            "role": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "User Administrator"},
                    "value": "fe930be7-5e62-47db-91af-98c3a49a38b1",
                },
            }
        },
    )
    assert "not eligible" in not_eligible.json()["errors"]["role"]
    mfa = _submit_raw(
        stack,
        ADA,
        {
            "role": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": "Global Administrator"},
                    "value": GLOBAL_ADMIN,
                },
            }
        },
    )
    assert "multi-factor" in mfa.json()["errors"]["role"]
    ticket = stack.request(
        ADA, {"duration": "PT1H", "reason": REASON, "ticket_number": "JIRA-1"}, EXCHANGE_ADMIN
    )
    assert "does not look like" in ticket.json()["errors"]["ticket_number"]
    assert stack.emu.state.requests == []
    # Already active: activate Security Reader, then ask again.
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    stack.wait(lambda: _activations(stack, SECURITY_READER), what="activation")
    again = stack.request(
        ADA, {"duration": "PT1H", "reason": "Investigate alert 78"}, SECURITY_READER
    )
    assert "already" in again.json()["errors"]["role"]


def test_mentions_in_user_text_cannot_ping_anyone(stack: Stack) -> None:
    stack.request(
        ADA,
        {"duration": "PT1H", "reason": "<!channel> <@U0GRACE> & <https://evil.example|click>"},
        PRA,
    )
    card = stack.card()
    rendered = str(card.blocks) + card.text
    assert "<!channel>" not in rendered and "<@U0GRACE>" not in rendered
    assert "&lt;!channel&gt;" in rendered and "&amp;" in rendered


# --- the other commands and App Home -----------------------------------------------------------


def test_roles_status_pending_whoami_and_connect(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.card()

    def reply(user: str, text: str) -> str:
        before = len(stack.slack.calls("response_url"))
        stack.sender.command("/pim", text, user=user)
        return str(stack.slack.wait_for("response_url", before + 1, timeout=30)[-1].args)

    assert "Security Reader" in reply(ADA, "roles") and "through a group" in reply(ADA, "roles")
    assert "Privileged Role Administrator" in reply(ADA, "status")
    assert "Privileged Role Administrator" in reply(GRACE, "pending")
    assert "Nothing waits" in reply(ADA, "pending")
    assert ADA_ENTRA in reply(ADA, "whoami")
    # Broker-only deployment: signing in is explained, not attempted.
    assert "runs in broker mode" in reply(ADA, "connect")


def test_deactivate_command_ends_the_active_role(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    stack.wait(lambda: "active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active DM")
    stack.emu.advance_clock(6 * 60)  # past PIM's five-minute minimum
    stack.sender.command("/pim", "deactivate security", user=ADA)
    stack.wait(
        lambda: (
            not [
                a
                for a in stack.emu.state.active_assignments(ADA_ENTRA)
                if a["roleDefinitionId"] == SECURITY_READER
            ]
        ),
        what="deactivation",
    )
    stack.wait(lambda: "is deactivated" in "".join(stack.dm_texts(ADA)[-1:]), what="the DM")


def test_app_home_shows_roles_and_what_waits_for_an_approver(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.card()
    stack.sender.open_home(GRACE)
    home = stack.wait(lambda: stack.slack.home_view(GRACE), what="Grace's home tab")
    assert "Privileged Role Administrator" in str(home)
    assert "pim-approve" in str(home)


def test_an_extension_needing_approval_goes_to_the_approvers(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        policy="roles:\n  Security Reader:\n    extension_requires_approval: true\n"
        "    approvers: [{slack_usergroup: pim-approvers}]\n"
    )
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    active_dm = stack.wait(
        lambda: [m for m in stack.dms(ADA)[-1:] if "active until" in m.text], what="active DM"
    )[0]
    opened = len(stack.slack.calls("views.update"))
    stack.sender.click("pim-extend", user=ADA, message=active_dm)
    stack.slack.wait_for("views.update", opened + 1, timeout=30)
    stack.sender.submit_view(stack.slack.latest_view(ADA), {"extend_duration": "PT30M"}, user=ADA)
    card = stack.wait(
        lambda: [m for m in stack.channel_messages(APPROVALS) if "extend" in m.text.lower()],
        what="extension card",
    )[0]
    before = _end_in_pim(stack)
    stack.sender.click("pim-approve-extension", user=GRACE, message=card)
    stack.wait(lambda: _end_in_pim(stack) > before, what="the end moved in PIM")
    assert _end_in_pim(stack) - before == timedelta(minutes=30)
    stack.wait(lambda: "now lasts until" in "".join(stack.dm_texts(ADA)[-1:]), what="extended DM")
    assert "pim-approve-extension" not in _buttons(stack.slack.message(APPROVALS, card.ts))


def test_extend_command_opens_the_extend_form(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    stack.wait(lambda: "active until" in "".join(stack.dm_texts(ADA)[-1:]), what="active DM")
    opened = len(stack.slack.calls("views.update"))
    stack.sender.command("/pim", "extend reader", user=ADA)
    stack.slack.wait_for("views.update", opened + 1, timeout=30)
    assert "Extend" in str(stack.slack.latest_view(ADA)["title"])


def _end_in_pim(stack: Stack) -> datetime:
    [assignment] = [
        a
        for a in stack.emu.state.active_assignments(ADA_ENTRA)
        if a["roleDefinitionId"] == SECURITY_READER
    ]
    return datetime.fromisoformat(assignment["endDateTime"].replace("Z", "+00:00"))


def test_slack_rate_limits_are_retried_after_the_ack(stack: Stack) -> None:
    stack.slack.rate_limit_next("chat.postMessage", 1, retry_after=1)
    started = time.monotonic()
    response = stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    assert response.status_code == 200
    assert time.monotonic() - started < 3  # the ack did not wait for the retry
    card = stack.card()
    assert "Privileged Role Administrator" in card.text
    posts = stack.slack.calls("chat.postMessage")
    assert [c.status for c in posts][:2] == [429, 200]

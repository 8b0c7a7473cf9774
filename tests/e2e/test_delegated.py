"""Delegated mode end to end: `/pim connect` through the emulator's sign-in pages to pimbot's
own /auth/callback, then roles that need the person's own proof activate *as the person*
(selfActivate by Ada, not adminAssign by the app), with a step-up sign-in when PIM asks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from stand_ins.graph_emulator.sign_in_client import SignInError, sign_in_device, sign_in_response
from tests.e2e.conftest import ADA, ADA_ENTRA, GLOBAL_ADMIN, GRACE, PRA, SECURITY_READER, Stack

SECURITY_ADMIN = "194ae4cb-b126-40b2-bd5b-6091b380977d"  # authentication context c1
PEOPLE = {
    "ada": ("ada@contoso.example", "emulator-password-ada", "246810"),
    "grace": ("grace@contoso.example", "emulator-password-grace", "135790"),
    "alan": ("alan@contoso.example", "emulator-password-alan", None),  # no MFA method
}
SIGN_IN_BUTTON = "pim-sign-in-link"


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(delegated=True)


def sign_in_link(stack: Stack, user: str, *, after: int = 0) -> str:
    """The URL of the newest sign-in button pimbot DMed ``user`` (after ``after`` of them)."""

    def links() -> list[str]:
        found = []
        for message in stack.dms(user):
            for block in message.blocks:
                for element in block.get("elements", []):
                    if element.get("action_id") == SIGN_IN_BUTTON:
                        found.append(str(element["url"]))
        return found

    return str(stack.wait(lambda: links()[after:] and links()[-1], what="a sign-in link"))


def finish_sign_in(
    stack: Stack, url: str, who: str = "ada", *, mfa: bool = True
) -> tuple[httpx.Response, str]:
    """Sign in at the emulator as ``who``; follow its redirect to pimbot's callback page."""
    username, password, code = PEOPLE[who]
    answer = sign_in_response(
        url,
        username=username,
        password=password,
        mfa_code=code if mfa and code else None,
        verify=stack.emu.client_ssl_context(),
    )
    assert answer.redirect_uri == stack.public_url + "/auth/callback", answer
    assert answer.method == "POST"  # form_post: the code never travels in a URL
    return post_back(answer.redirect_uri, answer.params), answer.redirect_uri


def post_back(callback: str, params: dict[str, str]) -> httpx.Response:
    """What the browser does with Microsoft's form_post page: POST the fields to pimbot."""
    return httpx.post(callback, data=params, timeout=30)


def connect(stack: Stack, who: str = "ada") -> httpx.Response:
    before = sign_in_link_count(stack, ADA)
    response = stack.sender.command("/pim", "connect", user=ADA)
    assert response.status_code == 200
    page, _ = finish_sign_in(stack, sign_in_link(stack, ADA, after=before), who)
    return page


def sign_in_link_count(stack: Stack, user: str) -> int:
    return sum(
        1
        for m in stack.dms(user)
        for b in m.blocks
        for e in b.get("elements", [])
        if e.get("action_id") == SIGN_IN_BUTTON
    )


def decide_in_portal(stack: Stack, graph_request_id: str, decision: dict[str, str]) -> None:
    """An approver decides in PIM's own portal (the emulator's admin route), not in Slack."""
    answer = httpx.post(
        f"{stack.emu.url}/_emulator/approvals/{graph_request_id}",
        json=decision,
        verify=stack.emu.client_ssl_context(),
    )
    assert answer.status_code == 200, answer.text


def rows(stack: Stack, table: str) -> list[Any]:
    with stack.runtime.engine.connect() as connection:
        return list(connection.execute(text(f"SELECT * FROM {table}")))  # noqa: S608 (fixed)


def self_requests(stack: Stack, action: str) -> list[dict[str, Any]]:
    return [r for r in stack.emu.state.requests if str(r["action"]).lower() == action.lower()]


def test_connect_stores_a_sealed_sign_in_and_says_who(stack: Stack) -> None:
    page = connect(stack)
    assert page.status_code == 200, page.text
    assert "Connected as ada@contoso.example" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    [stored] = rows(stack, "delegated_sign_ins")
    assert stored.entra_id == ADA_ENTRA and stored.mfa
    # Sealed: neither the refresh token nor anything readable of the cache is in the row.
    assert "refresh_token" not in stored.sealed_cache and "secret" not in stored.sealed_cache
    whoami = stack.wait(lambda: [t for t in stack.dm_texts(ADA) if "Connected as" in t])
    assert "ada@contoso.example" in whoami[-1]


def test_an_mfa_role_activates_as_the_person_and_ends_with_self_deactivate(stack: Stack) -> None:
    connect(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    [made] = stack.wait(lambda: self_requests(stack, "selfActivate"), what="selfActivate")
    assert made["principalId"] == ADA_ENTRA
    assert self_requests(stack, "adminAssign") == []  # never the app's own assignment
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")
    stack.emu.advance_clock(6 * 60)  # PIM refuses to end an activation in its first 5 minutes
    response = stack.sender.command("/pim", "deactivate Global", user=ADA)
    assert response.status_code == 200
    [ended] = stack.wait(lambda: self_requests(stack, "selfDeactivate"), what="selfDeactivate")
    assert ended["principalId"] == ADA_ENTRA and self_requests(stack, "adminRemove") == []


def test_a_sign_in_without_mfa_is_never_used_for_an_mfa_role(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(delegated=True)
    stack.emu.update_sign_in(require_mfa=False)
    page = connect(stack)
    assert page.status_code == 200
    [stored] = rows(stack, "delegated_sign_ins")
    assert not stored.mfa
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    # A step-up link instead of a doomed selfActivate with a token PIM would refuse.
    url = sign_in_link(stack, ADA, after=1)
    assert self_requests(stack, "selfActivate") == []
    assert "claims=" in url
    stack.wait(lambda: any("needs you to sign in" in t for t in stack.dm_texts(ADA)))
    page, _ = finish_sign_in(stack, url)
    assert page.status_code == 200 and "active now" in page.text, page.text
    [made] = self_requests(stack, "selfActivate")
    assert made["principalId"] == ADA_ENTRA


def test_an_authentication_context_role_steps_up_and_activates_by_itself(stack: Stack) -> None:
    connect(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Tune the alert rules"}, SECURITY_ADMIN)
    url = sign_in_link(stack, ADA, after=1)
    assert "acrs" in httpx.URL(url).params.get("claims", "")
    page, _ = finish_sign_in(stack, url)
    assert page.status_code == 200 and "active now" in page.text, page.text
    [made] = self_requests(stack, "selfActivate")
    assert made["principalId"] == ADA_ENTRA
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")


def test_a_link_completed_by_someone_else_links_nobody(stack: Stack) -> None:
    stack.sender.command("/pim", "connect", user=ADA)
    page, _ = finish_sign_in(stack, sign_in_link(stack, ADA), "grace")
    assert page.status_code == 400
    assert "wrong account" in page.text and "grace@contoso.example" in page.text
    assert rows(stack, "delegated_sign_ins") == []
    with stack.runtime.engine.connect() as connection:
        refused = connection.execute(
            text("SELECT detail FROM audit_events WHERE action = 'sign_in_refused'")
        ).all()
    assert refused and "link was for" in refused[0][0]


def test_a_replayed_or_expired_link_links_nobody(stack: Stack) -> None:
    stack.sender.command("/pim", "connect", user=ADA)
    username, password, code = PEOPLE["ada"]
    answer = sign_in_response(
        sign_in_link(stack, ADA),
        username=username,
        password=password,
        mfa_code=code,
        verify=stack.emu.client_ssl_context(),
    )
    first = post_back(answer.redirect_uri, answer.params)
    assert first.status_code == 200
    again = post_back(answer.redirect_uri, answer.params)
    assert again.status_code == 400 and "already used" in again.text
    stack.sender.command("/pim", "disconnect", user=ADA)
    stack.wait(lambda: rows(stack, "delegated_sign_ins") == [], what="disconnect")
    stack.sender.command("/pim", "connect", user=ADA)
    url = sign_in_link(stack, ADA, after=1)
    stack.emu.advance_clock(11 * 60)
    late, _ = finish_sign_in(stack, url)
    assert late.status_code == 400 and "expired" in late.text
    assert rows(stack, "delegated_sign_ins") == []


def test_disconnect_leaves_no_token_and_says_what_it_removed(stack: Stack) -> None:
    connect(stack)
    assert len(rows(stack, "delegated_sign_ins")) == 1
    stack.sender.command("/pim", "disconnect", user=ADA)
    stack.wait(
        lambda: [
            c
            for c in stack.slack.calls("response_url")
            if "Removed 1 stored sign-in" in str(c.args)
        ],
        what="the disconnect reply",
    )
    assert rows(stack, "delegated_sign_ins") == [] and rows(stack, "signin_links") == []


def test_whoami_names_the_sign_in_and_each_roles_mode(stack: Stack) -> None:
    connect(stack)
    before = len(stack.slack.calls("response_url"))
    stack.sender.command("/pim", "whoami", user=ADA)

    def answer() -> str:
        return " ".join(str(c.args) for c in stack.slack.calls("response_url")[before:])

    stack.wait(lambda: "Signed in" in answer(), what="whoami")
    said = answer()
    assert "ada@contoso.example" in said and "with MFA" in said
    assert "Global Administrator: activated as you" in said
    # auto: a role without MFA or an authentication context stays with the broker.
    assert "Security Reader: activated by pimbot" in said


def test_a_held_request_fails_when_the_sign_in_never_comes(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    sign_in_link(stack, ADA)  # never used
    stack.emu.advance_clock(timedelta(minutes=11).total_seconds())
    stack.runtime.sweeper.sweep()
    stack.wait(
        lambda: any("not completed in time" in t for t in stack.dm_texts(ADA)), what="failure"
    )
    assert self_requests(stack, "selfActivate") == []


def test_broker_roles_still_use_the_app_in_auto_mode(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Investigate alert 77"}, SECURITY_READER)
    stack.wait(lambda: self_requests(stack, "adminAssign"), what="adminAssign")
    assert self_requests(stack, "selfActivate") == []


PINNED = """
roles:
  Privileged Role Administrator:
    mode: delegated
"""


def _pending_in_pim(make_stack: Callable[..., Stack]) -> tuple[Stack, str]:
    """Ada asks for PRA (pinned delegated): Grace approves in Slack, then PIM's own approval."""
    stack = make_stack(PINNED, delegated=True)
    connect(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Grant the auditors access"}, PRA)
    stack.sender.click("pim-approve", user=GRACE, message=stack.card())
    [made] = stack.wait(lambda: self_requests(stack, "selfActivate"), what="selfActivate")
    assert made["status"].startswith("PendingApproval")
    stack.wait(
        lambda: any("waiting for approval in PIM" in t for t in stack.dm_texts(ADA)),
        what="the awaiting-PIM DM",
    )
    return stack, str(made["id"])


def test_pims_own_approval_is_followed_until_it_is_granted(
    make_stack: Callable[..., Stack],
) -> None:
    stack, graph_id = _pending_in_pim(make_stack)
    stack.runtime.sweeper.sweep()  # still pending in PIM: nothing changes
    assert not any("is active until" in t for t in stack.dm_texts(ADA))
    # Approved in PIM's own portal (or by email), not in Slack: the next sweep notices.
    decide_in_portal(stack, graph_id, {"decision": "approve"})
    stack.runtime.sweeper.sweep()
    stack.wait(lambda: any("is active until" in t for t in stack.dm_texts(ADA)), what="active")


def test_a_denial_in_pim_ends_the_request(make_stack: Callable[..., Stack]) -> None:
    stack, graph_id = _pending_in_pim(make_stack)
    decide_in_portal(stack, graph_id, {"decision": "deny"})
    stack.runtime.sweeper.sweep()
    stack.wait(lambda: any("denied in PIM" in t for t in stack.dm_texts(ADA)), what="denied")


def test_the_active_dm_lists_the_conditional_access_policies_of_the_role(stack: Stack) -> None:
    connect(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    active = stack.wait(
        lambda: [m for m in stack.dms(ADA) if "is active until" in m.text], what="active"
    )
    said = str(active[-1].blocks)
    assert "Conditional Access policies that target this role" in said
    assert "Require compliant device for admins (on)" in said
    # A policy on another role (Security Administrator, report-only) is not listed.
    assert "Block legacy sign-in" not in said


def test_without_policy_read_the_active_dm_says_nothing_of_conditional_access(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(delegated=True)
    app = stack.emu.tenant.app
    stack.emu.update_tenant(
        app=app.model_copy(
            update={"permissions": tuple(p for p in app.permissions if p != "Policy.Read.All")}
        )
    )
    connect(stack)
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    active = stack.wait(
        lambda: [m for m in stack.dms(ADA) if "is active until" in m.text], what="active"
    )
    assert "Conditional Access" not in str(active[-1].blocks)


def test_socket_mode_gets_a_listener_for_health_metrics_and_the_sign_in_callback(
    stack: Stack,
) -> None:
    from bot.app.runtime import socket_mode_servers

    [server] = [
        s.start() for s in socket_mode_servers(stack.runtime, stack.runtime.settings, port=0)
    ]
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=10).json()["ok"] is True
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200
        # Slack's events come over the socket, never to this listener.
        assert httpx.post(f"{server.url}/slack/events", timeout=10).status_code == 404
        page = httpx.post(f"{server.url}/auth/callback", data={"state": "forged"}, timeout=10)
        assert page.status_code == 400 and "already used" in page.text
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    finally:
        server.stop()


def test_the_callback_never_shows_a_traceback(stack: Stack) -> None:
    page = httpx.post(
        f"{stack.public_url}/auth/callback",
        content=b"state=%ff%fe&code=\xff",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert page.status_code == 400
    assert "Traceback" not in page.text and "reference" in page.text


def _device_code(stack: Stack, user: str) -> tuple[str, str]:
    """(verification URI, user code) from the newest device-code DM to ``user``."""

    def found() -> tuple[str, str] | None:
        for message in reversed(stack.dms(user)):
            text_ = str(message.blocks)
            if "enter the code" in text_:
                code = text_.split("enter the code *", 1)[1].split("*", 1)[0]
                uri = text_.split("Open ", 1)[1].split(" in your browser", 1)[0]
                return uri, code
        return None

    return stack.wait(found, what="a device code in a DM")


def test_without_a_public_url_people_sign_in_by_device_code(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(delegated=True, PIMBOT_PUBLIC_URL="")
    stack.sender.command("/pim", "connect", user=ADA)
    uri, code = _device_code(stack, ADA)
    assert "Conditional Access" in str(stack.dms(ADA)[-1].blocks)  # it may be blocked
    stack.runtime.sweeper.sweep()  # not signed in yet: still pending, nothing stored
    assert rows(stack, "delegated_sign_ins") == []
    username, password, mfa = PEOPLE["ada"]
    sign_in_device(
        uri,
        code,
        username=username,
        password=password,
        mfa_code=mfa,
        verify=stack.emu.client_ssl_context(),
    )
    stack.runtime.sweeper.sweep()  # pimbot polls: the sign-in completes
    [stored] = rows(stack, "delegated_sign_ins")
    assert stored.entra_id == ADA_ENTRA and stored.mfa
    stack.wait(lambda: any("Connected as" in t for t in stack.dm_texts(ADA)), what="connected")
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the tenant keys"}, GLOBAL_ADMIN)
    [made] = stack.wait(lambda: self_requests(stack, "selfActivate"), what="selfActivate")
    assert made["principalId"] == ADA_ENTRA  # refreshed through the public client


def test_device_code_blocked_by_conditional_access_is_explained(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(delegated=True, PIMBOT_PUBLIC_URL="")
    stack.emu.update_sign_in(block_device_code=True)
    stack.sender.command("/pim", "connect", user=ADA)
    uri, code = _device_code(stack, ADA)
    username, password, mfa = PEOPLE["ada"]
    # Conditional Access blocks it after the password, on Microsoft's own page.
    with pytest.raises(SignInError, match="53003"):
        sign_in_device(
            uri,
            code,
            username=username,
            password=password,
            mfa_code=mfa,
            verify=stack.emu.client_ssl_context(),
        )
    stack.runtime.sweeper.sweep()
    said = stack.wait(
        lambda: [t for t in stack.dm_texts(ADA) if "did not complete" in t], what="the refusal"
    )
    assert "Conditional Access" in said[-1]
    assert rows(stack, "delegated_sign_ins") == []

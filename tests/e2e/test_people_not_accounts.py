"""Issue 9: people, not Slack accounts, decide; nothing is shown before authority is checked.

Every test goes through pimbot's real HTTP endpoint with signed payloads, the fake Slack Web
API, the Graph emulator over HTTPS and real storage (SQLite and PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.ports import IdentityLink
from stand_ins.fake_slack import SlackMessage
from stand_ins.graph_emulator import Tenant, default_tenant
from stand_ins.graph_emulator.tenant import User
from storage.database import make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork
from tests.e2e.conftest import ADA, ALAN, APPROVALS, GRACE, PRA, SECURITY_READER, Stack

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


# --- tenants and links for the tests below -----------------------------------------------------

GRACE_ENTRA = "5846ce5e-e5bf-49f8-8732-e9c302694d9e"
MARIE_ENTRA = "9c5f11b1-0383-44f6-a4a6-eb0691c3125f"  # an Entra guest (userType Guest)
PIM_APPROVERS_GROUP = "913c9c09-1f05-4595-8684-de5240f300e9"


def _tenant(
    users: dict[str, dict[str, Any]] | None = None,
    extra_users: tuple[dict[str, Any], ...] = (),
    group_members: dict[str, tuple[str, ...]] | None = None,
) -> Tenant:
    """The demo tenant with some users changed (by UPN), added, or groups refilled."""
    base = default_tenant()
    changed = tuple(
        u.model_copy(update=(users or {}).get(u.user_principal_name, {})) for u in base.users
    )
    added = tuple(User(**fields) for fields in extra_users)
    groups = tuple(
        g.model_copy(update={"members": (group_members or {})[g.display_name]})
        if g.display_name in (group_members or {})
        else g
        for g in base.groups
    )
    return base.model_copy(update={"users": changed + added, "groups": groups})


def _link(database_url: str, slack_user: str, entra_id: str, source: str = "operator") -> None:
    engine = make_engine(database_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            uow.identities.link(
                IdentityLink("T0PIMBOT", slack_user, entra_id, source, datetime.now(UTC))
            )
            uow.commit()
    finally:
        engine.dispose()


def _refusals(database_url: str) -> list[Any]:
    return [a for a in _audit(database_url) if a.action == "identity_refused"]


def _reply(stack: Stack, user: str, text: str) -> str:
    before = len(stack.slack.calls("response_url"))
    stack.sender.command("/pim", text, user=user)
    return str(stack.slack.wait_for("response_url", before + 1, timeout=30)[-1].args)


# --- finding 2: quorum counts people, one Slack link per Entra user --------------------------


def test_a_second_slack_account_of_an_approver_is_refused_and_cannot_make_quorum(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(policy="roles:\n  Privileged Role Administrator:\n    quorum: 2\n")
    stack.slack.add_user("U0GRACE2", "grace2", real_name="Grace (2)", email="grace@contoso.example")
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: "1 of 2" in str(stack.slack.message(APPROVALS, card.ts).blocks), what="1/2")
    stack.sender.click("pim-approve", user="U0GRACE2", message=card)
    stack.wait(lambda: "already linked to another Slack account" in _said(stack), what="refusal")
    refused = stack.wait(lambda: _refusals(database_url), what="audited")
    assert refused[0].actor.endswith("/U0GRACE2")
    time.sleep(0.5)
    assert _activations(stack, PRA) == []
    stack.sender.click("pim-approve", user=ALAN, message=card)
    stack.wait(lambda: _activations(stack, PRA), what="activation by a second person")


# --- finding 3: disabled accounts and guests --------------------------------------------------


def test_a_disabled_approver_cannot_approve_even_when_linked(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(tenant=_tenant(users={"grace@contoso.example": {"account_enabled": False}}))
    _link(database_url, GRACE, GRACE_ENTRA)  # linked while still enabled
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: "account is disabled" in _said(stack), what="Grace is told")
    time.sleep(0.5)
    assert _activations(stack, PRA) == []
    assert any("disabled" in (a.detail or "") for a in _refusals(database_url))
    # Group expansion skips her too: she is not among the approvers DMed or counted.
    stack.sender.click("pim-approve", user=ALAN, message=card)
    stack.wait(lambda: _activations(stack, PRA), what="Alan, enabled, approves")


def test_a_disabled_requester_cannot_request(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(tenant=_tenant(users={"ada@contoso.example": {"account_enabled": False}}))
    assert "account is disabled" in _reply(stack, ADA, "whoami")
    view = stack.open_form(ADA)
    assert "disabled" in str(view)


def test_a_requester_disabled_while_waiting_is_not_activated(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    # While the request waits, an admin disables Ada's account in Entra.
    stack.emu.update_user("ada@contoso.example", account_enabled=False)
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(
        lambda: "account is disabled" in " ".join(stack.dm_texts(ADA)), what="Ada is told why"
    )
    assert _activations(stack, PRA) == []  # PIM was never asked
    assert "disabled" in str(stack.slack.message(APPROVALS, card.ts).blocks)


_GUEST_IN_APPROVERS = {
    "PIM Approvers": (
        "alan@contoso.example",
        "grace@contoso.example",
        "marie_partner.example#EXT#@contoso.example",
    )
}


@pytest.mark.parametrize("named", [False, True], ids=["in-a-group", "named-by-the-policy"])
def test_an_entra_guest_approves_only_when_the_policy_file_names_them(
    make_stack: Callable[..., Stack], named: bool
) -> None:
    approvers = "[{pim: true}" + (f", {{entra_user: {MARIE_ENTRA}}}]" if named else "]")
    stack = make_stack(
        policy=f"roles:\n  Privileged Role Administrator:\n    approvers: {approvers}\n",
        tenant=_tenant(group_members=_GUEST_IN_APPROVERS),
    )
    stack.slack.add_user("U0MARIE", "marie", real_name="Marie", email="marie@partner.example")
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    card = stack.card()
    stack.sender.click("pim-approve", user="U0MARIE", message=card)
    if named:
        stack.wait(lambda: _activations(stack, PRA), what="the named guest approves")
        return
    stack.wait(lambda: "not an approver" in _said(stack), what="the guest is refused")
    time.sleep(0.5)
    assert _activations(stack, PRA) == []


# --- finding 7: identity by email, once ---------------------------------------------------------


def test_an_email_two_entra_users_share_links_nobody(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(
        tenant=_tenant(
            extra_users=(
                {
                    "id": "0b0e8a55-2c4f-4a43-9a0f-7a7d3d1c0a11",
                    "user_principal_name": "g.hopper.admin@contoso.example",
                    "display_name": "Grace Hopper (admin account)",
                    "mail": "grace@contoso.example",
                },
            )
        )
    )
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)
    stack.sender.click("pim-approve", user=GRACE, message=stack.card())
    stack.wait(lambda: "More than one Microsoft Entra user" in _said(stack), what="refusal")
    assert "Grace Hopper (admin account)" not in _said(stack)
    assert "g.hopper.admin" not in _said(stack)
    time.sleep(0.5)
    assert _activations(stack, PRA) == []
    assert _refusals(database_url)


def test_the_policy_can_require_approvers_linked_by_an_admin(
    make_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = make_stack(policy="defaults:\n  approver_link: operator_or_sign_in\n")
    stack.request(ADA, {"duration": "PT1H", "reason": REASON}, PRA)  # requesters: email is fine
    card = stack.card()
    stack.sender.click("pim-approve", user=GRACE, message=card)  # first contact: by email
    stack.wait(lambda: "link you with `pimbot link`" in _said(stack), what="Grace is told")
    time.sleep(0.5)
    assert _activations(stack, PRA) == []
    _link(database_url, GRACE, GRACE_ENTRA, source="operator")
    stack.sender.click("pim-approve", user=GRACE, message=card)
    stack.wait(lambda: _activations(stack, PRA), what="activation once linked by an admin")


# --- finding 9: races on the database -----------------------------------------------------------


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work`` on ``n`` threads released at the same instant; their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _slow_inserts(database_url: str, table: str) -> None:
    """Widen the race on PostgreSQL: every INSERT into ``table`` waits 0.3 s in the database,
    so racing transactions all pass their "is there one already?" read before any commits.
    (SQLite serialises writers with BEGIN IMMEDIATE; there the race cannot open.)"""
    if not database_url.startswith("postgresql"):
        return
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION pimbot_test_slow() RETURNS trigger AS "
                "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                f"CREATE TRIGGER pimbot_test_slow_{table} BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION pimbot_test_slow()"
            )
    finally:
        engine.dispose()


def _drop_slow_inserts(database_url: str, table: str) -> None:
    if not database_url.startswith("postgresql"):
        return
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"DROP TRIGGER IF EXISTS pimbot_test_slow_{table} ON {table}"
            )
    finally:
        engine.dispose()


def _live_requests(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with SqlUnitOfWork(make_session_factory(engine)) as uow:
            return len(uow.requests.list_pending())
    finally:
        engine.dispose()


def test_four_simultaneous_submissions_of_one_role_make_one_request(
    stack: Stack, database_url: str
) -> None:
    view = stack.open_form(ADA)
    values = {"role": PRA, "duration": "PT1H", "reason": REASON}
    signed = [stack.sender.build_view_submission(view, values, user=ADA) for _ in range(4)]
    _slow_inserts(database_url, "elevation_requests")
    try:
        responses = _race(4, lambda i: stack.sender.post(signed[i]))
        stack.card()
    finally:
        _drop_slow_inserts(database_url, "elevation_requests")
    assert [r.status_code for r in responses] == [200] * 4
    stack.card()
    stack.wait(
        lambda: _said(stack).count("You already have a request for Privileged Role") >= 3,
        what="the other three are told",
    )
    assert _live_requests(database_url) == 1
    assert "Something went wrong" not in _said(stack)


def test_simultaneous_first_contacts_link_once_without_an_error(
    stack: Stack, database_url: str
) -> None:
    def whoami(_: int) -> Any:
        return stack.sender.command("/pim", "whoami", user=GRACE)

    _slow_inserts(database_url, "identity_links")
    try:
        responses = _race(4, whoami)
        replies = stack.slack.wait_for("response_url", 4, timeout=30)
    finally:
        _drop_slow_inserts(database_url, "identity_links")
    assert [r.status_code for r in responses] == [200] * 4
    assert all(GRACE_ENTRA in str(reply.args) for reply in replies), replies
    assert "Something went wrong" not in _said(stack)
    linked = [a for a in _audit(database_url) if a.action == "identity_linked"]
    assert len(linked) == 1, [(a.actor, a.detail, a.at) for a in _audit(database_url)]

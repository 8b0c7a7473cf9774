"""``pimbot demo``: pimbot's whole job on embedded defaults, with no Slack or Azure account.

Real pimbot code end to end: SQLite, the Graph emulator over HTTPS, the fake Slack Web API,
and correctly signed Slack payloads POSTed to pimbot's real HTTP endpoint. It prints what each
person would see in Slack and what pimbot sent to Graph, and exits non-zero if a step did not
happen. Time is the emulator's clock, so "50 minutes later" takes no time at all.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot.adapters.sealing import generate_token_key
from bot.app.runtime import SlackRuntime, build_slack_runtime
from bot.app.settings import Settings
from handlers.http import BackgroundHttpServer

if TYPE_CHECKING:  # the stand-ins are imported when a demo starts: see Demo
    from stand_ins.fake_slack import SlackCall
    from stand_ins.graph_emulator import GraphEmulator

APPROVALS = "C0APPROVALS"
ADA, GRACE, ALAN = "U0ADA", "U0GRACE", "U0ALAN"
NAMES = {
    ADA: "Ada (requester)",
    GRACE: "Grace (approver)",
    ALAN: "Alan (approver)",
    APPROVALS: "#pim-approvals",
}
PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"  # Privileged Role Administrator
PRA_NAME = "Privileged Role Administrator"


class DemoFailed(Exception):
    """A step did not happen; the message says which."""


class Demo:
    def __init__(self, workdir: Path) -> None:
        # Here, not at the top: a production install has no stand-ins (see tests/test_layers.py).
        from stand_ins.fake_slack import FakeSlack
        from stand_ins.graph_emulator import GraphEmulator, default_tenant
        from stand_ins.slack_signing import SlackSender

        self.slack = FakeSlack().start()
        self.emu = GraphEmulator(tenant=default_tenant(), ca_path=workdir / "ca.pem").start()
        # Delegated mode on (auto): people's sign-in redirect comes back to this very server.
        port = _free_port()
        env = {
            **self.emu.env(),
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": self.slack.signing_secret,
            "PIMBOT_SLACK_API_URL": self.slack.api_url,
            "PIMBOT_DATA_DIR": str(workdir),
            "PIMBOT_APPROVALS_CHANNEL": APPROVALS,
            "PIMBOT_TOKEN_KEY": generate_token_key(),
            "PIMBOT_POLICY_FILE": str(_demo_policy(workdir)),
            "PIMBOT_PUBLIC_URL": f"http://localhost:{port}",
        }
        # pimbot and the emulator share one clock, so skipping ahead moves both.
        self.runtime: SlackRuntime = build_slack_runtime(
            Settings.from_env(env), clock=self.emu.clock
        )
        self.server = BackgroundHttpServer(self.runtime.http_app(), threads=8, port=port).start()
        events = f"{self.server.url}/slack/events"
        self.sender = SlackSender(events, self.slack.signing_secret, self.slack)
        self._seen_calls = 0
        self._seen_graph = 0
        self.steps = 0

    def close(self) -> None:
        self.sender.close()
        self.server.stop()
        self.runtime.close()
        self.emu.stop()
        self.slack.stop()

    # --- narration ------------------------------------------------------------------------------

    def step(self, who: str, what: str) -> None:
        self.steps += 1
        click.secho(f"\n{self.steps}. {NAMES.get(who, who)} {what}", bold=True)

    def show(self) -> None:
        """Print what Slack showed people and what pimbot asked Graph since the last step."""
        time.sleep(0.3)  # listeners finish their Slack calls on threads after the ack
        calls = self.slack.calls()[self._seen_calls :]
        self._seen_calls += len(calls)
        for call in calls:
            line = _describe_call(call)
            if line:
                click.echo(f"   slack  {line}")
        requests = self.emu.state.requests[self._seen_graph :]
        self._seen_graph += len(requests)
        for req in requests:
            schedule = (req.get("scheduleInfo") or {}).get("expiration") or {}
            by = ((req.get("createdBy") or {}).get("user") or {}).get("id")
            actor = f" as {_user_name(self.emu, by)}" if by else " as the app"
            click.echo(
                f"   graph  POST roleAssignmentScheduleRequests action={req['action']}{actor} "
                f"role={_role_name(self.emu, req['roleDefinitionId'])} "
                f"duration={schedule.get('duration') or '-'} → {req['status']}"
            )

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.05)
        raise DemoFailed(f"step {self.steps}: {what} did not happen")

    # --- what people do -------------------------------------------------------------------------

    def open_form(self, user: str) -> dict[str, Any]:
        updates = len(self.slack.calls("views.update"))
        self._expect_ok(self.sender.command("/pim", f"request {PRA_NAME}", user=user))
        self.wait(lambda: len(self.slack.calls("views.update")) > updates, "the request form")
        return self.slack.latest_view(user)

    def submit(self, user: str, view: dict[str, Any], values: dict[str, Any]) -> Any:
        response = self.sender.submit_view(view, {"role": PRA, **values}, user=user)
        self._expect_ok(response)
        return response.json() if response.content else {}

    def request_role(self, user: str, role_id: str, name: str, reason: str) -> None:
        updates = len(self.slack.calls("views.update"))
        self._expect_ok(self.sender.command("/pim", f"request {name}", user=user))
        self.wait(lambda: len(self.slack.calls("views.update")) > updates, "the request form")
        view = self.slack.latest_view(user)
        values = {"role": role_id, "duration": "PT1H", "reason": reason}
        self._expect_ok(self.sender.submit_view(view, values, user=user))

    def sign_in_link(self, user: str, after: int) -> str:
        def links() -> list[str]:
            messages = self.slack.messages(self.slack.dm_channel(user))
            return [
                str(e["url"])
                for m in messages
                for b in m.blocks
                for e in b.get("elements", [])
                if e.get("action_id") == "pim-sign-in-link"
            ]

        return str(self.wait(lambda: links()[after:] and links()[-1], "a sign-in link in a DM"))

    def sign_in(self, url: str, username: str, password: str, mfa_code: str | None) -> str:
        """What Ada's browser does: Microsoft's (the emulator's) pages, then the form_post
        back to pimbot's /auth/callback; returns the heading of pimbot's page."""
        import httpx

        from stand_ins.graph_emulator.sign_in_client import sign_in_response

        answer = sign_in_response(
            url,
            username=username,
            password=password,
            mfa_code=mfa_code or None,
            verify=self.emu.client_ssl_context(),
        )
        page = httpx.post(answer.redirect_uri, data=answer.params, timeout=30)
        heading = page.text.split('<h1 id="outcome">', 1)[-1].split("</h1>", 1)[0]
        body = page.text.split("</h1>", 1)[-1].split("<small>", 1)[0]
        click.echo(f"   web    {answer.redirect_uri} → {page.status_code} {heading!r}")
        click.echo(f"          {body.replace('<p>', '').replace('</p>', ' ').strip()}")
        if page.status_code != 200:
            raise DemoFailed(f"step {self.steps}: the sign-in page said {heading!r}")
        return heading

    def approve_in_pim(self, user: str, card: Any, why: str) -> None:
        """Approve on PIM's card: the stage wants the approver's justification first."""
        opened = len(self.slack.calls("views.open"))
        self.sender.click("pim-approve", user=user, message=card)
        self.wait(lambda: len(self.slack.calls("views.open")) > opened, "the justification form")
        self.sender.submit_view(self.slack.latest_view(user), {"deny_reason": why}, user=user)

    def latest_card(self) -> Any:
        return self.wait(lambda: self.slack.messages(APPROVALS)[-1:], "a card")[0]

    def dm_with(self, user: str, words: str) -> Any:
        def found() -> Any:
            messages = self.slack.messages(self.slack.dm_channel(user))
            return next((m for m in reversed(messages) if words in m.text.lower()), None)

        return self.wait(found, f"a DM to {NAMES[user]} saying {words!r}")

    def _expect_ok(self, response: Any) -> None:
        if response.status_code != 200:
            raise DemoFailed(f"step {self.steps}: pimbot answered HTTP {response.status_code}")


def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="pimbot-demo-") as workdir:
        demo = Demo(Path(workdir))
        try:
            _story(demo)
        except DemoFailed as exc:
            click.secho(f"\nDEMO FAILED: {exc}", fg="red", err=True)
            return 1
        finally:
            demo.close()
    click.secho(
        f"\nAll {demo.steps} steps happened. pimbot did its whole job against the local stand-ins.",
        fg="green",
    )
    return 0


def _story(demo: Demo) -> None:
    click.secho(
        "pimbot demo: Slack and Microsoft Graph are local stand-ins; everything else is "
        "the real pimbot.",
        bold=True,
    )
    demo.step(ADA, f"types `/pim request {PRA_NAME}`: the form opens at once, then fills in")
    form = demo.open_form(ADA)
    demo.show()

    demo.step(ADA, "submits 9 hours and a one-word reason: refused on the fields, nothing stored")
    answer = demo.submit(ADA, form, {"duration": "PT4H", "reason": "x"})
    errors = answer.get("errors") or {}
    if "reason" not in errors:
        raise DemoFailed("the bad reason was not refused on its field")
    for field, message in errors.items():
        click.echo(f"   slack  modal error under {field!r}: {message}")

    demo.step(ADA, "submits 1 hour with a real reason: the card goes to #pim-approvals")
    demo.submit(
        ADA, form, {"duration": "PT1H", "reason": "Rotate the emergency access keys <!channel>"}
    )
    card = demo.latest_card()
    demo.show()
    if "<!channel>" in card.text:
        raise DemoFailed("a mention in the reason was not neutralised")

    demo.step(ADA, "clicks Approve on her own request: refused")
    demo.sender.click("pim-approve", user=ADA, message=card)
    demo.wait(
        lambda: any("own request" in str(c.args) for c in demo.slack.calls()),
        "the self-approval refusal",
    )
    demo.show()

    demo.step(GRACE, "clicks Approve: pimbot activates the role in PIM")
    demo.sender.click("pim-approve", user=GRACE, message=card)
    dm = demo.dm_with(ADA, "active")
    demo.show()
    ada_id = _user_id(demo.emu, "ada@contoso.example")
    if not any(a["roleDefinitionId"] == PRA for a in demo.emu.state.active_assignments(ada_id)):
        raise DemoFailed("the role is not active in PIM")

    demo.step(ADA, "waits: 50 minutes later the reminder arrives with Extend / Deactivate now")
    demo.emu.advance_clock(50 * 60)
    demo.runtime.sweeper.sweep()
    reminder = demo.dm_with(ADA, "ends at")
    demo.show()

    demo.step(ADA, "clicks Extend and asks for 30 more minutes: it was approved for 1 hour, so")
    click.echo("   the extension goes to the approvers first (the role stays active meanwhile)")
    opened = len(demo.slack.calls("views.update"))
    demo.sender.click("pim-extend", user=ADA, message=reminder)
    demo.wait(lambda: len(demo.slack.calls("views.update")) > opened, "the extend form")
    demo.sender.submit_view(demo.slack.latest_view(ADA), {"extend_duration": "PT30M"}, user=ADA)
    demo.dm_with(ADA, "needs approval again")
    extension = demo.wait(
        lambda: next(
            (m for m in reversed(demo.slack.messages(APPROVALS)) if "extend" in m.text.lower()),
            None,
        ),
        "the extension card",
    )
    demo.show()

    demo.step(GRACE, "approves the extension: the end moves in PIM, the card shows it")
    demo.sender.click("pim-approve-extension", user=GRACE, message=extension)
    dm = demo.dm_with(ADA, "now lasts until")
    demo.show()

    demo.step(ADA, "clicks Deactivate now: access ends early")
    demo.sender.click("pim-deactivate", user=ADA, message=dm)
    demo.dm_with(ADA, "deactivated")
    demo.show()
    if any(a["roleDefinitionId"] == PRA for a in demo.emu.state.active_assignments(ada_id)):
        raise DemoFailed("the role is still active in PIM after deactivation")

    demo.step(ADA, "asks again, and Alan denies it with a reason")
    form = demo.open_form(ADA)
    demo.submit(ADA, form, {"duration": "PT30M", "reason": "One more look at the audit logs"})
    card = demo.wait(
        lambda: next(
            (
                m
                for m in reversed(demo.slack.messages(APPROVALS))
                if m.ts != card.ts and "requests" in m.text and not m.thread_ts
            ),
            None,
        ),
        "the second card",
    )
    opened = len(demo.slack.calls("views.open"))
    demo.sender.click("pim-deny", user=ALAN, message=card)
    demo.wait(lambda: len(demo.slack.calls("views.open")) > opened, "the deny-reason form")
    demo.sender.submit_view(
        demo.slack.latest_view(ALAN), {"deny_reason": "Not during the change freeze"}, user=ALAN
    )
    demo.dm_with(ADA, "denied")
    demo.show()
    _delegated_story(demo)


GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"  # PIM requires MFA on activation
SECURITY_ADMIN = "194ae4cb-b126-40b2-bd5b-6091b380977d"  # PIM requires authentication context c1
ADA_SIGN_IN = ("ada@contoso.example", "emulator-password-ada", "246810")


def _delegated_story(demo: Demo) -> None:
    """Delegated mode: Ada signs in herself, and roles that need her own MFA activate as her."""
    demo.step(ADA, "types `/pim connect`: pimbot DMs her a single-use sign-in link")
    demo._expect_ok(demo.sender.command("/pim", "connect", user=ADA))
    url = demo.sign_in_link(ADA, after=0)
    demo.show()

    demo.step(ADA, "signs in to Microsoft with her password and MFA: pimbot's page says so")
    demo.sign_in(url, *ADA_SIGN_IN)
    demo.dm_with(ADA, "connected as")
    demo.show()

    demo.step(ADA, "asks for Global Administrator (PIM requires MFA): activated as Ada herself")
    demo.request_role(ADA, GLOBAL_ADMIN, "Global Administrator", "Rotate the tenant keys")
    demo.dm_with(ADA, "global administrator is active")
    demo.show()
    made = [r for r in demo.emu.state.requests if r["roleDefinitionId"] == GLOBAL_ADMIN]
    if not made or str(made[-1]["action"]).lower() != "selfactivate":
        raise DemoFailed("Global Administrator was not self-activated as Ada")

    demo.step(ADA, "asks for Security Administrator (authentication context c1): PIM wants")
    click.echo("   more than her sign-in proved, so pimbot DMs a step-up link")
    demo.request_role(ADA, SECURITY_ADMIN, "Security Administrator", "Tune the alert rules")
    step_up = demo.sign_in_link(ADA, after=1)
    demo.show()

    demo.step(ADA, "signs in with the authentication context: pimbot activates by itself")
    demo.sign_in(step_up, *ADA_SIGN_IN)
    demo.dm_with(ADA, "security administrator is active")
    demo.show()

    _pim_approval_story(demo)

    demo.step(ADA, "types `/pim disconnect`: her stored sign-in (tokens) is deleted")
    demo._expect_ok(demo.sender.command("/pim", "disconnect", user=ADA))
    demo.wait(
        lambda: any("Removed 1 stored sign-in" in str(c.args) for c in demo.slack.calls()),
        "the disconnect reply",
    )
    demo.show()


def _describe_call(call: SlackCall) -> str | None:
    if not call.ok:
        return None  # e.g. an ephemeral reply Slack refused; pimbot then sends a DM instead
    args = call.args
    if call.method == "chat.postMessage":
        return f"→ {NAMES.get(args.get('channel', ''), args.get('channel'))}: {_short(args)}"
    if call.method == "chat.update":
        return f"↻ card/DM updated in place: {_short(args)}"
    if call.method in ("chat.postEphemeral", "response_url"):
        return f"(only you) {_short(args)}"
    if call.method in ("views.open", "views.update"):
        view = args.get("view") or {}
        title = (view.get("title") or {}).get("text", "")
        return (
            f"modal {call.method.split('.')[1]}: {title!r} ({len(view.get('blocks', []))} blocks)"
        )
    return None


def _short(args: dict[str, Any]) -> str:
    text = str(args.get("text", "")).replace("\n", " ")
    return text if len(text) <= 140 else text[:139] + "…"


def _role_name(emu: GraphEmulator, role_id: str) -> str:
    return next((r.display_name for r in emu.tenant.roles if r.id == role_id), role_id)


TWO_STAGES = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9"  # PIM: stage 1 Grace, stage 2 Alan
GRACE_SIGN_IN = ("grace@contoso.example", "emulator-password-grace", "135790")
ALAN_SIGN_IN = ("alan@contoso.example", "emulator-password-alan", "")


def _pim_card(demo: Demo, stage: int) -> Any:
    """The newest card for ``stage`` of PIM's approval that still has its buttons."""
    return demo.wait(
        lambda: next(
            (
                m
                for m in reversed(demo.slack.messages(APPROVALS))
                if f"stage {stage} of 2" in str(m.blocks) and "pim-approve" in str(m.blocks)
            ),
            None,
        ),
        f"PIM's stage-{stage} card",
    )


def _demo_policy(workdir: Path) -> Path:
    """The demo's one rule: the two-stage role is activated as the person, so that PIM runs
    its own approval and its approvers decide it from Slack."""
    path = workdir / "policy.yaml"
    path.write_text("roles:\n  Conditional Access Administrator:\n    mode: delegated\n")
    return path


def _pim_approval_story(demo: Demo) -> None:
    """PIM's own approval, decided from Slack by the approvers as themselves."""
    demo.step(ADA, "asks for Conditional Access Administrator: PIM itself runs a two-stage")
    click.echo("   approval, and its stage-1 approver gets the card in #pim-approvals")
    demo.request_role(
        ADA, TWO_STAGES, "Conditional Access Administrator", "Review the sign-in policies"
    )
    demo.dm_with(ADA, "waiting for approval in pim")
    card = _pim_card(demo, 1)
    demo.show()

    demo.step(GRACE, "clicks Approve and gives the justification PIM requires; she has not")
    click.echo("   signed in yet, so pimbot DMs her a sign-in link")
    demo.approve_in_pim(GRACE, card, "Checked the change ticket")
    link = demo.sign_in_link(GRACE, after=0)
    demo.show()

    demo.step(GRACE, "signs in: her decision goes to PIM as Grace; stage 2 goes to Alan")
    demo.sign_in(link, *GRACE_SIGN_IN)
    second = _pim_card(demo, 2)
    demo.show()

    demo.step(ALAN, "clicks Approve, signs in, and PIM activates the role for Ada as Ada")
    demo.approve_in_pim(ALAN, second, "Second pair of eyes: fine")
    demo.sign_in(demo.sign_in_link(ALAN, after=0), *ALAN_SIGN_IN)
    demo.dm_with(ADA, "conditional access administrator is active")
    demo.show()
    reviewers = [
        _user_name(demo.emu, step["reviewedBy"]["id"])
        for approval in demo.emu.state.approvals
        for step in approval["steps"]
        if step.get("reviewedBy")
    ]
    click.echo(f"   pim    approval steps reviewed by: {', '.join(reviewers)}")
    if reviewers != ["Grace Hopper", "Alan Turing"]:
        raise DemoFailed("PIM does not show Grace and then Alan as the reviewers")


def _user_name(emu: GraphEmulator, user_id: str) -> str:
    return next((u.display_name for u in emu.tenant.users if u.id == user_id), user_id)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _user_id(emu: GraphEmulator, upn: str) -> str:
    for user in emu.tenant.users:
        if user.user_principal_name == upn:
            return user.id
    raise DemoFailed(f"no user {upn} in the demo tenant")

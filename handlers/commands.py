"""``/pim`` and its subcommands: ack at once, then one service call and one reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain.elevation import ElevationRequest, Person, RequestStatus
from bot.domain.rules import unstorable_text
from bot.use_cases.delegated import begin_connect, disconnect, who_am_i
from bot.use_cases.services import deactivate_request, list_my_requests, list_pending_for_approver
from handlers.after_ack import CommandReply, bind, run_after_ack, run_now
from handlers.blocks import help_blocks, help_text
from handlers.blocks.cards import MessageContent
from handlers.blocks.help import COMMAND
from handlers.blocks.lists import (
    notice_message,
    pending_message,
    roles_message,
    status_message,
)
from handlers.blocks.signin import (
    connect_sent_message,
    disconnected_message,
    whoami_message,
)
from handlers.context import SlackDeps
from handlers.modal_flow import open_extend_modal, open_request_modal


def register(app: App, deps: SlackDeps) -> None:
    bind(deps, [(app.command, COMMAND, handle_pim_command)])


def handle_pim_command(
    deps: SlackDeps, ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
) -> None:
    parsed = parse_command_text(command.get("text"))
    if isinstance(parsed, Refusal):
        ack(text=parsed.message)
        return
    sub, arg = parsed
    user_id = command["user_id"]
    if sub in ("", "request"):
        ack()
        open_request_modal(
            client, deps, trigger_id=command["trigger_id"], user_id=user_id, role_query=arg
        )
        return
    if sub == "extend":
        ack()

        def open_form(person: Person) -> None:
            target = _pick_active(deps, person, arg, verb="extend")
            if isinstance(target, str):
                _reply(respond, notice_message(target))
                return
            open_extend_modal(
                client,
                deps,
                trigger_id=command["trigger_id"],
                request_id=target.id,
                user_id=user_id,
            )

        # On this thread: the trigger_id dies three seconds after the command.
        run_now(deps, client, user_id, open_form, surface=CommandReply(respond))
        return
    if sub not in _ANSWERS:
        ack(text=help_text(), blocks=help_blocks())
        return
    ack()
    run_after_ack(
        deps,
        client,
        user_id,
        lambda person: _reply(respond, _ANSWERS[sub](deps, person, arg)),
        surface=CommandReply(respond),
    )


def _reply(respond: Respond, content: MessageContent) -> None:
    respond(
        text=content.text,
        blocks=content.blocks,
        response_type="ephemeral",
        replace_original=False,
    )


# Longer than any role name plus a subcommand; anything beyond is not a /pim command.
MAX_COMMAND_TEXT = 300


@dataclass(frozen=True)
class Refusal:
    message: str


def parse_command_text(raw: object) -> tuple[str, str] | Refusal:
    """``/pim <sub> <arg>`` as (subcommand, argument), or what to reply instead."""
    text = raw if isinstance(raw, str) else ""
    if len(text) > MAX_COMMAND_TEXT:
        return Refusal(
            f"That is longer than any `{COMMAND}` command ({len(text)} characters; at most "
            f"{MAX_COMMAND_TEXT}). Try `{COMMAND} help`."
        )
    if unstorable_text(text):
        return Refusal(
            f"That command contains a control character (such as NUL). Retype it; "
            f"`{COMMAND} help` lists what I understand."
        )
    sub, _, arg = " ".join(text.split()).partition(" ")
    return sub.lower(), arg


def _roles(deps: SlackDeps, person: Person, _arg: str) -> MessageContent:
    assert person.entra_id is not None
    return roles_message(
        deps.pim_reads.list_eligible_roles(person.entra_id),
        deps.pim_reads.list_active_assignments(person.entra_id),
        _tz(deps, person.slack_user),
    )


def _status(deps: SlackDeps, person: Person, _arg: str) -> MessageContent:
    return status_message(list_my_requests(person, ports=deps.ports), _tz(deps, person.slack_user))


def _pending(deps: SlackDeps, person: Person, _arg: str) -> MessageContent:
    return pending_message(
        list_pending_for_approver(person, ports=deps.ports), _tz(deps, person.slack_user)
    )


def _deactivate(deps: SlackDeps, person: Person, arg: str) -> MessageContent:
    target = _pick_active(deps, person, arg, verb="deactivate")
    if isinstance(target, str):
        return notice_message(target)
    done = deactivate_request(target.id, person, ports=deps.ports)
    if done.timers.deactivate_at is not None and done.status is RequestStatus.ACTIVE:
        when = done.timers.deactivate_at.strftime("%H:%M UTC")
        return notice_message(
            f"PIM does not let a role end in its first five minutes; "
            f"{done.role.display_name} will be deactivated at {when}."
        )
    return notice_message(f"{done.role.display_name} is deactivated.")


def _pick_active(
    deps: SlackDeps, person: Person, query: str, *, verb: str
) -> ElevationRequest | str:
    """The person's one active role from pimbot matching ``query``, or what to say instead."""
    active = [
        r
        for r in list_my_requests(person, ports=deps.ports, limit=50)
        if r.status is RequestStatus.ACTIVE
    ]
    wanted = query.strip().casefold()
    if wanted:
        active = [r for r in active if wanted in r.role.display_name.casefold()]
    if not active:
        return "You have no active role from pimbot" + (
            f" matching “{query.strip()}”." if wanted else "."
        )
    if len(active) > 1:
        names = ", ".join(r.role.display_name for r in active)
        return f"You have several active roles ({names}). Say which: `/pim {verb} <role>`."
    return active[0]


def _whoami(deps: SlackDeps, person: Person, _arg: str) -> MessageContent:
    known = who_am_i(person, ports=deps.ports)
    return whoami_message(
        person,
        link_source=known.link.source if known.link else None,
        tenant_id=deps.tenant_id,
        mode=_deployment_mode(deps),
        sign_ins=known.sign_ins,
        role_modes=known.role_modes,
        tz=_tz(deps, person.slack_user),
    )


def _connect(deps: SlackDeps, person: Person, arg: str) -> MessageContent:
    begin_connect(person, arg.strip() or None, ports=deps.ports)
    return connect_sent_message()


def _disconnect(deps: SlackDeps, person: Person, _arg: str) -> MessageContent:
    done = disconnect(person, ports=deps.ports)
    return disconnected_message(
        sign_ins=done.sign_ins, links=done.links, downgraded=done.downgraded
    )


def _deployment_mode(deps: SlackDeps) -> str:
    delegation = deps.ports.delegation
    if delegation is None:
        return "broker"
    return "auto" if delegation.auto else "delegated"


def _tz(deps: SlackDeps, user_id: str) -> str | None:
    profile = deps.directory.user_profile(user_id)
    return profile.tz if profile else None


_ANSWERS = {
    "roles": _roles,
    "status": _status,
    "pending": _pending,
    "deactivate": _deactivate,
    "whoami": _whoami,
    "connect": _connect,
    "disconnect": _disconnect,
}

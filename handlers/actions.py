"""Buttons. Each click is re-authorised from the clicking user and the stored request: a
button's ``value`` only says which request is meant, never who may act on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain.elevation import Person
from bot.use_cases import pim_approvals
from bot.use_cases.services import (
    acknowledge_break_glass,
    approve_extension,
    cancel_request,
    deactivate_request,
    open_for_decision,
    open_for_extension,
)
from handlers.after_ack import Home, Reply, bind, run_after_ack, run_now
from handlers.blocks import deny_reason_modal
from handlers.context import SlackDeps
from handlers.forms import request_id_from
from handlers.home import publish_home
from handlers.ids import ActionId
from handlers.modal_flow import (
    fill_request_modal_after_ack,
    open_extend_modal,
    open_request_modal,
)


def register(app: App, deps: SlackDeps) -> None:
    bind(
        deps,
        [
            (app.action, ActionId.APPROVE, handle_approve_button),
            (app.action, ActionId.DENY, handle_deny_button),
            (app.action, ActionId.CANCEL, handle_cancel_button),
            (app.action, ActionId.DEACTIVATE, handle_deactivate_button),
            (app.action, ActionId.EXTEND, handle_extend_button),
            (app.action, ActionId.APPROVE_EXTENSION, handle_approve_extension_button),
            (app.action, ActionId.DENY_EXTENSION, handle_deny_extension_button),
            (app.action, ActionId.ACKNOWLEDGE_BREAK_GLASS, handle_acknowledge_break_glass_button),
            (app.action, ActionId.OPEN_REQUEST_MODAL, handle_open_request_modal_button),
            (app.action, ActionId.REFRESH_HOME, handle_refresh_home_button),
            (app.action, ActionId.ROLE_SELECT, handle_role_select),
            (app.action, ActionId.SIGN_IN_LINK, handle_sign_in_link_click),
        ],
    )


def handle_sign_in_link_click(deps: SlackDeps, ack: Ack) -> None:
    """The browser opens the link itself; Slack only wants the click acknowledged."""
    ack()


def handle_approve_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    request_id = _request_id(body)

    # pimbot's own approval, or (delegated mode) PIM's, decided in PIM as the approver; a
    # stage whose PIM settings require the approver's justification asks for it first, on
    # this thread, as the trigger_id dies three seconds after the click.
    def approve_or_ask(person: Person) -> None:
        if pim_approvals.needs_justification(request_id, person, ports=deps.ports):
            request = pim_approvals.open_for_decision(request_id, person, ports=deps.ports)
            client.views_open(
                trigger_id=body["trigger_id"],
                view=deny_reason_modal(request_id, request=request, approve_in_pim=True),
            )
            return
        # The decision itself (Graph, Slack) runs on pimbot's work pool, like every click.
        _act(
            deps,
            client,
            body,
            lambda who, rid: pim_approvals.approve(rid, who, ports=deps.ports),
        )

    run_now(deps, client, body["user"]["id"], approve_or_ask, surface=Reply(body))


def handle_deny_button(deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    ack()
    _open_deny_form(deps, client, body, extension=False)


def handle_cancel_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    _act(deps, client, body, lambda person, rid: cancel_request(rid, person, ports=deps.ports))


def handle_deactivate_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    _act(deps, client, body, lambda person, rid: deactivate_request(rid, person, ports=deps.ports))


def handle_extend_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    user_id = body["user"]["id"]

    # The form shows the role and its end: only the requester may see it (authority first).
    def open_form(person: Person) -> None:
        request = open_for_extension(_request_id(body), person, ports=deps.ports)
        open_extend_modal(
            client, deps, trigger_id=body["trigger_id"], request_id=request.id, user_id=user_id
        )

    run_now(deps, client, user_id, open_form, surface=Reply(body))


def handle_approve_extension_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    _act(deps, client, body, lambda person, rid: approve_extension(rid, person, ports=deps.ports))


def handle_deny_extension_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    _open_deny_form(deps, client, body, extension=True)


def handle_acknowledge_break_glass_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    _act(
        deps,
        client,
        body,
        lambda person, rid: acknowledge_break_glass(rid, person, ports=deps.ports),
    )


def handle_open_request_modal_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    open_request_modal(client, deps, trigger_id=body["trigger_id"], user_id=body["user"]["id"])


def handle_refresh_home_button(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient
) -> None:
    ack()
    user_id = body["user"]["id"]
    run_after_ack(
        deps,
        client,
        user_id,
        lambda person: publish_home(client, deps, person),
        surface=Home(user_id),
    )


def handle_role_select(deps: SlackDeps, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    # The form re-renders for the chosen role (its maximum, its ticket rules).
    ack()
    actions = body.get("actions") or [{}]
    option = actions[0].get("selected_option") if isinstance(actions[0], dict) else None
    selected = str(option["value"]) if isinstance(option, dict) and option.get("value") else None
    fill_request_modal_after_ack(
        client, deps, view=body["view"], user_id=body["user"]["id"], selected_role_id=selected
    )


def _open_deny_form(
    deps: SlackDeps, client: WebClient, body: dict[str, Any], *, extension: bool
) -> None:
    # The form shows requester, role and reason: authority is checked before it opens,
    # on the listener thread, since the trigger_id dies three seconds after the click.
    def open_form(person: Person) -> None:
        request = (
            open_for_decision(_request_id(body), person, ports=deps.ports, extension=True)
            if extension
            else pim_approvals.open_for_decision(_request_id(body), person, ports=deps.ports)
        )
        client.views_open(
            trigger_id=body["trigger_id"],
            view=deny_reason_modal(request.id, request=request, extension=extension),
        )

    run_now(deps, client, body["user"]["id"], open_form, surface=Reply(body))


def _act(
    deps: SlackDeps,
    client: WebClient,
    body: dict[str, Any],
    use_case: Callable[[Person, str], object],
) -> None:
    user_id = body["user"]["id"]
    on_home = (body.get("view") or {}).get("type") == "home"

    def act(person: Person) -> None:
        use_case(person, _request_id(body))
        if on_home:
            publish_home(client, deps, person)

    run_after_ack(deps, client, user_id, act, surface=Reply(body))


def _request_id(body: dict[str, Any]) -> str:
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    return request_id_from(action.get("value") if isinstance(action, dict) else None)

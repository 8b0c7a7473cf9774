"""Buttons. Each click is re-authorised from the clicking user and the stored request: a
button's ``value`` only says which request is meant, never who may act on it."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain.errors import PimbotError
from bot.use_cases.services import (
    acknowledge_break_glass,
    approve_extension,
    approve_request,
    cancel_request,
    deactivate_request,
    open_for_decision,
    open_for_extension,
)
from handlers.blocks import deny_reason_modal
from handlers.context import SlackDeps
from handlers.errors import explain, tell_user
from handlers.forms import request_id_from
from handlers.home import publish_home
from handlers.ids import ActionId
from handlers.modal_flow import fill_request_modal, open_extend_modal, open_request_modal


def register(app: App, deps: SlackDeps) -> None:
    def handle_approve_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _act(client, body, lambda person, rid: approve_request(rid, person, ports=deps.ports))

    def handle_deny_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _open_deny_form(client, body, extension=False)

    def handle_cancel_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _act(client, body, lambda person, rid: cancel_request(rid, person, ports=deps.ports))

    def handle_deactivate_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _act(client, body, lambda person, rid: deactivate_request(rid, person, ports=deps.ports))

    def handle_extend_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        # The form shows the role and its end: only the requester may see it (authority first).
        try:
            person = deps.identify(body["user"]["id"])
            request = open_for_extension(_request_id(body), person, ports=deps.ports)
        except PimbotError as exc:
            tell_user(client, body, explain(exc))
            return
        open_extend_modal(
            client,
            deps,
            trigger_id=body["trigger_id"],
            request_id=request.id,
            user_id=body["user"]["id"],
        )

    def handle_approve_extension_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _act(client, body, lambda person, rid: approve_extension(rid, person, ports=deps.ports))

    def handle_deny_extension_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _open_deny_form(client, body, extension=True)

    def handle_acknowledge_break_glass_button(
        ack: Ack, body: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        _act(
            client, body, lambda person, rid: acknowledge_break_glass(rid, person, ports=deps.ports)
        )

    def handle_open_request_modal_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        open_request_modal(client, deps, trigger_id=body["trigger_id"], user_id=body["user"]["id"])

    def handle_refresh_home_button(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        deps.later(lambda: publish_home(client, deps, body["user"]["id"]))

    def handle_role_select(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        # The form re-renders for the chosen role (its maximum, its ticket rules).
        ack()
        actions = body.get("actions") or [{}]
        option = actions[0].get("selected_option") if isinstance(actions[0], dict) else None
        selected = (
            str(option["value"]) if isinstance(option, dict) and option.get("value") else None
        )
        deps.later(
            lambda: fill_request_modal(
                client,
                deps,
                view=body["view"],
                user_id=body["user"]["id"],
                selected_role_id=selected,
            )
        )

    def _open_deny_form(client: WebClient, body: dict[str, Any], *, extension: bool) -> None:
        # The form shows requester, role and reason: authority is checked before it opens,
        # on the listener thread, since the trigger_id dies three seconds after the click.
        try:
            person = deps.identify(body["user"]["id"])
            request = open_for_decision(
                _request_id(body), person, ports=deps.ports, extension=extension
            )
        except PimbotError as exc:
            tell_user(client, body, explain(exc))
            return
        client.views_open(
            trigger_id=body["trigger_id"],
            view=deny_reason_modal(request.id, request=request, extension=extension),
        )

    def _act(client: WebClient, body: dict[str, Any], use_case: Any) -> None:
        deps.later(lambda: _act_now(client, body, use_case))

    def _act_now(client: WebClient, body: dict[str, Any], use_case: Any) -> None:
        try:
            person = deps.identify(body["user"]["id"])
            use_case(person, _request_id(body))
        except Exception as exc:
            tell_user(client, body, explain(exc))
            return
        if (body.get("view") or {}).get("type") == "home":
            publish_home(client, deps, body["user"]["id"])

    app.action(ActionId.APPROVE.value)(handle_approve_button)
    app.action(ActionId.DENY.value)(handle_deny_button)
    app.action(ActionId.CANCEL.value)(handle_cancel_button)
    app.action(ActionId.DEACTIVATE.value)(handle_deactivate_button)
    app.action(ActionId.EXTEND.value)(handle_extend_button)
    app.action(ActionId.APPROVE_EXTENSION.value)(handle_approve_extension_button)
    app.action(ActionId.DENY_EXTENSION.value)(handle_deny_extension_button)
    app.action(ActionId.ACKNOWLEDGE_BREAK_GLASS.value)(handle_acknowledge_break_glass_button)
    app.action(ActionId.OPEN_REQUEST_MODAL.value)(handle_open_request_modal_button)
    app.action(ActionId.REFRESH_HOME.value)(handle_refresh_home_button)
    app.action(ActionId.ROLE_SELECT.value)(handle_role_select)


def _request_id(body: dict[str, Any]) -> str:
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions else {}
    return request_id_from(action.get("value") if isinstance(action, dict) else None)

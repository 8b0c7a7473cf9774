"""Modal submissions: field errors inside the 3-second ack, the work after it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.domain.errors import PimbotError, ValidationFailed
from bot.use_cases import pim_approvals
from bot.use_cases.services import (
    check_request,
    deny_extension,
    extend_request,
    store_request,
)
from handlers.after_ack import Reply, bind, run_after_ack
from handlers.blocks import notice_modal
from handlers.context import SlackDeps
from handlers.errors import explain
from handlers.forms import (
    parse_deny_reason,
    parse_extend_form,
    parse_request_form,
    request_id_from,
    state_values,
)
from handlers.ids import BlockId, CallbackId


def register(app: App, deps: SlackDeps) -> None:
    bind(
        deps,
        [
            (app.view, CallbackId.REQUEST_MODAL, handle_request_modal_submission),
            (app.view, CallbackId.DENY_REASON_MODAL, handle_deny_submission),
            (app.view, CallbackId.DENY_EXTENSION_MODAL, handle_deny_extension_submission),
            (app.view, CallbackId.APPROVE_IN_PIM_MODAL, handle_approve_in_pim_submission),
            (app.view, CallbackId.EXTEND_MODAL, handle_extend_submission),
        ],
    )


def handle_request_modal_submission(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    values = state_values(view)
    form = parse_request_form(values)
    if isinstance(form, dict):
        ack(response_action="errors", errors=form)
        return
    try:
        person = deps.identify(body["user"]["id"])
        checked = check_request(form, person, ports=deps.ports)
    except ValidationFailed as exc:
        ack(response_action="errors", errors=on_inputs(exc.field_errors, values))
        return
    except PimbotError as exc:
        ack(response_action="update", view=notice_modal("Request a PIM role", explain(exc)))
        return
    ack()
    # The form is closed now: e.g. a second request racing in is told by reply (or DM).
    run_after_ack(
        deps,
        client,
        body["user"]["id"],
        lambda _person: store_request(checked, ports=deps.ports),
        surface=Reply(body),
        identified=person,
    )


def handle_deny_submission(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    # pimbot's own approval, or (delegated mode) PIM's, denied in PIM as the approver.
    _deny(deps, ack, body, view, client, pim_approvals.deny)


def handle_approve_in_pim_submission(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    # The same form as a denial's reason: the approver's justification PIM requires.
    _deny(deps, ack, body, view, client, pim_approvals.approve_in_pim)


def handle_deny_extension_submission(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    _deny(deps, ack, body, view, client, deny_extension)


def _deny(
    deps: SlackDeps,
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: WebClient,
    deny: Callable[..., object],
) -> None:
    """Denying a request and denying an extension: same form, different use case."""
    reason = parse_deny_reason(state_values(view))
    if isinstance(reason, dict):
        ack(response_action="errors", errors=reason)
        return
    request_id = _metadata_request_id(ack, view)
    if request_id is None:
        return
    ack()
    run_after_ack(
        deps,
        client,
        body["user"]["id"],
        lambda person: deny(request_id, person, reason, ports=deps.ports),
        surface=Reply(body),
    )


def handle_extend_submission(
    deps: SlackDeps, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
) -> None:
    form = parse_extend_form(state_values(view))
    if isinstance(form, dict):
        ack(response_action="errors", errors=form)
        return
    request_id = _metadata_request_id(ack, view)
    if request_id is None:
        return
    ack()
    run_after_ack(
        deps,
        client,
        body["user"]["id"],
        lambda person: extend_request(
            request_id,
            person,
            form.extra,
            ports=deps.ports,
            reason=form.reason,
            key=view.get("id") or None,  # one submission of one form extends once
        ),
        surface=Reply(body),
    )


def _metadata_request_id(ack: Ack, view: dict[str, Any]) -> str | None:
    """The request a decision modal is about; a tampered ``private_metadata`` closes the form
    with a notice instead of reaching the database."""
    try:
        return request_id_from(view.get("private_metadata"))
    except PimbotError as exc:
        ack(response_action="update", view=notice_modal("pimbot", explain(exc)))
        return None


def on_inputs(errors: dict[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """Slack shows an error only under an input block of the view: move others to the role."""
    placed: dict[str, str] = {}
    for field, message in errors.items():
        target = field if field in values else BlockId.ROLE.value
        placed[target] = f"{placed[target]} {message}" if target in placed else message
    return placed

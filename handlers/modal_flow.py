"""Opening and filling the request modal: ``views.open`` at once, ``views.update`` when ready.

``trigger_id`` dies three seconds after the click, so the loading view goes out before pimbot
asks Graph anything; the real form replaces it once eligibility and rules are known.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.app.concurrency import ContextPreservingExecutor
from bot.domain.elevation import Person
from bot.domain.ports import EligibleRole
from bot.domain.rules import MIN_DURATION, extension_needs_approval
from bot.use_cases.services import open_for_extension
from handlers.after_ack import Modal, run_after_ack
from handlers.blocks import extend_modal, loading_modal, request_modal
from handlers.context import SlackDeps

log = logging.getLogger(__name__)
REQUEST_TITLE = "Request a PIM role"
EXTEND_TITLE = "Extend role"


def open_request_modal(
    client: WebClient, deps: SlackDeps, *, trigger_id: str, user_id: str, role_query: str = ""
) -> None:
    view = client.views_open(trigger_id=trigger_id, view=loading_modal())["view"]
    fill_request_modal_after_ack(client, deps, view=view, user_id=user_id, role_query=role_query)


# Parallel Graph reads one form may make (two lists, then one policy per eligible role).
FORM_READS = 8


def fill_request_modal_after_ack(
    client: WebClient,
    deps: SlackDeps,
    *,
    view: dict[str, Any],
    user_id: str,
    role_query: str = "",
    selected_role_id: str | None = None,
) -> None:
    """Replace the open modal with the form, or with a notice saying why not (never left
    loading)."""
    run_after_ack(
        deps,
        client,
        user_id,
        lambda person: fill_request_modal(
            client,
            deps,
            person,
            view=view,
            role_query=role_query,
            selected_role_id=selected_role_id,
        ),
        surface=Modal(view["id"], REQUEST_TITLE),
    )


def fill_request_modal(
    client: WebClient,
    deps: SlackDeps,
    person: Person,
    *,
    view: dict[str, Any],
    role_query: str = "",
    selected_role_id: str | None = None,
) -> None:
    assert person.entra_id is not None
    principal = person.entra_id
    # The form's reads go out together, not one after another: what the person is eligible
    # for and what is active now, then every eligible role's rules at once.
    with ContextPreservingExecutor(
        max_workers=FORM_READS, thread_name_prefix="pimbot-form"
    ) as pool:
        eligible_read = pool.submit(deps.pim_reads.list_eligible_roles, principal)
        active_read = pool.submit(deps.pim_reads.list_active_assignments, principal)
        eligible = eligible_read.result()
        rule_reads = {
            e.role.role_definition_id: pool.submit(deps.ports.rules.rules_for, e.role)
            for e in eligible
        }
        active = active_read.result()
        rules = {role_id: read.result() for role_id, read in rule_reads.items()}
    selected = selected_role_id or match_role(eligible, role_query)
    form = request_modal(eligible, active, rules, selected, requester_slack_id=person.slack_user)
    client.views_update(view_id=view["id"], view=form)


def open_extend_modal(
    client: WebClient, deps: SlackDeps, *, trigger_id: str, request_id: str, user_id: str
) -> None:
    view = client.views_open(
        trigger_id=trigger_id,
        view=loading_modal(EXTEND_TITLE, "Checking how much longer PIM allows…"),
    )["view"]
    run_after_ack(
        deps,
        client,
        user_id,
        lambda person: fill_extend_modal(client, deps, person, view=view, request_id=request_id),
        surface=Modal(view["id"], EXTEND_TITLE),
    )


def fill_extend_modal(
    client: WebClient, deps: SlackDeps, person: Person, *, view: dict[str, Any], request_id: str
) -> None:
    request = open_for_extension(request_id, person, ports=deps.ports)
    rules = deps.ports.rules.rules_for(request.role)
    left = (request.ends_at - deps.ports.clock.now()) if request.ends_at else timedelta(0)
    profile = deps.directory.user_profile(person.slack_user)
    approved_by_people = bool(request.approvals())
    form = extend_modal(
        request,
        rules.max_duration - left,
        tz_name=profile.tz if profile else None,
        # Said up front when even the shortest extension would go to the approvers.
        needs_approval=extension_needs_approval(
            rules,
            approved_by_people=approved_by_people,
            total=(request.active_total or timedelta(0)) + MIN_DURATION,
        ),
        self_extension_up_to=(
            rules.self_extension_up_to if approved_by_people or rules.approval_required else None
        ),
    )
    client.views_update(view_id=view["id"], view=form)


def match_role(eligible: list[EligibleRole], query: str) -> str | None:
    """The role a person named after ``/pim request``: exact name or id first, then a part."""
    wanted = query.strip().casefold()
    if not wanted:
        return None
    for item in eligible:
        if wanted in (item.role.display_name.casefold(), item.role.role_definition_id.casefold()):
            return item.role.role_definition_id
    partial = [e for e in eligible if wanted in e.role.display_name.casefold()]
    return partial[0].role.role_definition_id if len(partial) == 1 else None

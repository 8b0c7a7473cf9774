"""The App Home tab: my roles, my requests and, for approvers, what waits for them."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.domain.elevation import Person
from bot.use_cases.services import list_my_requests, list_pending_for_approver
from handlers.after_ack import Home, bind, run_after_ack
from handlers.blocks import home_view
from handlers.context import SlackDeps


def register(app: App, deps: SlackDeps) -> None:
    bind(deps, [(app.event, "app_home_opened", handle_app_home_opened)])


def handle_app_home_opened(deps: SlackDeps, event: dict[str, Any], client: WebClient) -> None:
    if event.get("tab", "home") == "home":
        user_id = event["user"]
        run_after_ack(
            deps,
            client,
            user_id,
            lambda person: publish_home(client, deps, person),
            surface=Home(user_id),
        )


def publish_home(client: WebClient, deps: SlackDeps, person: Person) -> None:
    """Publish the person's home tab; a refusal or failure is published as a notice by the
    caller's ``run_after_ack(..., surface=Home(...))``."""
    assert person.entra_id is not None
    profile = deps.directory.user_profile(person.slack_user)
    view = home_view(
        deps.pim_reads.list_eligible_roles(person.entra_id),
        deps.pim_reads.list_active_assignments(person.entra_id),
        list_my_requests(person, ports=deps.ports),
        list_pending_for_approver(person, ports=deps.ports),
        tz_name=profile.tz if profile else None,
    )
    client.views_publish(user_id=person.slack_user, view=view)

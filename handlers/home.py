"""The App Home tab: my roles, my requests and, for approvers, what waits for them."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.domain.errors import PimbotError
from bot.use_cases.services import list_my_requests, list_pending_for_approver
from handlers.blocks import home_view, notice_modal
from handlers.context import SlackDeps
from handlers.errors import explain


def register(app: App, deps: SlackDeps) -> None:
    def handle_app_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish_home(client, deps, event["user"])

    app.event("app_home_opened")(handle_app_home_opened)


def publish_home(client: WebClient, deps: SlackDeps, user_id: str) -> None:
    try:
        person = deps.identify(user_id)
        assert person.entra_id is not None
        profile = deps.directory.user_profile(user_id)
        view = home_view(
            deps.pim_reads.list_eligible_roles(person.entra_id),
            deps.pim_reads.list_active_assignments(person.entra_id),
            list_my_requests(person, ports=deps.ports),
            list_pending_for_approver(person, ports=deps.ports),
            tz_name=profile.tz if profile else None,
        )
    except PimbotError as exc:
        notice = notice_modal("pimbot", explain(exc))
        view = notice.__class__(type="home", blocks=notice.blocks)
    client.views_publish(user_id=user_id, view=view)

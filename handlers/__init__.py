"""Slack transport: Bolt listeners and Block Kit builders. Logic lives in ``bot``."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from handlers import actions, commands, home, middleware, views
from handlers.context import SlackDeps
from handlers.errors import explain, handle_error


def register_handlers(app: App, deps: SlackDeps) -> None:
    """Every listener pimbot has; "which function handles X?" is one grep from here."""
    middleware.register(app, deps.ports.uow)
    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    home.register(app, deps)

    def handle_any_error(
        error: Exception, body: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        # Bolt calls this for errors in its own middleware too, signature verification
        # included: a forged body must never make pimbot post to the user or channel it names.
        if not middleware.is_verified(context):
            explain(error)  # the log line only
            return
        handle_error(error, body, client)

    app.error(handle_any_error)

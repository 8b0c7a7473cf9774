"""Slack transport: Bolt listeners and Block Kit builders. Logic lives in ``bot``."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from handlers import actions, commands, home, middleware, views
from handlers.context import SlackDeps
from handlers.errors import handle_error


def register_handlers(app: App, deps: SlackDeps) -> None:
    """Every listener pimbot has; "which function handles X?" is one grep from here."""
    middleware.register(app)
    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    home.register(app, deps)

    def handle_any_error(error: Exception, body: dict[str, Any], client: WebClient) -> None:
        handle_error(error, body, client)

    app.error(handle_any_error)

"""The one catch-all: known errors become a message to the person, unknown ones get an id."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_sdk import WebClient

from bot.app.logs import current_correlation_id
from bot.domain.errors import PimbotError
from handlers.blocks.lists import notice_message

log = logging.getLogger(__name__)


def explain(error: Exception) -> str:
    """Text for the person: the error's own words, or a correlation id to quote to an admin."""
    if isinstance(error, PimbotError):
        log.info("refused: %s", error.user_message)
        return error.user_message
    # The same id as on every log line of this interaction, so an admin can find them.
    correlation = current_correlation_id() or uuid.uuid4().hex[:12]
    log.error("unexpected error", exc_info=error, extra={"correlation_id": correlation})
    return (
        f"Something went wrong on pimbot's side. Tell your pimbot admin this reference: "
        f"`{correlation}`."
    )


def tell_user(client: WebClient, body: dict[str, Any], message: str) -> None:
    """Reply only to the person who acted: ephemeral where Slack allows it, else a DM."""
    content = notice_message(message)
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    if user and channel and not str(channel).startswith("D"):
        try:
            client.chat_postEphemeral(
                channel=channel, user=user, text=content.text, blocks=content.blocks
            )
            return
        except Exception:  # not in that channel: fall back to the DM below
            log.info("ephemeral reply failed; sending a DM instead")
    if user:
        client.chat_postMessage(channel=user, text=content.text, blocks=content.blocks)


def handle_error(error: Exception, body: dict[str, Any], client: WebClient) -> None:
    """Bolt's global error handler (registered in ``handlers.register_handlers``)."""
    tell_user(client, body, explain(error))

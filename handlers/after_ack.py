"""The one path for a listener's work: identify the person, run the use case, and on any error
tell them on the surface they used (a reference id for the unexpected ones) and log it.

Bolt's global error handler (``handlers.register_handlers``) still answers what fails before
the ack; everything after it comes through here, so nothing fails silently and no loading
modal is left spinning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.models.views import View

from bot.domain.elevation import Person
from handlers.blocks import notice_modal
from handlers.blocks.lists import notice_message
from handlers.context import SlackDeps
from handlers.errors import explain, tell_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """A button or a modal submission: an ephemeral reply where Slack allows it, else a DM."""

    body: dict[str, Any]


@dataclass(frozen=True)
class CommandReply:
    """A slash command: an ephemeral reply through its ``response_url``."""

    respond: Respond


@dataclass(frozen=True)
class Modal:
    """The modal the person has open (e.g. a loading view): replaced by a notice."""

    view_id: str
    title: str


@dataclass(frozen=True)
class Home:
    """The App Home tab: republished with the notice."""

    user_id: str


Surface = Reply | CommandReply | Modal | Home
Work = Callable[[Person], object]  # what it returns is ignored


def run_after_ack(
    deps: SlackDeps,
    client: WebClient,
    user_id: str,
    work: Work,
    *,
    surface: Surface,
    identified: Person | None = None,
) -> None:
    """Run ``work`` for the person on the work pool, off Bolt's listener thread. This is the
    only user of ``deps.later``: the pool's futures are never waited on, so this is where an
    error is logged and told."""
    deps.later(
        partial(run_now, deps, client, user_id, work, surface=surface, identified=identified)
    )


def run_now(
    deps: SlackDeps,
    client: WebClient,
    user_id: str,
    work: Work,
    *,
    surface: Surface,
    identified: Person | None = None,
) -> None:
    """The same on this thread, for work that must use a ``trigger_id`` within three seconds.
    ``identified``: the person, when the listener already identified them before the ack."""
    try:
        work(identified or deps.identify(user_id))
    except Exception as exc:
        tell(client, surface, explain(exc))  # ``explain`` logs, with the correlation id


def tell(client: WebClient, surface: Surface, message: str) -> None:
    """Say ``message`` where the person is looking; a failure to say it is logged, not lost."""
    try:
        match surface:
            case Reply(body):
                tell_user(client, body, message)
            case CommandReply(respond):
                content = notice_message(message)
                respond(
                    text=content.text,
                    blocks=content.blocks,
                    response_type="ephemeral",
                    replace_original=False,
                )
            case Modal(view_id, title):
                client.views_update(view_id=view_id, view=notice_modal(title, message))
            case Home(user_id):
                client.views_publish(user_id=user_id, view=home_notice(message))
    except Exception:
        log.exception("could not tell the person what went wrong")


def home_notice(message: str) -> View:
    notice = notice_modal("pimbot", message)
    return View(type="home", blocks=notice.blocks)


Route = Callable[..., Callable[[Callable[..., None]], Any]]
Binding = tuple[Route, str, Callable[..., None]]


def bind(deps: SlackDeps, bindings: Iterable[Binding]) -> None:
    """Register module-level listeners, each given ``deps`` as its first argument (Bolt reads
    the remaining parameter names to know what to pass)."""
    for route, key, listener in bindings:
        route(key)(partial(listener, deps))

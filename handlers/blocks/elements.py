"""Small Block Kit pieces the builders share: text objects, buttons, duration choices."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

from slack_sdk.models.blocks import (
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    Option,
    PlainTextObject,
)

from bot.domain.durations import humanize, to_iso8601
from bot.domain.elevation import Person
from bot.domain.rules import MIN_DURATION
from handlers import text
from handlers.ids import ActionId

STANDARD_DURATIONS = tuple(timedelta(minutes=m) for m in (15, 30, 60, 120, 240, 480, 720, 1440))
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def md(value: str) -> MarkdownTextObject:
    """mrkdwn that Slack does not auto-link or auto-mention; callers escape user text."""
    return MarkdownTextObject(text=value, verbatim=True)


def plain_text(value: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=text.plain(value, limit), emoji=True)


def context(*lines: str, block_id: str | None = None) -> ContextBlock:
    elements = [md(text.truncate(line, text.CONTEXT_TEXT)) for line in lines if line]
    return ContextBlock(elements=elements[: text.CONTEXT_ELEMENTS], block_id=block_id)


def mention(person: Person) -> str:
    """``<@U…>`` for a real Slack user id, which Slack renders as the person's current name.

    A mention cannot be spoofed the way a display name can; anything else is escaped text.
    """
    if _SLACK_USER_ID.match(person.slack_user):
        return person.mention
    return text.escape(person.display_name or person.slack_user)


def button(
    label: str,
    action_id: ActionId,
    request_id: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    # The value names the request and nothing else: who may act is re-checked on every click.
    return ButtonElement(
        text=plain_text(label, text.BUTTON_TEXT),
        action_id=action_id.value,
        value=request_id,
        style=style,
        confirm=confirm,
    )


def confirm_dialog(title: str, body: str, yes: str, no: str = "Cancel") -> ConfirmObject:
    """A confirmation step; ``body`` is mrkdwn that the caller has escaped."""
    return ConfirmObject(
        title=plain_text(title, text.CONFIRM_TITLE),
        text=md(text.truncate(body, text.CONFIRM_TEXT)),
        confirm=plain_text(yes, text.CONFIRM_BUTTON),
        deny=plain_text(no, text.CONFIRM_BUTTON),
    )


def duration_choices(maximum: timedelta) -> list[timedelta]:
    """The standard durations up to ``maximum``, plus ``maximum`` itself (at least PIM's 5m)."""
    maximum = max(maximum, MIN_DURATION)
    choices = [d for d in STANDARD_DURATIONS if MIN_DURATION <= d < maximum]
    return [*choices, maximum]


def duration_options(choices: Sequence[timedelta]) -> list[Option]:
    # The value is ISO 8601 (PT1H30M): unambiguous, and bot.domain.durations parses it back.
    return [
        Option(value=to_iso8601(d), text=plain_text(humanize(d), text.OPTION_TEXT)) for d in choices
    ]


def default_duration(choices: Sequence[timedelta]) -> timedelta:
    """One hour when allowed, else the longest allowed."""
    hour = timedelta(hours=1)
    return hour if hour in choices else max(choices)

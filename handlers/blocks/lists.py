"""Ephemeral answers to ``/pim roles``, ``status``, ``pending`` and ``whoami``."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, SectionBlock

from bot.domain.durations import humanize
from bot.domain.elevation import ElevationRequest
from bot.domain.ports import ActiveAssignment, EligibleRole
from handlers import text
from handlers.blocks.cards import MessageContent
from handlers.blocks.elements import context, md
from handlers.blocks.status import STATUS_LABELS
from handlers.blocks.when import local_and_utc

MAX_LINES = 40


def roles_message(
    eligible: Sequence[EligibleRole], active: Sequence[ActiveAssignment], tz_name: str | None
) -> MessageContent:
    lines = []
    for item in active[:MAX_LINES]:
        role = text.mrkdwn(item.role.display_name, 200)
        if item.is_permanent:
            lines.append(f":large_blue_circle: *{role}*: permanent assignment")
        else:
            until = local_and_utc(item.ends_at, tz_name) if item.ends_at else "?"
            lines.append(f":large_green_circle: *{role}*: active until {until}")
    active_ids = {a.role.role_definition_id for a in active}
    for choice in [e for e in eligible if e.role.role_definition_id not in active_ids][:MAX_LINES]:
        via = " (through a group)" if choice.member_type == "Group" else ""
        lines.append(f":white_circle: {text.mrkdwn(choice.role.display_name, 200)}: eligible{via}")
    body = "\n".join(lines) or "You have no eligible or active PIM roles."
    return _content("Your PIM roles", body, "Ask for one with `/pim request <role>`.")


def status_message(requests: Sequence[ElevationRequest], tz_name: str | None) -> MessageContent:
    lines = [_request_line(r, tz_name) for r in requests[:MAX_LINES]]
    return _content(
        "Your recent requests",
        "\n".join(lines) or "You have no requests yet.",
        "Cards and DMs update as each request moves on.",
    )


def pending_message(requests: Sequence[ElevationRequest], tz_name: str | None) -> MessageContent:
    lines = [
        f"{_request_line(r, tz_name)} from {r.requester.mention}" for r in requests[:MAX_LINES]
    ]
    return _content(
        "Waiting for your decision",
        "\n".join(lines) or "Nothing waits for you.",
        "Decide on the request cards or in the pimbot App Home tab.",
    )


def notice_message(message: str) -> MessageContent:
    safe = text.mrkdwn(message, text.SECTION_TEXT)
    return MessageContent(text.truncate(safe, text.FALLBACK_TEXT), [SectionBlock(text=md(safe))])


def _request_line(request: ElevationRequest, tz_name: str | None) -> str:
    label = STATUS_LABELS[request.status]
    role = text.mrkdwn(request.role.display_name, 200)
    when = local_and_utc(request.ends_at, tz_name) if request.ends_at else ""
    until = f", until {when}" if request.status.value == "active" and when else ""
    return (
        f"{label.emoji} *{role}* for {humanize(request.duration)}: {label.text.lower()}"
        f"{until} (`{request.id[:8]}`)"
    )


def _content(title: str, body: str, hint: str) -> MessageContent:
    blocks: list[Block] = [
        SectionBlock(text=md(text.truncate(f"*{title}*\n{body}", text.SECTION_TEXT))),
        context(hint),
    ]
    return MessageContent(text.truncate(f"{title}: {body}", text.FALLBACK_TEXT), blocks)

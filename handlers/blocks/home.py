"""The App Home tab: what I hold, what waits for me, what I asked for, what I could ask for."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.durations import humanize
from bot.domain.elevation import ElevationRequest, RequestStatus
from bot.domain.ports import ActiveAssignment, EligibleRole
from handlers import text
from handlers.blocks.elements import button, context, md, mention, plain_text
from handlers.blocks.status import STATUS_LABELS, quorum_text
from handlers.blocks.when import local_and_utc
from handlers.ids import ActionId, BlockId

MAX_ACTIVE = 15
MAX_PENDING = 10  # 3 blocks each
MAX_RECENT = 10


def home_view(
    eligible: Sequence[EligibleRole],
    active: Sequence[ActiveAssignment],
    recent_requests: Sequence[ElevationRequest],
    pending_for_me: Sequence[ElevationRequest],
    *,
    tz_name: str | None = "UTC",
) -> View:
    """The Home tab, at most 100 blocks whatever the lists hold."""
    blocks: list[Block] = [
        HeaderBlock(text=plain_text("Privileged roles (Entra PIM)", text.HEADER_TEXT)),
        ActionsBlock(
            block_id=BlockId.HOME_ACTIONS.value,
            elements=[
                ButtonElement(
                    text=plain_text("Request a role", text.BUTTON_TEXT),
                    action_id=ActionId.OPEN_REQUEST_MODAL.value,
                    value="home",
                    style="primary",
                ),
                ButtonElement(
                    text=plain_text("Refresh", text.BUTTON_TEXT),
                    action_id=ActionId.REFRESH_HOME.value,
                    value="home",
                ),
            ],
        ),
        *_pending_blocks(pending_for_me),
        *_active_blocks(active, tz_name),
        *_recent_blocks(recent_requests, tz_name),
        *_eligible_blocks(eligible),
    ]
    return View(type="home", blocks=blocks)


def _section_title(title: str) -> list[Block]:
    return [DividerBlock(), SectionBlock(text=md(f"*{title}*"))]


def _more(total: int, shown: int, what: str) -> list[Block]:
    return [context(f"… and {total - shown} more {what}.")] if total > shown else []


def _pending_blocks(pending: Sequence[ElevationRequest]) -> list[Block]:
    if not pending:
        return []
    blocks = _section_title(f"Waiting for you ({len(pending)})")
    for i, request in enumerate(pending[:MAX_PENDING]):
        role = text.mrkdwn(request.role.display_name, 300)
        reason = text.quote(request.reason, 1500)
        progress = quorum_text(len(request.approvals()), request.quorum)
        blocks += [
            SectionBlock(
                text=md(
                    f"{mention(request.requester)} asks for *{role}* for "
                    f"{humanize(request.duration)} · {progress}\n{reason}"
                )
            ),
            ActionsBlock(
                block_id=f"pim-home-pending-{i}",
                elements=[
                    button("Approve", ActionId.APPROVE, request.id, style="primary"),
                    button("Deny", ActionId.DENY, request.id, style="danger"),
                ],
            ),
        ]
    return blocks + _more(len(pending), MAX_PENDING, "waiting")


def _active_blocks(active: Sequence[ActiveAssignment], tz_name: str | None) -> list[Block]:
    if not active:
        return []
    lines = []
    for item in active[:MAX_ACTIVE]:
        until = local_and_utc(item.ends_at, tz_name) if item.ends_at else "permanent"
        lines.append(f"• *{text.mrkdwn(item.role.display_name, 150)}*: {until}")
    body = text.truncate("\n".join(lines), text.SECTION_TEXT)
    return [
        *_section_title("Active now"),
        SectionBlock(text=md(body)),
        *_more(len(active), MAX_ACTIVE, "active roles"),
    ]


def _recent_blocks(recent: Sequence[ElevationRequest], tz_name: str | None) -> list[Block]:
    if not recent:
        return []
    blocks = _section_title("Your recent requests")
    for request in recent[:MAX_RECENT]:
        label = STATUS_LABELS[request.status]
        role = text.mrkdwn(request.role.display_name, 300)
        line = f"{label.emoji} *{role}* for {humanize(request.duration)} · {label.text}"
        if request.status is RequestStatus.ACTIVE and request.ends_at:
            line += f" until {local_and_utc(request.ends_at, tz_name)}"
        accessory = None
        if request.status is RequestStatus.ACTIVE:
            accessory = button("Deactivate now", ActionId.DEACTIVATE, request.id, style="danger")
        elif request.status in (RequestStatus.PENDING_APPROVAL, RequestStatus.SCHEDULED):
            accessory = button("Cancel", ActionId.CANCEL, request.id)
        blocks.append(SectionBlock(text=md(line), accessory=accessory))
    return blocks + _more(len(recent), MAX_RECENT, "requests")


def _eligible_blocks(eligible: Sequence[EligibleRole]) -> list[Block]:
    names = sorted({e.role.display_name for e in eligible}, key=str.lower)
    if not names:
        return [*_section_title("You can request"), context("No eligible roles right now.")]
    body = ", ".join(text.escape(n) for n in names)
    return [
        *_section_title(f"You can request ({len(names)})"),
        SectionBlock(text=md(text.truncate(body, text.SECTION_TEXT))),
    ]

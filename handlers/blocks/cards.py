"""The approver card and the information card: a request's state, rendered whole each time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from slack_sdk.models.blocks import ActionsBlock, Block, HeaderBlock, SectionBlock

from bot.domain.durations import humanize
from bot.domain.elevation import Decision, ElevationRequest, RequestStatus
from handlers import text
from handlers.blocks.elements import button, confirm_dialog, context, md, mention, plain_text
from handlers.blocks.status import STATUS_LABELS, quorum_text
from handlers.blocks.when import slack_date, utc_text
from handlers.ids import ActionId, BlockId

MAX_RECENT = 5
MAX_APPROVER_NAMES = 10


class MessageContent(NamedTuple):
    """What ``chat.postMessage`` / ``chat.update`` need: fallback ``text`` and ``blocks``."""

    text: str
    blocks: list[Block]


def request_card(
    request: ElevationRequest,
    *,
    recent_elevations: Sequence[ElevationRequest] = (),
    approver_names: Sequence[str] = (),
    quorum_progress: tuple[int, int] | None = None,
) -> MessageContent:
    """The approvers' card. ``quorum_progress`` is (approvals so far, approvals needed)."""
    approved, needed = quorum_progress or (len(request.approvals()), request.quorum)
    role = text.mrkdwn(request.role.display_name, 200)
    blocks: list[Block] = [
        HeaderBlock(text=plain_text(f"PIM request: {request.role.display_name}", text.HEADER_TEXT)),
        *summary_blocks(request),
        context(_recent_line(recent_elevations)),
        context(_approvers_line(approver_names, needed)),
        status_block(request, progress=(approved, needed)),
    ]
    extensions = extensions_line(request)
    if extensions:
        blocks.append(context(extensions))
    if request.status is RequestStatus.PENDING_APPROVAL or request.decidable_in_pim:
        blocks.append(_decision_buttons(request))
    if request.decidable_in_pim:
        blocks.append(
            context(
                "Your click decides it *in PIM, as you*: PIM checks you are an approver of "
                "this stage and records your name."
            )
        )
    label = STATUS_LABELS[request.status]
    fallback = (
        f"{mention(request.requester)} requests {role} for {humanize(request.duration)}"
        f" ({label.text.lower()})"
    )
    return MessageContent(text.truncate(fallback, text.FALLBACK_TEXT), blocks)


def info_card(request: ElevationRequest, *, why: str | None = None) -> MessageContent:
    """For activations that needed nobody's approval: posted so approvers still see them."""
    title = "Break-glass activation" if request.break_glass else "Activated without approval"
    emoji = ":rotating_light:" if request.break_glass else ":information_source:"
    blocks: list[Block] = [
        HeaderBlock(text=plain_text(f"{title}: {request.role.display_name}", text.HEADER_TEXT)),
        *summary_blocks(request),
        context(f"{emoji} {text.mrkdwn(why, 1000)}" if why else f"{emoji} {title}."),
        status_block(request),
    ]
    extensions = extensions_line(request)
    if extensions:
        blocks.append(context(extensions))
    fallback = (
        f"{title}: {mention(request.requester)} has "
        f"{text.mrkdwn(request.role.display_name, 200)} for {humanize(request.duration)}"
    )
    return MessageContent(text.truncate(fallback, text.FALLBACK_TEXT), blocks)


def review_card(request: ElevationRequest, *, reminder: bool = False) -> MessageContent:
    """A break-glass activation, for approvers to acknowledge after the fact.

    Posted to the approvals and security channels and to every approver by DM; each copy is
    re-rendered from state, so once someone acknowledges, every copy says who and when.
    """
    role = text.mrkdwn(request.role.display_name, 200)
    who = mention(request.requester)
    if reminder and request.awaits_review:
        lead = f":rotating_light: *Still not reviewed:* {who} broke glass for *{role}*."
    else:
        lead = f":rotating_light: {who} *broke glass* for *{role}*: active without approval."
    blocks: list[Block] = [
        HeaderBlock(
            text=plain_text(
                f"Break-glass activation: {request.role.display_name}", text.HEADER_TEXT
            )
        ),
        SectionBlock(text=md(text.truncate(lead, text.SECTION_TEXT))),
        *summary_blocks(request),
        status_block(request),
        SectionBlock(
            block_id=BlockId.REVIEW_STATUS.value,
            text=md(text.truncate(_review_line(request), text.SECTION_TEXT)),
        ),
    ]
    if request.awaits_review:
        blocks.append(
            ActionsBlock(
                block_id=BlockId.REVIEW_ACTIONS.value,
                elements=[
                    button(
                        "Acknowledge",
                        ActionId.ACKNOWLEDGE_BREAK_GLASS,
                        request.id,
                        style="primary",
                        confirm=confirm_dialog(
                            "Acknowledge this break-glass activation?",
                            f"You confirm you reviewed why {who} activated *{role}* "
                            "without approval. Your name goes into the audit trail.",
                            "Acknowledge",
                        ),
                    )
                ],
            )
        )
    state = "still needs review" if request.awaits_review else "reviewed"
    fallback = f"Break-glass: {who} activated {role} without approval ({state})"
    return MessageContent(text.truncate(fallback, text.FALLBACK_TEXT), blocks)


def _review_line(request: ElevationRequest) -> str:
    if request.review is not None:
        return (
            f":white_check_mark: *Acknowledged* by {mention(request.review.by)} "
            f"{slack_date(request.review.at)}"
        )
    return (
        ":eyes: *Needs review*: an approver of this role must acknowledge it. "
        "I will keep reminding the approvers until one does."
    )


def extension_card(
    request: ElevationRequest, round: int, *, approver_names: Sequence[str] = ()
) -> MessageContent:
    """The approvers' card for the ``round``-th extension of an active role."""
    role = text.mrkdwn(request.role.display_name, 500)
    pending = request.awaits_extension_approval and request.extension.round == round
    extra = humanize(request.extension.pending) if pending and request.extension.pending else ""
    asked = f" for *{extra}* more" if extra else ""
    until = f" (now until {slack_date(request.ends_at)})" if request.ends_at else ""
    blocks: list[Block] = [
        HeaderBlock(text=plain_text(f"Extension: {request.role.display_name}", text.HEADER_TEXT)),
        SectionBlock(text=md(f"{mention(request.requester)} asks to keep *{role}*{asked}{until}.")),
        SectionBlock(
            text=md(
                "*Reason*\n"
                + text.quote(request.extension.reason or request.reason, text.SECTION_TEXT - 20)
            )
        ),
        context(_approvers_line(approver_names, request.quorum)),
        SectionBlock(
            block_id=BlockId.STATUS.value,
            text=md(text.truncate(_extension_status(request, round), text.SECTION_TEXT)),
        ),
    ]
    if pending:
        blocks.append(
            ActionsBlock(
                block_id=BlockId.DECISION_ACTIONS.value,
                elements=[
                    button("Approve", ActionId.APPROVE_EXTENSION, request.id, style="primary"),
                    button("Deny", ActionId.DENY_EXTENSION, request.id, style="danger"),
                ],
            )
        )
    fallback = f"{mention(request.requester)} asks to extend {role}"
    return MessageContent(text.truncate(fallback, text.FALLBACK_TEXT), blocks)


def extensions_line(request: ElevationRequest) -> str:
    """How often the elevation was extended, who approved each round, and its end now."""
    if request.extension.count == 0:
        return ""
    rounds = request.approved_extension_rounds()
    approved = [
        "approved by " + ", ".join(mention(d.approver) for d in request.approvals(r))
        for r in rounds
    ]
    without = request.extension.count - len(rounds)
    parts = approved + ([f"{without} without a new approval"] if without > 0 else [])
    times = "once" if request.extension.count == 1 else f"{request.extension.count} times"
    end = f"; now until {slack_date(request.ends_at)}" if request.ends_at else ""
    return text.truncate(
        f":arrows_clockwise: *Extended {times}* ({'; '.join(parts)}){end}", text.CONTEXT_TEXT
    )


def approver_followup(request: ElevationRequest, event: str) -> MessageContent:
    """A short thread reply under an approver card: what became of what they approved."""
    role = text.mrkdwn(request.role.display_name, 200)
    who = mention(request.requester)
    if event == "extended":
        until = slack_date(request.ends_at) if request.ends_at else "?"
        line = f":arrows_clockwise: {who}'s *{role}* was extended; it now lasts until {until}."
    elif event == "end_moved":
        until = slack_date(request.ends_at) if request.ends_at else "?"
        line = (
            f":arrows_clockwise: The end of {who}'s *{role}* was changed in PIM, outside "
            f"pimbot; it now lasts until {until}."
        )
    elif event == "deactivated":
        line = f":white_circle: {who} ended *{role}* early."
    else:
        why = text.mrkdwn(request.failure_reason or "PIM did not say why.", 1000)
        line = f":x: Activating *{role}* for {who} failed: {why}"
    line = text.truncate(line, text.SECTION_TEXT)
    return MessageContent(
        text.truncate(line.replace("*", ""), text.FALLBACK_TEXT), [SectionBlock(text=md(line))]
    )


def decision_buttons(request: ElevationRequest) -> ActionsBlock:
    """Approve / Deny for a pending request (the card's and the approvers' reminder's)."""
    return _decision_buttons(request)


def _extension_status(request: ElevationRequest, round: int) -> str:
    decided = [d for d in request.decisions if d.round == round]
    denials = [d for d in decided if d.decision is Decision.DENY]
    approvals = [d for d in decided if d.decision is Decision.APPROVE]
    who = ", ".join(mention(d.approver) for d in (denials or approvals))
    if denials:
        why = denials[0].reason
        return f":no_entry: *Extension denied* by {who}" + (
            f": {text.mrkdwn(why, 1000)}" if why else ""
        )
    if request.awaits_extension_approval and request.extension.round == round:
        progress = quorum_text(len(approvals), request.quorum)
        return f":hourglass_flowing_sand: *Waiting for approval* · {progress}"
    if len(approvals) >= request.quorum:
        return f":white_check_mark: *Extension approved* by {who}"
    label = STATUS_LABELS[request.status]
    return f"{label.emoji} *Closed*: the role is {label.text.lower()}"


def summary_blocks(request: ElevationRequest) -> list[Block]:
    """Who wants what, for how long, from when, why, and under which ticket."""
    role = text.mrkdwn(request.role.display_name, 500)
    fields = [
        md(f"*Requester*\n{mention(request.requester)}"),
        md(f"*Duration*\n{humanize(request.duration)}"),
        md(
            "*Start*\n"
            + (
                slack_date(request.requested_start)
                if request.requested_start
                else "As soon as approved"
            )
        ),
        md(f"*Ticket*\n{_ticket_text(request)}"),
        md(f"*Requested*\n{slack_date(request.created_at)}"),
    ]
    if request.role.directory_scope_id not in ("", "/"):
        scope = text.mrkdwn(request.role.directory_scope_id, 500)
        fields.append(md(f"*Scope*\n`{scope}`"))
    return [
        SectionBlock(
            text=md(
                f"{mention(request.requester)} asks for *{role}* for "
                f"*{humanize(request.duration)}*."
            ),
            fields=fields,
        ),
        SectionBlock(text=md("*Reason*\n" + text.quote(request.reason, text.SECTION_TEXT - 20))),
    ]


def status_block(
    request: ElevationRequest, *, progress: tuple[int, int] | None = None
) -> SectionBlock:
    """The status line: label from STATUS_LABELS plus who decided and when."""
    approved, needed = progress or (len(request.approvals()), request.quorum)
    label = STATUS_LABELS[request.status]
    line = f"{label.emoji} *{label.text}*"
    detail = _status_detail(request, approved, needed)
    if detail:
        line += f" · {detail}"
    return SectionBlock(
        block_id=BlockId.STATUS.value, text=md(text.truncate(line, text.SECTION_TEXT))
    )


def _status_detail(request: ElevationRequest, approved: int, needed: int) -> str:
    status = request.status
    approvers = ", ".join(mention(d.approver) for d in request.approvals())
    if status is RequestStatus.PENDING_APPROVAL:
        progress = quorum_text(approved, needed)
        return f"{progress} (so far: {approvers})" if approvers else progress
    if status is RequestStatus.DENIED:
        deniers = [d for d in request.decisions if d.decision is Decision.DENY]
        who = ", ".join(mention(d.approver) for d in deniers) or "pimbot"
        reason = request.deny_reason or (deniers[0].reason if deniers else None)
        return f"by {who}" + (f": {text.mrkdwn(reason, 1000)}" if reason else "")
    if status is RequestStatus.FAILED:
        return text.mrkdwn(request.failure_reason or "PIM refused the activation.", 1000)
    if status is RequestStatus.CANCELLED:
        return "by the requester"
    if request.timed_out:
        return "nobody decided in time"
    if status is RequestStatus.AWAITING_PIM and request.pim_approval is not None:
        approval = request.pim_approval
        done = [
            f"stage {d.pim_stage} approved by {mention(d.approver)}"
            for d in request.decisions
            if d.pim_stage and d.decision is Decision.APPROVE
        ]
        where = f"stage {approval.stage} of {approval.stages}"
        return " · ".join([where, *done])
    parts = [f"approved by {approvers}"] if approvers else []
    if status is RequestStatus.ACTIVE and request.ends_at:
        parts.append(f"until {slack_date(request.ends_at)}")
    if status is RequestStatus.SCHEDULED and request.starts_at:
        parts.append(f"starts {slack_date(request.starts_at)}")
    if status is RequestStatus.DEACTIVATED and request.ends_at:
        parts.append(f"ended early {slack_date(request.ends_at)}")
    return " · ".join(parts)


def _decision_buttons(request: ElevationRequest) -> ActionsBlock:
    who = mention(request.requester)
    role = text.mrkdwn(request.role.display_name, 150)
    return ActionsBlock(
        block_id=BlockId.DECISION_ACTIONS.value,
        elements=[
            button(
                "Approve",
                ActionId.APPROVE,
                request.id,
                style="primary",
                confirm=confirm_dialog(
                    "Approve this request?",
                    f"{who} gets *{role}* for {humanize(request.duration)}.",
                    "Approve",
                ),
            ),
            button("Deny", ActionId.DENY, request.id, style="danger"),
        ],
    )


def _ticket_text(request: ElevationRequest) -> str:
    if request.ticket is None or not request.ticket.number:
        return "none"
    number = text.mrkdwn(request.ticket.number, 200)
    if request.ticket.system:
        return f"{number} ({text.mrkdwn(request.ticket.system, 200)})"
    return number


def _recent_line(recent: Sequence[ElevationRequest]) -> str:
    if not recent:
        return ":mag: No recent elevations."
    items = [
        f"{text.mrkdwn(r.role.display_name, 100)} for {humanize(r.duration)} on "
        f"{utc_text(r.starts_at or r.created_at)[:10]} ({STATUS_LABELS[r.status].text.lower()})"
        for r in recent[:MAX_RECENT]
    ]
    more = f"; and {len(recent) - MAX_RECENT} more" if len(recent) > MAX_RECENT else ""
    return text.truncate(":mag: Recent elevations: " + "; ".join(items) + more, text.CONTEXT_TEXT)


def _approvers_line(names: Sequence[str], needed: int) -> str:
    if not names:
        return f":busts_in_silhouette: Needs {needed} approval{'s' if needed != 1 else ''}."
    shown = ", ".join(text.escape(n) for n in names[:MAX_APPROVER_NAMES])
    more = f" and {len(names) - MAX_APPROVER_NAMES} more" if len(names) > MAX_APPROVER_NAMES else ""
    return text.truncate(
        f":busts_in_silhouette: Can approve: {shown}{more} (needs {needed})", text.CONTEXT_TEXT
    )

"""The requester's direct messages: what happened, in their time zone, with the next step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, SectionBlock

from bot.domain.durations import humanize
from bot.domain.elevation import Decision, ElevationRequest, RequestStatus
from bot.domain.ports import AccessPolicy, Event
from handlers import text
from handlers.blocks.cards import MessageContent, decision_buttons
from handlers.blocks.elements import button, confirm_dialog, context, md, mention
from handlers.blocks.status import STATUS_LABELS, quorum_text
from handlers.blocks.when import local_and_utc
from handlers.ids import ActionId, BlockId


def requester_message(
    request: ElevationRequest,
    event: Event,
    tz_name: str | None = "UTC",
    *,
    access_policies: Sequence[AccessPolicy] = (),
) -> MessageContent:
    """The DM for ``event``; buttons follow the request's status, not the event.
    ``access_policies``: the Conditional Access policies that now apply (on ACTIVE)."""
    role = f"*{text.mrkdwn(request.role.display_name, 500)}*"
    headline = _HEADLINES.get(event, _status_headline)(request, role, tz_name)
    blocks: list[Block] = [SectionBlock(text=md(text.truncate(headline, text.SECTION_TEXT)))]
    if event is Event.DENIED and request.deny_reason:
        blocks.append(SectionBlock(text=md("*Reason*\n" + text.quote(request.deny_reason, 2900))))
    if event is Event.SUBMITTED:
        blocks.append(context(f"Your reason: {text.mrkdwn(request.reason, 1500)}"))
    if access_policies:
        blocks.append(SectionBlock(text=md(_access_policies(access_policies))))
    if request.break_glass and event in (Event.ACTIVE, Event.SCHEDULED, Event.FAILED):
        blocks.append(
            context(
                ":rotating_light: You broke glass: every approver of this role was told, and "
                "one of them must review it."
            )
        )
    label = STATUS_LABELS[request.status]
    blocks.append(context(f"{label.emoji} {label.text} · request `{text.escape(request.id)}`"))
    actions = _buttons(request)
    if actions is not None:
        blocks.append(actions)
    fallback = headline.replace("*", "")
    if event is Event.DENIED and request.deny_reason:
        fallback += f" Reason: {text.escape(request.deny_reason)}"
    fallback = text.truncate(fallback, text.FALLBACK_TEXT)
    return MessageContent(fallback, blocks)


_POLICY_STATES = {
    "enabled": "on",
    "enabledforreportingbutnotenforced": "report-only",
    "disabled": "off",
}


def _access_policies(policies: Sequence[AccessPolicy]) -> str:
    """The seed's second half: what Conditional Access now applies to the person."""
    lines = [
        f"• {text.mrkdwn(p.display_name, 200)} ({_POLICY_STATES.get(p.state.lower(), p.state)})"
        for p in policies[:15]
    ]
    more = f"\n…and {len(policies) - 15} more" if len(policies) > 15 else ""
    return text.truncate(
        "*Conditional Access policies that target this role*\n" + "\n".join(lines) + more,
        text.SECTION_TEXT,
    )


def _until(request: ElevationRequest, tz_name: str | None) -> str:
    return local_and_utc(request.ends_at, tz_name) if request.ends_at else "its end"


def _submitted(r: ElevationRequest, role: str, tz: str | None) -> str:
    return (
        f":outbox_tray: Your request for {role} ({humanize(r.duration)}) went to the approvers. "
        "I'll tell you here when someone decides."
    )


def _approval_recorded(r: ElevationRequest, role: str, tz: str | None) -> str:
    latest = r.approvals()[-1].approver if r.approvals() else None
    who = mention(latest) if latest else "An approver"
    return (
        f":ballot_box_with_check: {who} approved your request for {role}: "
        f"{quorum_text(len(r.approvals()), r.quorum)}. Waiting for "
        f"{r.approvals_needed()} more."
    )


def _extension_requested(r: ElevationRequest, role: str, tz: str | None) -> str:
    extra = humanize(r.extension.pending) if r.extension.pending else "more time"
    return (
        f":outbox_tray: Extending {role} by {extra} needs approval again; I asked the approvers. "
        f"It stays active until *{_until(r, tz)}* meanwhile."
    )


def _extension_denied(r: ElevationRequest, role: str, tz: str | None) -> str:
    denial = next(
        (d for d in reversed(r.decisions) if d.decision is Decision.DENY and d.round > 0), None
    )
    who = mention(denial.approver) if denial else "An approver"
    why = f" Reason: {text.mrkdwn(denial.reason, 1000)}" if denial and denial.reason else ""
    return f":no_entry: {who} denied extending {role}; it ends at *{_until(r, tz)}*.{why}"


def _approved(r: ElevationRequest, role: str, tz: str | None) -> str:
    who = ", ".join(mention(d.approver) for d in r.approvals()) or "pimbot"
    return f":white_check_mark: {who} approved your request for {role}. Activating it now…"


def _denied(r: ElevationRequest, role: str, tz: str | None) -> str:
    deniers = [mention(d.approver) for d in r.decisions if d.decision is Decision.DENY]
    return f":no_entry: {', '.join(deniers) or 'pimbot'} denied your request for {role}."


def _scheduled(r: ElevationRequest, role: str, tz: str | None) -> str:
    start = local_and_utc(r.starts_at, tz) if r.starts_at else "the time you asked for"
    return f":calendar: {role} is approved and starts at {start}, until {_until(r, tz)}."


def _active(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f":large_green_circle: {role} is active until *{_until(r, tz)}*."


def _extended(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f":large_green_circle: {role} now lasts until *{_until(r, tz)}*."


def _end_moved(r: ElevationRequest, role: str, tz: str | None) -> str:
    return (
        f":arrows_clockwise: The end of {role} was changed in PIM, outside pimbot: it now "
        f"lasts until *{_until(r, tz)}*."
    )


def _reminder(r: ElevationRequest, role: str, tz: str | None) -> str:
    if not r.extendable:
        return (
            f":alarm_clock: {role} ends at *{_until(r, tz)}*. PIM cannot extend an activation "
            "made as you: if you still need it afterwards, ask again with `/pim request`; "
            "deactivate it now if you are done."
        )
    return (
        f":alarm_clock: {role} ends at *{_until(r, tz)}*. Extend it if you still need it, "
        "or deactivate it now if you are done."
    )


def _sign_in_needed(r: ElevationRequest, role: str, tz: str | None) -> str:
    return (
        f":key: {role} is approved. To activate it as you, pimbot needs you to sign in: "
        "the sign-in link follows."
    )


def _pim_stage_approved(r: ElevationRequest, role: str, tz: str | None) -> str:
    approval = r.pim_approval
    stage = f"stage {approval.stage - 1} of {approval.stages}" if approval else "a stage"
    return (
        f":white_check_mark: {stage} of PIM's approval for {role} is approved; "
        "its next approvers have the card now."
    )


def _awaiting_pim(r: ElevationRequest, role: str, tz: str | None) -> str:
    return (
        f":hourglass: PIM runs its own approval for {role}: waiting for approval in PIM. "
        "Its approvers have the card in Slack; I will tell you here when it is decided (in "
        "Slack, the Azure portal or by email)."
    )


def _failed(r: ElevationRequest, role: str, tz: str | None) -> str:
    why = text.mrkdwn(r.failure_reason or "PIM did not say why.", 1500)
    return f":x: I could not activate {role}: {why}"


def _expired(r: ElevationRequest, role: str, tz: str | None) -> str:
    if r.timed_out:
        return _timed_out(r, role, tz)
    return f":clock3: {role} has expired. Run `/pim request` if you need it again."


def _timed_out(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f":clock3: Nobody decided on your request for {role} in time, so it was closed."


def _deactivated(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f":white_circle: {role} is deactivated."


def _deactivating(r: ElevationRequest, role: str, tz: str | None) -> str:
    when = (
        local_and_utc(r.timers.deactivate_at, tz) if r.timers.deactivate_at else "in a few minutes"
    )
    return (
        f":hourglass_flowing_sand: PIM does not let a role end in its first five minutes, so "
        f"I will deactivate {role} at *{when}*."
    )


def _cancelled(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f":heavy_multiplication_x: Your request for {role} is cancelled."


def _nudge(r: ElevationRequest, role: str, tz: str | None) -> str:
    return (
        f":hourglass_flowing_sand: Your request for {role} is still waiting: "
        f"{quorum_text(len(r.approvals()), r.quorum)} so far."
    )


def approver_nudge(request: ElevationRequest, now: datetime) -> MessageContent:
    """The reminder to an approver: who asked for what, how long it has waited, Approve/Deny.

    Re-rendered from state like a card, so once the request is decided it only says so.
    """
    role = f"*{text.mrkdwn(request.role.display_name, 500)}*"
    who = mention(request.requester)
    waited = humanize(max(timedelta(minutes=1), now - request.created_at) // 60 * 60)
    label = STATUS_LABELS[request.status]
    if request.status is RequestStatus.PENDING_APPROVAL:
        headline = (
            f":hourglass_flowing_sand: {who} asked for {role} ({humanize(request.duration)}) "
            f"{waited} ago and is still waiting for approval: "
            f"{quorum_text(len(request.approvals()), request.quorum)} so far."
        )
    else:
        headline = f"{label.emoji} {who}'s request for {role}: {label.text.lower()}."
    blocks: list[Block] = [SectionBlock(text=md(text.truncate(headline, text.SECTION_TEXT)))]
    if request.status is RequestStatus.PENDING_APPROVAL:
        blocks.append(context(f"Reason: {text.mrkdwn(request.reason, 1500)}"))
        blocks.append(decision_buttons(request))
    blocks.append(context(f"request `{text.escape(request.id)}`"))
    return MessageContent(text.truncate(headline.replace("*", ""), text.FALLBACK_TEXT), blocks)


def superseded_message(request: ElevationRequest) -> MessageContent:
    """An earlier DM once a newer one took over: its buttons go, a current status line stays."""
    label = STATUS_LABELS[request.status]
    role = text.mrkdwn(request.role.display_name, 500)
    line = f"{label.emoji} *{role}* ({humanize(request.duration)}): {label.text.lower()}."
    if not request.is_terminal:
        line += " The newest message from me has the current details."
    blocks: list[Block] = [
        SectionBlock(text=md(line)),
        context(f"request `{text.escape(request.id)}`"),
    ]
    return MessageContent(text.truncate(line.replace("*", ""), text.FALLBACK_TEXT), blocks)


def _status_headline(r: ElevationRequest, role: str, tz: str | None) -> str:
    return f"{STATUS_LABELS[r.status]}: {role}"


_HEADLINES: dict[Event, Callable[[ElevationRequest, str, str | None], str]] = {
    Event.SUBMITTED: _submitted,
    Event.APPROVAL_RECORDED: _approval_recorded,
    Event.APPROVED: _approved,
    Event.DENIED: _denied,
    Event.CANCELLED: _cancelled,
    Event.SCHEDULED: _scheduled,
    Event.SIGN_IN_NEEDED: _sign_in_needed,
    Event.AWAITING_PIM: _awaiting_pim,
    Event.PIM_STAGE_APPROVED: _pim_stage_approved,
    Event.ACTIVE: _active,
    Event.FAILED: _failed,
    Event.EXTENDED: _extended,
    Event.END_MOVED: _end_moved,
    Event.EXTENSION_REQUESTED: _extension_requested,
    Event.EXTENSION_DENIED: _extension_denied,
    Event.DEACTIVATION_SCHEDULED: _deactivating,
    Event.DEACTIVATED: _deactivated,
    Event.EXPIRED: _expired,
    Event.TIMED_OUT: _timed_out,
    Event.REMINDER: _reminder,
    Event.NUDGE: _nudge,
}


def _buttons(request: ElevationRequest) -> ActionsBlock | None:
    role = text.mrkdwn(request.role.display_name, 150)
    if request.status is RequestStatus.ACTIVE:
        return ActionsBlock(
            block_id=BlockId.REQUESTER_ACTIONS.value,
            elements=[
                # PIM extends no activation made as the person (delegated mode): no button.
                *(
                    [button("Extend", ActionId.EXTEND, request.id, style="primary")]
                    if request.extendable
                    else []
                ),
                button(
                    "Deactivate now",
                    ActionId.DEACTIVATE,
                    request.id,
                    style="danger",
                    confirm=confirm_dialog(
                        "Deactivate now?", f"You lose *{role}* right away.", "Deactivate"
                    ),
                ),
            ],
        )
    if request.status in (
        RequestStatus.PENDING_APPROVAL,
        RequestStatus.SCHEDULED,
        RequestStatus.AWAITING_SIGN_IN,
        RequestStatus.AWAITING_PIM,
    ):
        return ActionsBlock(
            block_id=BlockId.REQUESTER_ACTIONS.value,
            elements=[button("Cancel request", ActionId.CANCEL, request.id)],
        )
    return None

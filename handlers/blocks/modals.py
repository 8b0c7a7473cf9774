"""The smaller modals: loading, notices, the deny reason and the extension form."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain.durations import humanize
from bot.domain.elevation import ElevationRequest
from bot.domain.rules import MAX_NOTE_LENGTH, MAX_REASON_LENGTH, MIN_DURATION
from handlers import text
from handlers.blocks.elements import (
    context,
    duration_choices,
    duration_options,
    md,
    mention,
    plain_text,
)
from handlers.blocks.when import local_and_utc
from handlers.ids import ActionId, BlockId, CallbackId


def loading_modal(title: str = "Request a PIM role", message: str = "") -> View:
    """What ``views.open`` shows at once, inside Slack's 3 s; ``views.update`` fills it in."""
    return View(
        type="modal",
        callback_id=CallbackId.LOADING_MODAL.value,
        title=plain_text(title, text.MODAL_TITLE),
        close=plain_text("Cancel", text.MODAL_BUTTON),
        blocks=[
            SectionBlock(
                text=md(
                    text.mrkdwn(message, text.SECTION_TEXT)
                    if message
                    else ":hourglass_flowing_sand: Asking PIM which roles you can activate…"
                )
            )
        ],
    )


def notice_modal(title: str, message: str) -> View:
    """A modal that only says something (an error, or "nothing to do"); ``message`` is escaped."""
    return View(
        type="modal",
        callback_id=CallbackId.NOTICE_MODAL.value,
        title=plain_text(title, text.MODAL_TITLE),
        close=plain_text("Close", text.MODAL_BUTTON),
        blocks=[SectionBlock(text=md(text.mrkdwn(message, text.SECTION_TEXT)))],
    )


def deny_reason_modal(
    request_id: str,
    *,
    request: ElevationRequest | None = None,
    extension: bool = False,
    approve_in_pim: bool = False,
) -> View:
    """Asks the approver why; ``private_metadata`` carries the request id only.
    ``approve_in_pim``: the same question for approving a stage of PIM's approval whose
    settings require the approver's justification."""
    blocks: list[InputBlock | SectionBlock] = []
    if request is not None:
        blocks.append(
            SectionBlock(
                text=md(
                    f"{mention(request.requester)} asked for "
                    f"*{text.mrkdwn(request.role.display_name, 500)}* for "
                    f"{humanize(request.duration)}."
                )
            )
        )
    blocks.append(
        InputBlock(
            block_id=BlockId.DENY_REASON.value,
            label=plain_text(
                "Why do you approve it?" if approve_in_pim else "Why are you denying it?",
                text.INPUT_LABEL,
            ),
            hint=plain_text(
                "PIM requires it from this stage's approvers; PIM and the requester see it."
                if approve_in_pim
                else "The requester sees this.",
                text.INPUT_HINT,
            ),
            element=PlainTextInputElement(
                action_id=ActionId.DENY_REASON_INPUT.value,
                multiline=True,
                max_length=MAX_NOTE_LENGTH,
            ),
        )
    )
    if approve_in_pim:
        callback, title, submit = CallbackId.APPROVE_IN_PIM_MODAL, "Approve in PIM", "Approve"
    elif extension:
        callback, title, submit = CallbackId.DENY_EXTENSION_MODAL, "Deny extension", "Deny"
    else:
        callback, title, submit = CallbackId.DENY_REASON_MODAL, "Deny request", "Deny"
    return View(
        type="modal",
        callback_id=callback.value,
        title=plain_text(title, text.MODAL_TITLE),
        submit=plain_text(submit, text.MODAL_BUTTON),
        close=plain_text("Back", text.MODAL_BUTTON),
        private_metadata=request_id,
        blocks=blocks,
    )


def extend_modal(
    request: ElevationRequest,
    max_extra: timedelta,
    *,
    tz_name: str | None = None,
    needs_approval: bool = False,
    self_extension_up_to: timedelta | None = None,
) -> View:
    """How much longer, and why; at most ``max_extra`` beyond the current end.

    ``self_extension_up_to``: the total active time up to which the requester may extend an
    approved role themselves; said up front, since beyond it approvers decide first.
    """
    role = text.mrkdwn(request.role.display_name, 500)
    until = local_and_utc(request.ends_at, tz_name) if request.ends_at else "its end"
    if max_extra < MIN_DURATION:
        return notice_modal(
            "Extend role",
            f"{request.role.display_name} cannot be extended: it already runs as long as its "
            "settings allow.",
        )
    choices = duration_choices(max_extra)
    options = duration_options(choices)
    blocks: list[Block] = [
        context(
            f"*{role}* is active until {until}. You can add up to {humanize(max_extra)}."
            + (" Approvers decide on the extension first." if needs_approval else "")
            + (
                f" You can extend it yourself up to {humanize(self_extension_up_to)} in all; "
                "beyond that, approvers decide first."
                if self_extension_up_to is not None and not needs_approval
                else ""
            )
        ),
        InputBlock(
            block_id=BlockId.EXTEND_DURATION.value,
            label=plain_text("Add", text.INPUT_LABEL),
            element=StaticSelectElement(
                action_id=ActionId.EXTEND_DURATION_SELECT.value,
                options=options,
                initial_option=options[0],
            ),
        ),
        InputBlock(
            block_id=BlockId.REASON.value,
            label=plain_text("Reason", text.INPUT_LABEL),
            element=PlainTextInputElement(
                action_id=ActionId.REASON_INPUT.value,
                multiline=True,
                max_length=MAX_NOTE_LENGTH,
                initial_value=request.reason[:MAX_REASON_LENGTH],
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=CallbackId.EXTEND_MODAL.value,
        title=plain_text("Extend role", text.MODAL_TITLE),
        submit=plain_text("Extend", text.MODAL_BUTTON),
        close=plain_text("Cancel", text.MODAL_BUTTON),
        private_metadata=request.id,
        blocks=blocks,
    )

"""Block Kit builders: pure functions from domain objects to ``slack_sdk.models``.

No database, no clients. Message builders return ``MessageContent(text, blocks)`` with the
fallback ``text`` always set and escaped; view builders return a ``View``. User text is escaped
and truncated by ``handlers.text`` only.
"""

from handlers.blocks.cards import (
    MessageContent,
    approver_followup,
    extension_card,
    info_card,
    request_card,
    review_card,
    status_block,
)
from handlers.blocks.dms import approver_nudge, requester_message, superseded_message
from handlers.blocks.help import COMMAND, SUBCOMMANDS, help_blocks, help_text
from handlers.blocks.home import home_view
from handlers.blocks.limits import check_message_limits, check_view_limits
from handlers.blocks.modals import deny_reason_modal, extend_modal, loading_modal, notice_modal
from handlers.blocks.request_modal import BREAK_GLASS_VALUE, request_modal
from handlers.blocks.status import STATUS_LABELS, StatusLabel, quorum_text

__all__ = [
    "BREAK_GLASS_VALUE",
    "COMMAND",
    "STATUS_LABELS",
    "SUBCOMMANDS",
    "MessageContent",
    "StatusLabel",
    "approver_followup",
    "approver_nudge",
    "check_message_limits",
    "check_view_limits",
    "deny_reason_modal",
    "extension_card",
    "extend_modal",
    "help_blocks",
    "help_text",
    "home_view",
    "info_card",
    "loading_modal",
    "notice_modal",
    "quorum_text",
    "request_card",
    "request_modal",
    "requester_message",
    "review_card",
    "status_block",
    "superseded_message",
]

"""Slack text safety: escaping user text and truncating it, each done in exactly one place.

Slack parses ``&``, ``<`` and ``>`` in mrkdwn and in a message's fallback ``text``; every
mention and link (``<!channel>``, ``<@U…>``, ``<https://…|x>``) needs ``<``. Escaping those three
(ampersand first) makes user text render literally and ping nobody. Truncation happens after
escaping, because escaping makes text longer.
"""

from __future__ import annotations

# Block Kit limits (docs/slack.md §3). Characters, unless said otherwise.
SECTION_TEXT = 3000
SECTION_FIELD = 2000
SECTION_FIELDS = 10  # items
HEADER_TEXT = 150
CONTEXT_TEXT = 2000
CONTEXT_ELEMENTS = 10  # items
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTION_GROUP_LABEL = 75
SELECT_OPTIONS = 100  # items, also option groups
ACTIONS_ELEMENTS = 25  # items
PLACEHOLDER = 150
INPUT_LABEL = 2000
INPUT_HINT = 2000
PLAIN_TEXT_INPUT_MAX = 3000
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
BLOCK_ID = 255
ACTION_ID = 255
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
MESSAGE_BLOCKS = 50  # items
VIEW_BLOCKS = 100  # items (modals and the Home tab)
FALLBACK_TEXT = 3000  # Slack takes up to 40,000, but notifications show far less

ELLIPSIS = "…"


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` (in that order, nothing else) so Slack shows text literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut.

    A cut never splits an entity such as ``&amp;``, so escaped text stays well formed.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&", max(0, len(cut) - 4))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def mrkdwn(text: str, limit: int) -> str:
    """User text for a mrkdwn field or fallback ``text``: escaped, then truncated."""
    return truncate(escape(text), limit)


def plain(text: str, limit: int) -> str:
    """Text for a ``plain_text`` object: Slack does not parse it, so only truncate."""
    return truncate(text, limit)


def quote(text: str, limit: int) -> str:
    """User text as a mrkdwn block quote (``>`` on every line), escaped and truncated."""
    lines = escape(text.strip()).splitlines() or [""]
    return truncate("\n".join(f">{line}" for line in lines), limit)

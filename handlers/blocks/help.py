"""``/pim help``: the subcommands, in one list that the manifest's usage hint also follows."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, HeaderBlock, SectionBlock

from handlers import text
from handlers.blocks.elements import context, md, plain_text

COMMAND = "/pim"
# (usage, what it does); the order is the order of the manifest's usage hint.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("request [role]", "ask for a role: opens the request form (also plain `/pim`)"),
    ("roles", "the roles you are eligible for and the ones active now"),
    ("status", "your recent requests and where they stand"),
    ("pending", "requests waiting for your approval"),
    ("extend [role]", "keep an active role longer (may need approval again)"),
    ("deactivate [role]", "give an active role back before it expires"),
    ("whoami", "your Slack account, the Entra account it maps to, and how"),
    ("connect [tenant]", "sign in, so roles that need your own MFA activate as you"),
    ("disconnect", "delete your stored sign-in (tokens) and sign-in links"),
    ("help", "this list"),
)


def help_text() -> str:
    """The help as mrkdwn, for an ephemeral reply or a fallback ``text``."""
    lines = [f"`{COMMAND} {usage}`: {what}" for usage, what in SUBCOMMANDS]
    return "*pimbot* asks Microsoft Entra PIM for your roles.\n" + "\n".join(lines)


def help_blocks() -> list[Block]:
    lines = "\n".join(f"• `{COMMAND} {usage}`: {what}" for usage, what in SUBCOMMANDS)
    return [
        HeaderBlock(text=plain_text("pimbot: just-in-time Entra roles", text.HEADER_TEXT)),
        SectionBlock(text=md(lines)),
        context("Approvers get a card with *Approve* and *Deny*; the App Home tab shows it all."),
    ]

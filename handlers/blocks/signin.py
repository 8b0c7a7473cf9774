"""Messages of delegated mode: sign-in links, "connected", who am I, what disconnect removed."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock

from bot.domain.elevation import Person
from bot.domain.ports import SignInPrompt, StoredSignIn
from handlers import text
from handlers.blocks.cards import MessageContent
from handlers.blocks.elements import context, md, plain_text
from handlers.blocks.when import local_and_utc
from handlers.ids import ActionId

# Slack refuses a button URL longer than this (Block Kit reference, button element).
BUTTON_URL_LIMIT = 3000


def sign_in_link_message(prompt: SignInPrompt, *, why: str, tz: str | None) -> MessageContent:
    """A button to Microsoft's sign-in page, valid once, for this person only; or, where
    pimbot has no public URL, the device code to enter at Microsoft's device login page."""
    until = local_and_utc(prompt.expires_at, tz)
    body = text.mrkdwn(why, 1200)
    if prompt.url is None:
        return _device_code_message(prompt, why=body, until=until)
    if len(prompt.url) > BUTTON_URL_LIMIT:
        raise ValueError(f"sign-in URL too long for a Slack button ({len(prompt.url)} characters)")
    blocks: list[Block] = [
        SectionBlock(text=md(f":key: {body}")),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text=plain_text("Sign in with Microsoft", text.BUTTON_TEXT),
                    action_id=ActionId.SIGN_IN_LINK.value,
                    url=prompt.url,
                    style="primary",
                )
            ]
        ),
        context(
            f"The link works once until {until}, and only for your own Microsoft Entra "
            "account: do not forward it. pimbot never sees your password."
        ),
    ]
    return MessageContent(text.truncate(f"Sign in to pimbot: {why}", text.FALLBACK_TEXT), blocks)


def _device_code_message(prompt: SignInPrompt, *, why: str, until: str) -> MessageContent:
    code = text.escape(prompt.user_code or "")
    where = text.escape(prompt.verification_uri or "")
    blocks: list[Block] = [
        SectionBlock(text=md(f":key: {why}")),
        SectionBlock(
            text=md(f"Open {where} in your browser and enter the code *{code}*, then sign in.")
        ),
        context(
            f"The code works once, until {until}, only for your own Microsoft Entra account: "
            "do not share it. Some organisations block this sign-in method (device code) with "
            "Conditional Access; if yours refuses it, ask your pimbot admin to set "
            "PIMBOT_PUBLIC_URL."
        ),
    ]
    fallback = f"Sign in to pimbot: open {prompt.verification_uri} and enter {prompt.user_code}"
    return MessageContent(text.truncate(fallback, text.FALLBACK_TEXT), blocks)


def connect_sent_message() -> MessageContent:
    line = "I sent you a sign-in link in a direct message."
    return MessageContent(line, [SectionBlock(text=md(f":key: {line}"))])


def signed_in_message(sign_in: StoredSignIn, *, resumed_role: str | None) -> MessageContent:
    proof = _proof(sign_in)
    who = text.mrkdwn(sign_in.username, 200)
    line = f":white_check_mark: Connected as *{who}* ({proof})."
    if resumed_role:
        # The activation it was for has already said how it went, just above.
        line = (
            f":white_check_mark: Signed in again as *{who}* ({proof}) for "
            f"{text.mrkdwn(resumed_role, 200)}."
        )
    return MessageContent(
        text.truncate(line.replace("*", ""), text.FALLBACK_TEXT), [SectionBlock(text=md(line))]
    )


def whoami_message(
    person: Person,
    *,
    link_source: str | None,
    tenant_id: str | None,
    mode: str,
    sign_ins: Sequence[StoredSignIn] = (),
    role_modes: Sequence[tuple[str, str]] = (),
    tz: str | None = None,
) -> MessageContent:
    how = {
        "operator": "linked by an operator",
        "email": "matched by your Slack email",
        "signin": "linked by your sign-in",
    }.get(link_source or "", "not linked yet")
    lines = [
        f"*Slack*: {person.mention} (team `{text.escape(person.slack_team)}`)",
        f"*Entra user*: `{text.escape(person.entra_id or 'unknown')}` ({how})",
        f"*Home tenant*: `{text.escape(tenant_id or 'not configured')}`",
        f"*Mode*: {text.escape(mode)}",
    ]
    if sign_ins:
        for stored in sign_ins:
            until = (
                f", usable until {local_and_utc(stored.usable_until, tz)}"
                if stored.usable_until
                else ""
            )
            lines.append(
                f"*Signed in* to `{text.escape(stored.tenant)}` as "
                f"{text.mrkdwn(stored.username, 200)} ({_proof(stored)}{until})"
            )
    elif mode != "broker":
        lines.append("*Signed in*: no (run `/pim connect`)")
    for role, role_mode in role_modes:
        who = "as you (your sign-in)" if role_mode == "delegated" else "by pimbot's app"
        lines.append(f"• {text.mrkdwn(role, 150)}: activated {who}")
    body = text.truncate("\n".join(lines), text.SECTION_TEXT - 40)
    blocks: list[Block] = [
        SectionBlock(text=md(f"*Who pimbot thinks you are*\n{body}")),
        context("`/pim connect` signs you in; `/pim disconnect` forgets your sign-in."),
    ]
    return MessageContent(text.truncate(f"Who pimbot thinks you are: {body}", 3000), blocks)


def disconnected_message(*, sign_ins: int, links: int, downgraded: bool) -> MessageContent:
    removed = []
    if sign_ins:
        removed.append(f"{sign_ins} stored sign-in{'s' if sign_ins != 1 else ''} (tokens)")
    if links:
        removed.append(f"{links} sign-in link{'s' if links != 1 else ''}")
    if downgraded:
        removed.append(
            "the proof your sign-in gave of your account link (it rests on your email again)"
        )
    line = (
        "Removed " + ", ".join(removed) + "."
        if removed
        else "There was nothing to remove: pimbot held no sign-in for you."
    )
    return MessageContent(line, [SectionBlock(text=md(f":wastebasket: {line}"))])


def _proof(sign_in: StoredSignIn) -> str:
    parts = ["with MFA" if sign_in.mfa else "without MFA"]
    if sign_in.acrs:
        parts.append("authentication context " + ", ".join(sign_in.acrs))
    return ", ".join(parts)

"""Delegated mode's direct messages: sign-in links and "connected" (``SignInMessages``)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.domain.elevation import ElevationRequest, Person
from bot.domain.ports import SignInMessages, SignInPrompt, SlackDirectory, StoredSignIn
from handlers.blocks.cards import MessageContent
from handlers.blocks.lists import notice_message
from handlers.blocks.signin import sign_in_link_message, signed_in_message


class SlackSignInMessages:
    def __init__(self, *, client: WebClient, directory: SlackDirectory) -> None:
        self._client = client
        self._directory = directory

    def sign_in_link(self, person: Person, prompt: SignInPrompt, *, why: str) -> None:
        profile = self._directory.user_profile(person.slack_user)
        tz = profile.tz if profile else None
        self._dm(person, sign_in_link_message(prompt, why=why, tz=tz))

    def notice(self, person: Person, words: str) -> None:
        self._dm(person, notice_message(words))

    def signed_in(
        self, person: Person, sign_in: StoredSignIn, *, resumed: ElevationRequest | None
    ) -> None:
        role = resumed.role.display_name if resumed is not None else None
        self._dm(person, signed_in_message(sign_in, resumed_role=role))

    def _dm(self, person: Person, content: MessageContent) -> None:
        self._client.chat_postMessage(
            channel=person.slack_user,
            text=content.text,
            blocks=content.blocks,
            unfurl_links=False,
        )


def _implements_the_port(messages: SlackSignInMessages) -> SignInMessages:
    return messages  # mypy checks SlackSignInMessages against the port

"""Slack's view of people and groups (users.info, users.lookupByEmail, usergroups.*)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.app.concurrency import SingleFlight
from bot.domain.ports import SlackProfile

log = logging.getLogger(__name__)


class SlackWebDirectory:
    def __init__(self, client: WebClient) -> None:
        self._client = client

    def user_profile(self, user_id: str) -> SlackProfile | None:
        try:
            user = self._client.users_info(user=user_id)["user"]
        except SlackApiError as exc:
            if exc.response.get("error") == "user_not_found":
                return None
            raise
        return _profile(user)

    def user_by_email(self, email: str) -> SlackProfile | None:
        try:
            user = self._client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as exc:
            if exc.response.get("error") in ("users_not_found", "user_not_found"):
                return None
            raise
        return _profile(user)

    def usergroup_members(self, handle: str) -> list[str]:
        groups = self._client.usergroups_list()["usergroups"]
        group = next((g for g in groups if g.get("handle") == handle.lstrip("@")), None)
        if group is None:
            log.warning("Slack user group @%s does not exist", handle)
            return []
        return list(self._client.usergroups_users_list(usergroup=group["id"])["users"])


# Every click identifies its person with users.info, and every DM reads the time zone: a short
# cache saves those calls without letting a deactivated account act for long (Entra accounts
# are cached as long: use_cases.identity.ACCOUNT_TTL). Bounded, oldest first out.
PROFILE_TTL = 60.0
PROFILE_CACHE_SIZE = 5000


class CachedSlackDirectory:
    """``SlackDirectory`` with users.info answers (found or not) kept ``ttl`` seconds."""

    def __init__(
        self,
        inner: SlackWebDirectory,
        *,
        ttl: float = PROFILE_TTL,
        size: int = PROFILE_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        # Single flight: one users.info per person at a time; the others wait for it.
        self._profiles: SingleFlight[SlackProfile | None] = SingleFlight(
            ttl, size=size, clock=clock
        )

    def user_profile(self, user_id: str) -> SlackProfile | None:
        return self._profiles.get(user_id, self._inner.user_profile)

    def user_by_email(self, email: str) -> SlackProfile | None:
        return self._inner.user_by_email(email)

    def usergroup_members(self, handle: str) -> list[str]:
        return self._inner.usergroup_members(handle)


def _profile(user: dict[str, Any]) -> SlackProfile:
    profile = user.get("profile") or {}
    enterprise = (user.get("enterprise_user") or {}).get("enterprise_id")
    return SlackProfile(
        user_id=user["id"],
        team_id=user.get("team_id", ""),
        enterprise_id=enterprise,
        email=profile.get("email"),
        real_name=profile.get("real_name") or user.get("real_name") or user.get("name"),
        tz=user.get("tz"),
        deleted=bool(user.get("deleted")),
        is_bot=bool(user.get("is_bot") or user.get("is_app_user")),
        is_restricted=bool(user.get("is_restricted")),
        is_ultra_restricted=bool(user.get("is_ultra_restricted")),
        is_stranger=bool(user.get("is_stranger")),
    )

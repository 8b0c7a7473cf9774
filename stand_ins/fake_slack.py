"""A loopback fake of the Slack Web API that answers like Slack and records every call.

Point ``slack_sdk.WebClient(base_url=fake.api_url)`` at it. It keeps a small workspace
(users, channels, user groups, messages, views), enforces the bot's scopes, channel membership,
single-use 3-second trigger ids and the Block Kit limits Slack checks server-side, and answers
with Slack's own error strings. Tests assert on ``calls()``; Bolt listeners run in threads, so
use ``wait_for()`` rather than reading ``calls()`` right after a request.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

JSON = dict[str, Any]

TEAM_ID = "T0PIMBOT"
OTHER_TEAM_ID = "T0FABRIKAM"
APP_ID = "A0PIMBOT"
BOT_USER_ID = "U0PIMBOT"
BOT_ID = "B0PIMBOT"
APPROVALS_CHANNEL = "C0APPROVALS"
APPROVERS_GROUP = "S0APPROVERS"
# The bot scopes manifest.yml asks for; tests check the two stay the same.
DEFAULT_SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)
TRIGGER_TTL = 3.0  # seconds; Slack's trigger ids live three seconds and work once
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
_KNOWN_BLOCKS = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "rich_text",
        "section",
        "video",
        "markdown",
    }
)
# What each method needs beyond a valid token (conversations.info depends on the channel type).
_NEEDED_SCOPES: dict[str, str] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "conversations.open": "im:write",
}
# Methods only an app-level token (xapp-…) may call, and the app scope each needs.
_APP_TOKEN_METHODS: dict[str, str] = {"apps.connections.open": "connections:write"}


class SlackApiFailure(Exception):
    """Raised inside a method to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --- directory ---------------------------------------------------------------------------------


@dataclass
class FakeUser:
    id: str
    name: str
    real_name: str = ""
    email: str | None = None
    team_id: str = TEAM_ID
    tz: str = "UTC"
    deleted: bool = False
    is_bot: bool = False
    is_app_user: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_stranger: bool = False
    is_admin: bool = False
    bot_id: str | None = None
    enterprise_id: str | None = None

    def to_api(self, *, with_email: bool, now: float) -> JSON:
        """The user object as ``users.info`` shows it (email only with users:read.email)."""
        profile: JSON = {
            "real_name": self.real_name or self.name,
            "display_name": self.name,
            "real_name_normalized": self.real_name or self.name,
            "display_name_normalized": self.name,
            "team": self.team_id,
        }
        if with_email and self.email and not self.is_bot:
            profile["email"] = self.email
        if self.bot_id:
            profile["bot_id"] = self.bot_id
            profile["api_app_id"] = APP_ID if self.id == BOT_USER_ID else ""
        tz_label, tz_offset = _tz_facts(self.tz, now)
        user: JSON = {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name or self.name,
            "tz": self.tz,
            "tz_label": tz_label,
            "tz_offset": tz_offset,
            "profile": profile,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "is_bot": self.is_bot,
            "is_app_user": self.is_app_user,
            "updated": 1700000000,
            "is_email_confirmed": bool(self.email),
        }
        if self.is_stranger:
            user["is_stranger"] = True
        if self.enterprise_id:
            user["enterprise_user"] = {
                "id": self.id,
                "enterprise_id": self.enterprise_id,
                "enterprise_name": "Contoso Grid",
                "is_admin": False,
                "is_owner": False,
                "teams": [self.team_id],
            }
        return user


def _tz_facts(tz_name: str, now: float) -> tuple[str, int]:
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    offset = local.utcoffset()
    return local.tzname() or tz_name, int(offset.total_seconds()) if offset else 0


@dataclass
class SlackMessage:
    """A message as stored in a channel."""

    channel: str
    ts: str
    text: str
    blocks: list[JSON]
    user: str
    bot_id: str | None = None
    thread_ts: str | None = None
    edits: int = 0

    def to_api(self) -> JSON:
        message: JSON = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.blocks:
            message["blocks"] = self.blocks
        if self.bot_id:
            message["bot_id"] = self.bot_id
            message["app_id"] = APP_ID
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.edits:
            message["edited"] = {"user": self.user, "ts": self.ts}
        return message


@dataclass
class FakeChannel:
    id: str
    name: str
    members: set[str] = field(default_factory=set)
    is_private: bool = False
    ext_shared: bool = False
    im_user: str | None = None
    messages: list[SlackMessage] = field(default_factory=list)

    @property
    def is_im(self) -> bool:
        return self.im_user is not None

    def to_api(self, *, viewer: str) -> JSON:
        info: JSON = {
            "id": self.id,
            "created": 1700000000,
            "is_im": self.is_im,
            "is_archived": False,
        }
        if self.is_im:
            info.update({"user": self.im_user, "is_user_deleted": False, "is_open": True})
            return info
        info.update(
            {
                "name": self.name,
                "name_normalized": self.name,
                "is_channel": not self.is_private,
                "is_group": self.is_private,
                "is_private": self.is_private,
                "is_mpim": False,
                "is_general": False,
                "is_member": viewer in self.members,
                "is_shared": self.ext_shared,
                "is_ext_shared": self.ext_shared,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "context_team_id": TEAM_ID,
                "num_members": len(self.members),
            }
        )
        return info


@dataclass
class FakeUsergroup:
    id: str
    handle: str
    name: str
    users: list[str]
    team_id: str = TEAM_ID

    def to_api(self, *, include_users: bool) -> JSON:
        group: JSON = {
            "id": self.id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": self.name,
            "description": "",
            "handle": self.handle,
            "is_external": False,
            "date_create": 1700000000,
            "date_update": 1700000000,
            "date_delete": 0,
            "auto_type": None,
            "user_count": len(self.users),
        }
        if include_users:
            group["users"] = list(self.users)
        return group


@dataclass
class Workspace:
    """What the fake knows: the installation (team, bot, token, scopes) and its directory."""

    team_id: str = TEAM_ID
    team_name: str = "Contoso"
    domain: str = "contoso"
    enterprise_id: str | None = None
    app_id: str = APP_ID
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    bot_token: str = "xoxb-0000000000-0000000000000-pimbotfaketoken00000000"
    # The app-level token (Socket Mode); its scopes are the app's, not the bot's.
    app_token: str = "xapp-1-A0PIMBOT-0000000000000-pimbotfakeapptoken0000"
    app_token_scopes: tuple[str, ...] = ("connections:write",)
    signing_secret: str = "8f742231b10e8888abcd99yyyzzz85a5"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    users: dict[str, FakeUser] = field(default_factory=dict)
    channels: dict[str, FakeChannel] = field(default_factory=dict)
    usergroups: dict[str, FakeUsergroup] = field(default_factory=dict)

    def add_user(self, user_id: str, name: str, **fields: Any) -> FakeUser:
        fields.setdefault("team_id", self.team_id)
        fields.setdefault("enterprise_id", self.enterprise_id)
        user = FakeUser(id=user_id, name=name, **fields)
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        members: Iterable[str] = (),
        ext_shared: bool = False,
        is_private: bool = False,
    ) -> FakeChannel:
        channel = FakeChannel(
            channel_id, name, set(members), is_private=is_private, ext_shared=ext_shared
        )
        self.channels[channel_id] = channel
        return channel

    def add_usergroup(
        self, handle: str, users: Iterable[str], *, group_id: str | None = None, name: str = ""
    ) -> FakeUsergroup:
        gid = group_id or f"S{len(self.usergroups) + 1:010d}"
        group = FakeUsergroup(gid, handle, name or handle, list(users), self.team_id)
        self.usergroups[gid] = group
        return group


def default_workspace() -> Workspace:
    """Contoso: the people the Graph emulator's demo tenant knows, plus the awkward cases."""
    ws = Workspace()
    ws.add_user(
        BOT_USER_ID, "pimbot", real_name="pimbot", is_bot=True, bot_id=BOT_ID, is_app_user=False
    )
    ws.add_user(
        "U0ADA", "ada", real_name="Ada Lovelace", email="ada@contoso.example", tz="Europe/London"
    )
    ws.add_user(
        "U0GRACE",
        "grace",
        real_name="Grace Hopper",
        email="grace@contoso.example",
        tz="America/New_York",
    )
    ws.add_user(
        "U0ALAN", "alan", real_name="Alan Turing", email="alan@contoso.example", tz="Europe/Berlin"
    )
    ws.add_user(
        "U0GUEST",
        "gus",
        real_name="Gus Guest",
        email="gus@partner.example",
        is_restricted=True,
    )
    ws.add_user(
        "U0EXTERNAL",
        "eve",
        real_name="Eve External",
        email="eve@fabrikam.example",
        team_id=OTHER_TEAM_ID,
    )
    ws.add_user(
        "U0DEPLOYBOT", "deploybot", real_name="Deploy Bot", is_bot=True, bot_id="B0DEPLOYBOT"
    )
    ws.add_user(
        "U0GONE", "gone", real_name="Former Employee", email="gone@contoso.example", deleted=True
    )
    ws.add_channel(APPROVALS_CHANNEL, "pim-approvals", members=[BOT_USER_ID, "U0GRACE", "U0ALAN"])
    ws.add_channel("C0GENERAL", "general", members=["U0ADA", "U0GRACE", "U0ALAN"])
    ws.add_channel(
        "C0SHARED", "contoso-fabrikam", members=[BOT_USER_ID, "U0EXTERNAL"], ext_shared=True
    )
    ws.add_usergroup("pim-approvers", ["U0GRACE", "U0ALAN"], group_id=APPROVERS_GROUP)
    return ws


# --- recording ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received, as it parsed it, and what it answered."""

    method: str  # "chat.postMessage", ... or "response_url" for webhook posts
    args: JSON
    token: str | None
    at: float
    status: int
    response: JSON
    path: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


@dataclass
class _Trigger:
    issued_at: float
    user_id: str | None
    used: bool = False


# --- the fake ----------------------------------------------------------------------------------


class FakeSlack:
    """The Slack Web API on a loopback port; ``start()`` it, or use it as a context manager."""

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        clock: Callable[[], float] = time.time,
        trigger_ttl: float = TRIGGER_TTL,
    ) -> None:
        self.workspace = workspace or default_workspace()
        self.clock = clock
        self.trigger_ttl = trigger_ttl
        self.latency = 0.0  # seconds added to every API answer
        self._lock = threading.Condition()
        self._calls: list[SlackCall] = []
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, list[tuple[str, JSON] | None]] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, JSON] = {}
        self._view_users: dict[str, str | None] = {}
        self._homes: dict[str, JSON] = {}
        self._ephemeral: list[JSON] = []
        self._last_ts_us = 0
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "apps.connections.open": self._apps_connections_open,
        }

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def bot_token(self) -> str:
        return self.workspace.bot_token

    @property
    def app_token(self) -> str:
        return self.workspace.app_token

    @property
    def signing_secret(self) -> str:
        return self.workspace.signing_secret

    @property
    def team_id(self) -> str:
        return self.workspace.team_id

    # --- directory -----------------------------------------------------------------------------

    def add_user(self, user_id: str, name: str, **fields: Any) -> FakeUser:
        with self._lock:
            return self.workspace.add_user(user_id, name, **fields)

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        members: Iterable[str] = (),
        ext_shared: bool = False,
        is_private: bool = False,
    ) -> FakeChannel:
        with self._lock:
            return self.workspace.add_channel(
                channel_id, name, members=members, ext_shared=ext_shared, is_private=is_private
            )

    def add_usergroup(
        self, handle: str, users: Iterable[str], *, group_id: str | None = None
    ) -> FakeUsergroup:
        with self._lock:
            return self.workspace.add_usergroup(handle, users, group_id=group_id)

    def user(self, user_id: str) -> FakeUser:
        return self.workspace.users[user_id]

    def add_message(self, channel: str, text: str, *, user: str) -> SlackMessage:
        """Seed a message somebody else wrote (the bot may not update it)."""
        with self._lock:
            message = SlackMessage(channel, self._next_ts(), text, [], user)
            self.workspace.channels[channel].messages.append(message)
            return message

    # --- knobs ---------------------------------------------------------------------------------

    def new_trigger_id(self, user_id: str | None = None) -> str:
        """A trigger id as Slack puts in an interaction payload: valid once, for 3 seconds."""
        with self._lock:
            n = next(self._ids)
            secret = hashlib.sha1(f"{n}{self.clock()}".encode()).hexdigest()[:21]
            trigger_id = f"{1000000000 + n}.{7000000000 + n}.{secret}"
            self._triggers[trigger_id] = _Trigger(self.clock(), user_id)
            return trigger_id

    def new_response_url(self) -> str:
        n = next(self._ids)
        secret = hashlib.sha1(str(n).encode()).hexdigest()[:24]
        return f"{self.url}/webhook/commands/{self.team_id}/{n}/{secret}"

    def rate_limit_next(self, method: str, n: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``n`` calls of ``method`` with HTTP 429 and ``Retry-After``."""
        with self._lock:
            self._rate_limits[method] = [n, retry_after]

    def fail_next(
        self, method: str, error: str, n: int = 1, *, after: int = 0, **extra: Any
    ) -> None:
        """Answer the next ``n`` calls of ``method`` with ``{"ok": false, "error": error}``,
        after letting ``after`` calls of it through normally."""
        with self._lock:
            queue = self._failures.setdefault(method, [])
            queue.extend([None] * after)
            queue.extend([(error, extra)] * n)

    # --- assertions ----------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[SlackCall]:
        """Block until ``method`` was called ``count`` times; AssertionError after ``timeout``."""

        def enough() -> bool:
            return sum(1 for c in self._calls if c.method == method) >= count

        with self._lock:
            if not self._lock.wait_for(enough, timeout=timeout):
                seen = ", ".join(c.method for c in self._calls) or "nothing"
                raise AssertionError(
                    f"expected {count} call(s) of {method} within {timeout}s; saw: {seen}"
                )
            return [c for c in self._calls if c.method == method]

    def messages(self, channel: str) -> list[SlackMessage]:
        with self._lock:
            return list(self.workspace.channels[channel].messages)

    def message(self, channel: str, ts: str) -> SlackMessage:
        with self._lock:
            return self._find_message(self.workspace.channels[channel], ts)

    def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel id with ``user_id`` (created on first use)."""
        with self._lock:
            return self._dm(user_id).id

    def view(self, view_id: str) -> JSON:
        with self._lock:
            return json.loads(json.dumps(self._views[view_id]))  # type: ignore[no-any-return]

    def latest_view(self, user_id: str) -> JSON:
        """The modal most recently opened (and then updated) with one of ``user_id``'s triggers."""
        with self._lock:
            ids = [
                v
                for v, u in self._view_users.items()
                if u == user_id and v not in (h["id"] for h in self._homes.values())
            ]
            if not ids:
                raise AssertionError(f"no modal was opened for {user_id}")
            return json.loads(json.dumps(self._views[ids[-1]]))  # type: ignore[no-any-return]

    def home_view(self, user_id: str) -> JSON | None:
        with self._lock:
            return self._homes.get(user_id)

    def ephemeral_messages(self) -> list[JSON]:
        with self._lock:
            return list(self._ephemeral)

    # --- request handling (called from the HTTP handler) ---------------------------------------

    def handle_api(self, method: str, args: JSON, token: str | None) -> tuple[int, JSON, JSON]:
        """Answer one Web API call: (HTTP status, extra headers, body)."""
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            status, headers, body = self._answer(method, args, token)
            self._record(SlackCall(method, args, token, self.clock(), status, body))
            return status, headers, body

    def handle_webhook(self, path: str, body: JSON) -> None:
        with self._lock:
            self._record(
                SlackCall("response_url", body, None, self.clock(), 200, {"ok": True}, path)
            )

    def _record(self, call: SlackCall) -> None:
        self._calls.append(call)
        self._lock.notify_all()

    def _answer(self, method: str, args: JSON, token: str | None) -> tuple[int, JSON, JSON]:
        limit = self._rate_limits.get(method)
        if limit and limit[0] > 0:
            limit[0] -= 1
            return 429, {"Retry-After": str(limit[1])}, {"ok": False, "error": "ratelimited"}
        handler = self._methods.get(method)
        if handler is None:
            return 404, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if method in _APP_TOKEN_METHODS:
            return self._answer_app_level(method, args, token)
        if token == self.workspace.app_token:
            return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        if token != self.workspace.bot_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        headers = {
            "x-oauth-scopes": ",".join(self.workspace.scopes),
            "x-accepted-oauth-scopes": _NEEDED_SCOPES.get(method, ""),
        }
        failures = self._failures.get(method)
        scripted = failures.pop(0) if failures else None
        if scripted is not None:
            error, extra = scripted
            return 200, headers, {"ok": False, "error": error, **extra}
        try:
            self._require_scope(_NEEDED_SCOPES.get(method))
            return 200, headers, {"ok": True, **handler(args)}
        except SlackApiFailure as failure:
            return 200, headers, {"ok": False, "error": failure.error, **failure.extra}

    def _answer_app_level(self, method: str, args: JSON, token: str) -> tuple[int, JSON, JSON]:
        """Slack refuses a bot token here with not_allowed_token_type, not invalid_auth."""
        ws = self.workspace
        if token == ws.bot_token:
            return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        if token != ws.app_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        headers = {"x-oauth-scopes": ",".join(ws.app_token_scopes)}
        needed = _APP_TOKEN_METHODS[method]
        if needed not in ws.app_token_scopes:
            body = {"ok": False, "error": "missing_scope", "needed": needed}
            return 200, headers, {**body, "provided": ",".join(ws.app_token_scopes)}
        return 200, headers, {"ok": True, **self._methods[method](args)}

    def _require_scope(self, scope: str | None) -> None:
        if scope and scope not in self.workspace.scopes:
            raise SlackApiFailure(
                "missing_scope", needed=scope, provided=",".join(self.workspace.scopes)
            )

    # --- auth ----------------------------------------------------------------------------------

    def _auth_test(self, args: JSON) -> JSON:
        ws = self.workspace
        return {
            "url": f"https://{ws.domain}.slack.com/",
            "team": ws.team_name,
            "user": ws.users[ws.bot_user_id].name if ws.bot_user_id in ws.users else "pimbot",
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
            **({"enterprise_id": ws.enterprise_id} if ws.enterprise_id else {}),
        }

    def _apps_connections_open(self, args: JSON) -> JSON:
        # A real URL would be a one-time WebSocket address; nothing here listens on it.
        ticket = _short_hash(next(self._ids))
        return {"url": f"wss://wss-primary.slack.example/link/?ticket={ticket}&app_id={APP_ID}"}

    # --- chat ----------------------------------------------------------------------------------

    def _chat_post_message(self, args: JSON) -> JSON:
        channel = self._channel_for_posting(_required(args, "channel"))
        text, blocks = _message_content(args)
        message = SlackMessage(
            channel.id,
            self._next_ts(),
            text,
            blocks,
            self.workspace.bot_user_id,
            self.workspace.bot_id,
            thread_ts=args.get("thread_ts") or None,
        )
        channel.messages.append(message)
        return {"channel": channel.id, "ts": message.ts, "message": message.to_api()}

    def _chat_update(self, args: JSON) -> JSON:
        channel = self.workspace.channels.get(_required(args, "channel"))
        if channel is None:
            raise SlackApiFailure("channel_not_found")
        message = self._find_message(channel, _required(args, "ts"))
        if message.user != self.workspace.bot_user_id:
            raise SlackApiFailure("cant_update_message")
        text, blocks = _message_content(args)
        message.text, message.blocks = text, blocks
        message.edits += 1
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": text,
            "message": message.to_api(),
        }

    def _chat_post_ephemeral(self, args: JSON) -> JSON:
        channel = self._channel_for_posting(_required(args, "channel"))
        user = _required(args, "user")
        if not channel.is_im and user not in channel.members:
            raise SlackApiFailure("user_not_in_channel")
        text, blocks = _message_content(args)
        ts = self._next_ts()
        self._ephemeral.append(
            {"channel": channel.id, "user": user, "ts": ts, "text": text, "blocks": blocks}
        )
        return {"message_ts": ts}

    def _channel_for_posting(self, target: str) -> FakeChannel:
        ws = self.workspace
        if target[:1] in ("U", "W"):
            user = ws.users.get(target)
            if user is None:
                raise SlackApiFailure("channel_not_found")
            if user.is_bot and user.id != ws.bot_user_id:
                raise SlackApiFailure("cannot_dm_bot")
            return self._dm(target)
        name = target.removeprefix("#")
        channel = ws.channels.get(target) or next(
            (c for c in ws.channels.values() if c.name == name and not c.is_im), None
        )
        if channel is None or (channel.is_private and ws.bot_user_id not in channel.members):
            raise SlackApiFailure("channel_not_found")
        if ws.bot_user_id not in channel.members:
            raise SlackApiFailure("not_in_channel")
        return channel

    def _dm(self, user_id: str) -> FakeChannel:
        channel_id = "D" + user_id[1:]
        channel = self.workspace.channels.get(channel_id)
        if channel is None:
            channel = FakeChannel(
                channel_id, channel_id, {self.workspace.bot_user_id, user_id}, im_user=user_id
            )
            self.workspace.channels[channel_id] = channel
        return channel

    def _find_message(self, channel: FakeChannel, ts: str) -> SlackMessage:
        for message in channel.messages:
            if message.ts == ts:
                return message
        raise SlackApiFailure("message_not_found")

    def _next_ts(self) -> str:
        # Slack's ts: epoch seconds with six digits after the dot, unique and increasing.
        self._last_ts_us = max(int(self.clock() * 1_000_000), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    # --- views ---------------------------------------------------------------------------------

    def _use_trigger(self, trigger_id: str) -> _Trigger:
        trigger = self._triggers.get(trigger_id)
        if trigger is None or trigger.used or self.clock() - trigger.issued_at > self.trigger_ttl:
            raise SlackApiFailure(
                "expired_trigger_id",
                response_metadata={"messages": ["[ERROR] trigger_id has expired or was used"]},
            )
        trigger.used = True
        return trigger

    def _views_open(self, args: JSON) -> JSON:
        view = _view_arg(args)
        _check_view(view)
        trigger = self._use_trigger(_required(args, "trigger_id"))
        return {"view": self._store_view(self._new_view_id(), view, user_id=trigger.user_id)}

    def _views_push(self, args: JSON) -> JSON:
        view = _view_arg(args)
        _check_view(view)
        trigger = self._use_trigger(_required(args, "trigger_id"))
        return {"view": self._store_view(self._new_view_id(), view, user_id=trigger.user_id)}

    def _views_update(self, args: JSON) -> JSON:
        view = _view_arg(args)
        view_id = args.get("view_id") or self._view_id_by_external(args.get("external_id"))
        if not view_id or view_id not in self._views:
            raise SlackApiFailure("not_found")
        current = self._views[view_id]
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackApiFailure("hash_conflict")
        _check_view(view)
        return {"view": self._store_view(view_id, view, user_id=self._view_users.get(view_id))}

    def _views_publish(self, args: JSON) -> JSON:
        user_id = _required(args, "user_id")
        if user_id not in self.workspace.users:
            raise SlackApiFailure("user_not_found")
        view = _view_arg(args)
        if view.get("type") != "home":
            raise SlackApiFailure(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] must be home [json-pointer:/view/type]"]},
            )
        current = self._homes.get(user_id)
        if current and args.get("hash") and args["hash"] != current["hash"]:
            raise SlackApiFailure("hash_conflict")
        _check_view(view)
        view_id = current["id"] if current else self._new_view_id()
        stored = self._store_view(view_id, view, user_id=user_id)
        self._homes[user_id] = stored
        return {"view": stored}

    def _new_view_id(self) -> str:
        return f"V0{next(self._ids):08X}"

    def _view_id_by_external(self, external_id: object) -> str | None:
        if not external_id:
            return None
        return next((k for k, v in self._views.items() if v["external_id"] == external_id), None)

    def _store_view(self, view_id: str, view: JSON, *, user_id: str | None) -> JSON:
        previous = self._views.get(view_id)
        stored: JSON = {
            "id": view_id,
            "team_id": self.workspace.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{_short_hash(next(self._ids))}",
            "title": view.get("title"),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "app_id": self.workspace.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.workspace.team_id,
            "bot_id": self.workspace.bot_id,
        }
        self._views[view_id] = stored
        self._view_users[view_id] = user_id
        return stored

    # --- users, groups, conversations ----------------------------------------------------------

    def _users_info(self, args: JSON) -> JSON:
        user = self.workspace.users.get(_required(args, "user"))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": self._user_json(user)}

    def _users_lookup_by_email(self, args: JSON) -> JSON:
        email = _required(args, "email").lower()
        for user in self.workspace.users.values():
            if user.email and user.email.lower() == email and not user.is_bot:
                return {"user": self._user_json(user)}
        raise SlackApiFailure("users_not_found")

    def _user_json(self, user: FakeUser) -> JSON:
        return user.to_api(with_email="users:read.email" in self.workspace.scopes, now=self.clock())

    def _usergroups_list(self, args: JSON) -> JSON:
        include_users = _flag(args.get("include_users"))
        return {
            "usergroups": [
                g.to_api(include_users=include_users) for g in self.workspace.usergroups.values()
            ]
        }

    def _usergroups_users_list(self, args: JSON) -> JSON:
        group = self.workspace.usergroups.get(_required(args, "usergroup"))
        if group is None:
            raise SlackApiFailure("no_such_subteam")
        return {"users": list(group.users)}

    def _conversations_open(self, args: JSON) -> JSON:
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if len(users) != 1:
            raise SlackApiFailure("invalid_arguments" if not users else "not_supported")
        if users[0] not in self.workspace.users:
            raise SlackApiFailure("user_not_found")
        existed = ("D" + users[0][1:]) in self.workspace.channels
        channel = self._dm(users[0])
        return {"no_op": existed, "already_open": existed, "channel": {"id": channel.id}}

    def _conversations_info(self, args: JSON) -> JSON:
        channel = self.workspace.channels.get(_required(args, "channel"))
        bot = self.workspace.bot_user_id
        if channel is None or (channel.is_private and bot not in channel.members):
            raise SlackApiFailure("channel_not_found")
        if channel.is_im:
            self._require_scope("im:read")
        else:
            self._require_scope("groups:read" if channel.is_private else "channels:read")
        return {"channel": channel.to_api(viewer=bot)}


# --- argument handling and validation ----------------------------------------------------------


def _required(args: JSON, name: str) -> str:
    value = args.get(name)
    if value in (None, ""):
        raise SlackApiFailure(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
        )
    return str(value)


def _short_hash(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()[:8]


def _flag(value: object) -> bool:
    return value in (True, 1, "1", "true", "True")


def _message_content(args: JSON) -> tuple[str, list[JSON]]:
    text = args.get("text") or ""
    blocks = args.get("blocks") or []
    if not isinstance(blocks, list):
        raise SlackApiFailure("invalid_blocks_format")
    if not text and not blocks and not args.get("attachments"):
        raise SlackApiFailure("no_text")
    if len(str(text)) > 40000:
        raise SlackApiFailure("msg_too_long")
    problems = list(_block_problems(blocks, MESSAGE_BLOCKS_MAX, "/blocks"))
    if problems:
        raise SlackApiFailure("invalid_blocks", response_metadata={"messages": problems})
    return str(text), blocks


def _block_problems(blocks: list[Any], limit: int, pointer: str) -> Iterator[str]:
    if len(blocks) > limit:
        yield f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _KNOWN_BLOCKS:
            yield f"[ERROR] invalid block type [json-pointer:{pointer}/{i}/type]"
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen:
                yield f"[ERROR] duplicate block_id [json-pointer:{pointer}/{i}/block_id]"
            seen.add(block_id)


def _view_arg(args: JSON) -> JSON:
    view = args.get("view")
    if not isinstance(view, dict):
        raise SlackApiFailure(
            "invalid_arguments",
            response_metadata={"messages": ["[ERROR] missing required field: view"]},
        )
    return view


def _check_view(view: JSON) -> None:
    """The checks Slack makes on views.open/update/publish that cost nothing to repeat here."""
    problems: list[str] = []
    kind = view.get("type")
    if kind not in ("modal", "home"):
        problems.append("[ERROR] must be one of modal, home [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks and kind == "modal":
        problems.append("[ERROR] missing required field: blocks [json-pointer:/view/blocks]")
        blocks = []
    problems.extend(_block_problems(blocks, VIEW_BLOCKS_MAX, "/view/blocks"))
    for key, limit in (("title", 24), ("submit", 24), ("close", 24)):
        obj = view.get(key)
        if obj is None:
            if key == "title" and kind == "modal":
                problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
            continue
        if not isinstance(obj, dict) or obj.get("type") != "plain_text":
            problems.append(f"[ERROR] must be plain_text [json-pointer:/view/{key}]")
        elif len(str(obj.get("text", ""))) > limit:
            problems.append(
                f"[ERROR] must be less than {limit + 1} characters [json-pointer:/view/{key}/text]"
            )
    if len(str(view.get("private_metadata", ""))) > 3000:
        problems.append(
            "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
        )
    if len(str(view.get("callback_id", ""))) > 255:
        problems.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if kind == "modal" and has_input and not view.get("submit"):
        problems.append("[ERROR] must provide a submit property when using input blocks")
    if problems:
        raise SlackApiFailure("invalid_arguments", response_metadata={"messages": problems})


def _decode(args: JSON) -> JSON:
    """Form-encoded calls carry blocks/view as JSON strings; decode them like Slack does."""
    for key in ("blocks", "view", "attachments", "metadata"):
        value = args.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                args[key] = json.loads(value)
            except ValueError as exc:
                raise SlackApiFailure(f"invalid_{key}_format") from exc
    return args


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Keep test output quiet."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def _dispatch(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if parts.path.startswith("/webhook/"):
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {"raw": raw}
            fake.handle_webhook(parts.path, body)
            self._reply(200, {}, b"ok", "text/html")
            return
        if not parts.path.startswith("/api/"):
            self._reply(404, {}, b"not found", "text/plain")
            return
        method = parts.path.removeprefix("/api/")
        args: JSON = dict(parse_qsl(parts.query))
        content_type = self.headers.get("Content-Type") or ""
        try:
            if "json" in content_type and raw:
                args.update(json.loads(raw))
            elif raw:
                args.update(parse_qsl(raw, keep_blank_values=True))
            _decode(args)
        except SlackApiFailure as failure:
            self._send_json(200, {}, {"ok": False, "error": failure.error})
            return
        except ValueError:
            self._send_json(200, {}, {"ok": False, "error": "invalid_json"})
            return
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        token = token or args.pop("token", None)
        status, headers, body = fake.handle_api(method, args, token)
        self._send_json(status, headers, body)

    def _send_json(self, status: int, headers: JSON, body: JSON) -> None:
        self._reply(status, headers, json.dumps(body).encode(), "application/json; charset=utf-8")

    def _reply(self, status: int, headers: JSON, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(payload)

"""Doctor's Slack checks: tokens, scopes, Socket Mode, approvals channels."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.app.doctor.report import Finding, failed, not_checked, passed
from bot.app.policy_file import PolicyFile
from bot.app.settings import Settings

# The bot scopes manifest.yml asks for (a test keeps the two the same). The manifest is not
# installed with the package, so doctor carries its own copy.
BOT_SCOPES = (
    "commands",
    "chat:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)


_BOT_TOKEN_FIXES = {
    "invalid_auth": "SLACK_BOT_TOKEN is wrong or was revoked: copy the Bot User OAuth Token "
    "(xoxb-…) from the app's OAuth & Permissions page (reinstall the app if it is gone)",
    "token_revoked": "the bot token was revoked: reinstall the app and copy the new Bot User "
    "OAuth Token (xoxb-…) into SLACK_BOT_TOKEN",
    "account_inactive": "the app was uninstalled from this workspace: reinstall it and copy the "
    "new Bot User OAuth Token into SLACK_BOT_TOKEN",
    "not_allowed_token_type": "SLACK_BOT_TOKEN holds another kind of token: use the Bot User "
    "OAuth Token (xoxb-…), and put the app-level token (xapp-…) in SLACK_APP_TOKEN",
}
_APP_TOKEN_FIXES = {
    "invalid_auth": "SLACK_APP_TOKEN is wrong or was revoked: create an app-level token with "
    "the connections:write scope (Basic Information → App-Level Tokens) and set it",
    "not_allowed_token_type": "SLACK_APP_TOKEN is not an app-level token: it starts with xapp- "
    "and is made under Basic Information → App-Level Tokens (scope connections:write)",
    "missing_scope": "the app-level token lacks connections:write: create one with that scope "
    "under Basic Information → App-Level Tokens",
}


@dataclass(frozen=True)
class SlackIdentity:
    team: str
    bot_name: str
    scopes: frozenset[str] | None  # None: Slack did not say


def check_slack(settings: Settings, policy: PolicyFile | None) -> Iterator[Finding]:
    if settings.slack_app_token is not None:
        yield socket_mode(slack_client(settings, settings.slack_app_token))
    if settings.slack_bot_token is None:
        yield not_checked("Slack bot token, scopes and channels", "set SLACK_BOT_TOKEN first")
        return
    web = slack_client(settings, settings.slack_bot_token)
    identity, finding = slack_identity(web, settings)
    yield finding
    if identity is None:
        yield not_checked("Slack scopes and approvals channels", "needs a working bot token")
        return
    yield slack_scopes(identity)
    channels = approvals_channels(settings, policy)
    if not channels:
        yield passed("Slack: no approvals channel configured; approver cards go out by DM")
    for channel, sources in channels.items():
        yield approvals_channel(web, channel, sources, identity)


def slack_client(settings: Settings, token: SecretStr) -> WebClient:
    """Like the bot's client, without retries: doctor reports a failure rather than waiting.
    The same CA rules as the bot's (``bot.app.runtime.build_web_client``)."""
    context = ssl.create_default_context(
        cafile=str(settings.ca_bundle) if settings.ca_bundle else None
    )
    return WebClient(
        token=token.get_secret_value(),
        base_url=settings.slack_api_url,
        ssl=context,
        timeout=int(settings.http_timeout.total_seconds()) or 10,
    )


def slack_identity(web: WebClient, settings: Settings) -> tuple[SlackIdentity | None, Finding]:
    try:
        response = web.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        fix = _BOT_TOKEN_FIXES.get(error, "check SLACK_BOT_TOKEN")
        return None, failed(f"Slack: auth.test refused SLACK_BOT_TOKEN ({error})", fix)
    except (URLError, OSError) as exc:
        return None, _unreachable(settings, exc)
    header = _header(response.headers, "x-oauth-scopes")
    scopes = None if header is None else frozenset(s.strip() for s in header.split(",") if s)
    identity = SlackIdentity(
        team=str(response.get("team") or response.get("team_id")),
        bot_name=str(response.get("user") or "pimbot"),
        scopes=scopes,
    )
    found = f"workspace {identity.team} ({response.get('team_id')}), bot user @{identity.bot_name}"
    return identity, passed(f"Slack: SLACK_BOT_TOKEN is valid: {found}")


def slack_scopes(identity: SlackIdentity) -> Finding:
    if identity.scopes is None:
        return failed(
            "Slack: auth.test did not say which scopes the bot token has (no x-oauth-scopes)",
            "check the bot token scopes under OAuth & Permissions against manifest.yml",
        )
    missing = [scope for scope in BOT_SCOPES if scope not in identity.scopes]
    if missing:
        return failed(
            f"Slack: the bot token lacks the scope(s) {', '.join(missing)}",
            "add them (update the app from manifest.yml, or OAuth & Permissions → Scopes), "
            "then reinstall the app to the workspace and update SLACK_BOT_TOKEN if it changed",
        )
    return passed(f"Slack: the bot token has every scope manifest.yml asks for ({len(BOT_SCOPES)})")


def socket_mode(app_level: WebClient) -> Finding:
    """apps.connections.open only hands out a WebSocket URL; nothing connects to it."""
    try:
        app_level.apps_connections_open(app_token=str(app_level.token))
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        fix = _APP_TOKEN_FIXES.get(
            error, "check SLACK_APP_TOKEN, and that Socket Mode is enabled in the app's settings"
        )
        return failed(f"Slack: apps.connections.open refused SLACK_APP_TOKEN ({error})", fix)
    except (URLError, OSError) as exc:
        return failed(
            f"Slack: cannot open a Socket Mode connection ({type(exc).__name__})",
            "check the network path to Slack",
        )
    return passed("Slack: SLACK_APP_TOKEN can open Socket Mode connections")


def approvals_channels(settings: Settings, policy: PolicyFile | None) -> dict[str, list[str]]:
    """Channel id → where it is configured, in the order an operator would look."""
    channels: dict[str, list[str]] = {}
    if settings.approvals_channel:
        channels.setdefault(settings.approvals_channel, []).append("PIMBOT_APPROVALS_CHANNEL")
    if policy is not None:
        if policy.defaults.approvals_channel:
            channels.setdefault(policy.defaults.approvals_channel, []).append("policy defaults")
        for role, rules in sorted(policy.roles.items()):
            channel = rules.approvals_channel
            if channel and channel != policy.defaults.approvals_channel:
                channels.setdefault(channel, []).append(f"policy role {role!r}")
    # Break-glass alerts go to the security channels: the bot must be able to post there too.
    if settings.security_channel:
        channels.setdefault(settings.security_channel, []).append("PIMBOT_SECURITY_CHANNEL")
    if policy is not None:
        for role, rules in [("defaults", policy.defaults), *sorted(policy.roles.items())]:
            channel = rules.security_channel
            inherited = role != "defaults" and channel == policy.defaults.security_channel
            if channel and channel != settings.security_channel and not inherited:
                where = "policy defaults" if role == "defaults" else f"policy role {role!r}"
                sources = channels.setdefault(channel, [])
                if f"{where} security_channel" not in sources:
                    sources.append(f"{where} security_channel")
    return channels


def approvals_channel(
    web: WebClient, channel: str, sources: list[str], identity: SlackIdentity
) -> Finding:
    where = f"approvals channel {channel} (from {', '.join(sources)})"
    try:
        info: Mapping[str, Any] = web.conversations_info(channel=channel)["channel"]
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
        if error == "channel_not_found":
            return failed(
                f"Slack: {where} not found",
                "check the channel ID (channel details → About); for a private channel, "
                f"invite @{identity.bot_name} first",
            )
        if error == "missing_scope":
            needed = exc.response.get("needed") or "channels:read/groups:read"
            return failed(
                f"Slack: cannot look up {where} (missing_scope {needed})",
                "add the scope from manifest.yml and reinstall the app",
            )
        return failed(f"Slack: cannot look up {where} ({error})", "check the channel ID")
    except (URLError, OSError) as exc:
        return failed(
            f"Slack: cannot look up {where} ({type(exc).__name__})",
            "check the network path to Slack",
        )
    name = f"#{info.get('name')} ({channel})"
    if info.get("is_ext_shared") or info.get("is_pending_ext_shared"):
        return failed(
            f"Slack: approvals channel {name} is shared with another organisation (Slack Connect)",
            "request details (who, which role, why, the ticket) would be visible outside "
            f"{identity.team}; use a channel only your organisation can see",
        )
    if info.get("is_archived"):
        return failed(
            f"Slack: approvals channel {name} is archived",
            "unarchive it or configure another channel",
        )
    if not info.get("is_member"):
        return failed(
            f"Slack: @{identity.bot_name} is not a member of approvals channel {name}",
            f"invite it: type /invite @{identity.bot_name} in #{info.get('name')}",
        )
    return passed(
        f"Slack: approvals channel {name}: @{identity.bot_name} is a member, "
        f"not shared outside {identity.team}"
    )


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _unreachable(settings: Settings, exc: BaseException) -> Finding:
    return failed(
        f"Slack: cannot reach {settings.slack_api_url} ({type(exc).__name__})",
        "check PIMBOT_SLACK_API_URL, HTTPS_PROXY/NO_PROXY and PIMBOT_CA_BUNDLE",
    )

"""``pimbot doctor``: check a real configuration against Slack, Entra ID and Graph.

Every check becomes one ``Finding``: ``✓`` what was found, or ``✗`` what is wrong and how to
fix it. Checks that need something a failed check could not provide (a valid token, say) are
reported as not checked rather than failing a second time. Nothing here changes anything:
the database is not migrated, and the one Graph write is a validation-only request that could
not act on anybody even if Graph ignored the flag (see ``WRITE_PROBE``).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.error import URLError

import httpx
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.graph import (
    BearerAuth,
    MsalHttpClient,
    RetryPolicy,
    TokenProvider,
    build_http_client,
    build_token_provider,
)
from bot.adapters.graph.client import USER_FIELDS
from bot.adapters.graph.errors import GraphError
from bot.adapters.graph.odata import literal, query
from bot.adapters.graph.parsing import directory_user
from bot.adapters.graph.transport import GraphTransport
from bot.app.policy_file import PolicyFile, load_policy_file
from bot.app.settings import Settings, redact_url
from bot.domain.errors import ConfigurationError, PimAuthError, PimError
from bot.domain.ports import IdentityLink
from bot.domain.rules import ApproverKind, ApproverLink
from storage.database import current_revision, head_revision, make_engine, make_session_factory
from storage.unit_of_work import SqlUnitOfWork

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
ROLE_ADMIN = "Privileged Role Administrator"
# Built-in role template ids are the same in every tenant.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
SECURITY_READER = "5d6b6bb7-de71-4623-b4af-96380a352509"
NOBODY = "00000000-0000-0000-0000-000000000000"
ELIGIBILITY = "/roleManagement/directory/roleEligibilityScheduleInstances"
ASSIGNMENTS = "/roleManagement/directory/roleAssignmentScheduleInstances"
REQUESTS = "/roleManagement/directory/roleAssignmentScheduleRequests"
ROLE_DEFINITIONS = "/roleManagement/directory/roleDefinitions"
POLICY_ASSIGNMENTS = "/policies/roleManagementPolicyAssignments"
# Whether the app may write is only provable by writing. This request is refused by PIM's
# validation whatever happens: it is validation-only, removes rather than grants, targets the
# least powerful built-in role, and names no principal (the nil GUID). Graph checks the caller's
# permissions first, so a 403 means "may not write" and a 400 from PIM means "may write".
WRITE_PROBE = {
    "action": "adminRemove",
    "principalId": NOBODY,
    "roleDefinitionId": SECURITY_READER,
    "directoryScopeId": "/",
    "justification": "pimbot doctor: permission check (validation only, no principal)",
    "isValidationOnly": True,
}


class Status(Enum):
    PASSED = "✓"
    FAILED = "✗"
    NOT_CHECKED = "–"


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status.value} {self.text}" + (f" — {self.fix}" if self.fix else "")


def passed(text: str) -> Finding:
    return Finding(Status.PASSED, text)


def failed(text: str, fix: str) -> Finding:
    return Finding(Status.FAILED, text, fix)


def not_checked(text: str, reason: str) -> Finding:
    return Finding(Status.NOT_CHECKED, f"{text}: not checked", reason)


def summary(findings: Iterable[Finding]) -> tuple[bool, str]:
    """(all passed, the closing line)."""
    counts = {status: 0 for status in Status}
    for finding in findings:
        counts[finding.status] += 1
    total = sum(counts.values())
    if counts[Status.PASSED] == total:
        return True, f"pimbot doctor: all {total} checks passed."
    parts = [f"{counts[Status.FAILED]} of {total} checks failed"]
    if counts[Status.NOT_CHECKED]:
        parts.append(f"{counts[Status.NOT_CHECKED]} could not run until those are fixed")
    return False, "pimbot doctor: " + ", ".join(parts) + ". Fix the ✗ lines above."


def diagnose(settings: Settings) -> Iterator[Finding]:
    """Every check, in order; independent checks run whatever the others found."""
    yield from check_required_settings(settings)
    policy, finding = check_policy_file(settings)
    yield finding
    if policy is not None:
        yield from check_break_glass(policy)
    yield check_database(settings)
    yield from check_slack(settings, policy)
    yield from check_microsoft(settings, policy)


# --- settings, policy file, database -----------------------------------------------------------


def check_required_settings(settings: Settings) -> Iterator[Finding]:
    problems = settings.problems_for_run()
    for problem in problems:
        yield failed(problem.removeprefix("environment: "), "set it in pimbot's environment")
    if not problems:
        mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
        yield passed(f"settings: everything `pimbot run` needs is set ({mode})")


def check_policy_file(settings: Settings) -> tuple[PolicyFile | None, Finding]:
    try:
        policy = load_policy_file(settings.policy_file)
    except ConfigurationError as exc:
        fix = "correct it (policy.example.yaml explains every key)"
        return None, failed("policy file: " + "; ".join(exc.problems), fix)
    if policy.source is None:
        return policy, passed("policy file: none set (pimbot follows PIM for every role)")
    named = ", ".join(policy.named_roles()) or "none"
    return policy, passed(f"policy file {policy.source}: valid; roles named: {named}")


def check_break_glass(policy: PolicyFile) -> Iterator[Finding]:
    """Which roles allow break glass, and on which it may bypass PIM's own approval.

    Informational (a ✓ line): an operator should see these every time doctor runs.
    """
    allowed = {
        role: rules for role, rules in sorted(policy.roles.items()) if rules.break_glass_requesters
    }
    if policy.defaults.break_glass_requesters:
        allowed = {"(defaults: every role not named)": policy.defaults, **allowed}
    if not allowed:
        return
    listed = "; ".join(
        f"{role} by {', '.join(rules.break_glass_requesters)}" for role, rules in allowed.items()
    )
    bypass = [role for role, rules in allowed.items() if rules.break_glass_overrides_pim_approval]
    yield passed(
        f"break glass allowed on: {listed}. It may bypass PIM's own approval on: "
        + (", ".join(bypass) if bypass else "no role")
    )


def check_database(settings: Settings) -> Finding:
    url = settings.effective_database_url()
    shown = redact_url(url)
    default = settings.database_url is None
    if default and not (settings.data_dir / "pimbot.db").exists():
        # Do not create it here: `pimbot run` creates and migrates the default SQLite file.
        if settings.data_dir.is_dir() and os.access(settings.data_dir, os.W_OK):
            return passed(f"database {shown}: not created yet; `pimbot run` creates it")
        return failed(
            f"database {shown}: {settings.data_dir} is not a writable directory",
            "point PIMBOT_DATA_DIR at a directory pimbot's user can write to",
        )
    try:
        engine = make_engine(url)
    except SQLAlchemyError as exc:  # an unknown scheme or driver
        return failed(
            f"database {shown}: not a database URL pimbot can use ({type(exc).__name__})",
            "PIMBOT_DATABASE_URL takes postgresql://user:password@host:5432/database",
        )
    try:
        current, head = current_revision(engine), head_revision(engine)
    except SQLAlchemyError as exc:
        return failed(
            f"database {shown}: cannot connect ({type(exc.__cause__ or exc).__name__})",
            "check PIMBOT_DATABASE_URL (host, port, database, user, password) and that the "
            "server accepts connections from here",
        )
    finally:
        engine.dispose()
    if current == head:
        return passed(f"database {shown}: reachable, schema at {current}")
    if default:
        return passed(f"database {shown}: schema at {current}; `pimbot run` migrates it to {head}")
    return failed(
        f"database {shown}: schema at {current or 'nothing (empty)'}, pimbot needs {head}",
        "run `pimbot db upgrade` once with this PIMBOT_DATABASE_URL, then start pimbot",
    )


# --- Slack ---------------------------------------------------------------------------------------

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


# --- Entra ID and Graph ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One Graph call that proves a permission; ``least`` is the least privileged that allows
    it, ``broader`` the usual alternative (graph-pim.md §3)."""

    what: str
    method: str
    path: str
    least: str
    broader: str
    body: Mapping[str, Any] | None = None
    # A 4xx other than 401/403 proves authorization passed (the probe names nothing real).
    refusal_is_pass: bool = False


PROBES = (
    Probe(
        "read role eligibility (roleEligibilityScheduleInstances)",
        "GET",
        f"{ELIGIBILITY}?$top=1",
        "RoleEligibilitySchedule.Read.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "read active role assignments (roleAssignmentScheduleInstances)",
        "GET",
        f"{ASSIGNMENTS}?$top=1",
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "read role settings (roleManagementPolicyAssignments)",
        "GET",
        POLICY_ASSIGNMENTS
        + "?"
        + query(
            {
                "$filter": "scopeId eq '/' and scopeType eq 'DirectoryRole' and "
                f"roleDefinitionId eq {literal(GLOBAL_ADMINISTRATOR)}"
            }
        ),
        "RoleManagementPolicy.Read.Directory",
        "RoleManagement.Read.Directory",
    ),
    Probe(
        "create role assignment schedule requests",
        "POST",
        REQUESTS,
        "RoleAssignmentSchedule.ReadWrite.Directory",
        "RoleManagement.ReadWrite.Directory",
        body=WRITE_PROBE,
        refusal_is_pass=True,
    ),
    Probe("read users", "GET", "/users?$top=1&$select=id", "User.Read.All", "Directory.Read.All"),
    Probe(
        "read groups and their members",
        "GET",
        f"/groups/{NOBODY}?$select=id",
        "GroupMember.Read.All",
        "Directory.Read.All",
        refusal_is_pass=True,
    ),
)


def check_microsoft(settings: Settings, policy: PolicyFile | None) -> Iterator[Finding]:
    if settings.problems_for_graph():
        yield not_checked("Entra ID and Microsoft Graph", "set the AZURE_* settings first")
        return
    http = build_http_client(settings)
    try:
        provider = build_token_provider(settings, MsalHttpClient(http))
        token, finding = entra_token(provider, settings)
        yield finding
        if token is None:
            yield not_checked(
                "Graph permissions, policy roles and approver groups", "needs a token from Entra ID"
            )
            return
        graph = GraphTransport(
            http, auth=BearerAuth(provider), policy=RetryPolicy(attempts=2, max_total_wait=5)
        )
        granted = granted_permissions(token)
        for probe in PROBES:
            yield check_permission(graph, probe, granted)
        if policy is not None:
            yield from check_policy_roles(graph, policy)
            yield from check_approver_groups(graph, policy)
            yield from check_approver_links(graph, policy, settings)
    finally:
        http.close()


def entra_token(provider: TokenProvider, settings: Settings) -> tuple[str | None, Finding]:
    app = f"app {settings.azure_client_id} in tenant {settings.azure_tenant_id}"
    try:
        token = provider.token()
    except PimAuthError as exc:
        return None, failed(
            f"Entra ID: no token for {app} ({exc.code or 'refused'})", exc.user_message
        )
    except PimError as exc:
        return None, failed(f"Entra ID: no token for {app}", exc.user_message)
    granted = granted_permissions(token)
    listed = (
        "the token does not list its permissions"
        if granted is None
        else "application permissions: " + (", ".join(granted) or "none")
    )
    return token, passed(f"Entra ID: token issued for {app} ({listed})")


def granted_permissions(token: str) -> tuple[str, ...] | None:
    """The ``roles`` claim of an app-only token (its consented application permissions).

    Read only to explain a 403, never to decide anything: the token is not verified here, and
    Microsoft may make its tokens opaque at any time, hence None when it cannot be read.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles") or []
    return tuple(sorted(str(r) for r in roles)) if isinstance(roles, list) else None


def check_permission(
    graph: GraphTransport, probe: Probe, granted: tuple[str, ...] | None
) -> Finding:
    try:
        response = graph.request(probe.method, probe.path, json=probe.body)
    except PimError as exc:
        return failed(f"Graph: cannot check whether pimbot may {probe.what}", exc.user_message)
    error = GraphError(response)
    status = response.status_code
    if response.is_success or (probe.refusal_is_pass and status in (400, 404)):
        refused = f" (a probe naming nothing real got {status} {error.code}, as intended)"
        answered = "" if response.is_success else refused
        return passed(f"Graph: pimbot may {probe.what}{answered}")
    if status == 403:
        return failed(
            f"Graph: pimbot may not {probe.what} (403 {error.code or 'Forbidden'})",
            _grant_fix(probe, granted),
        )
    if status == 401:
        return failed(
            f"Graph: did not accept pimbot's token (401 {error.code or ''})".rstrip(),
            "AZURE_AUTHORITY_HOST and PIMBOT_GRAPH_URL must belong to the same cloud",
        )
    return failed(
        f"Graph: unexpected answer {status} {error.code or ''} to {probe.what}".rstrip(),
        "try again in a few minutes; if it persists check PIMBOT_GRAPH_URL",
    )


def _grant_fix(probe: Probe, granted: tuple[str, ...] | None) -> str:
    fix = (
        f"add the Microsoft Graph application permission {probe.least} (or {probe.broader}) "
        "to the app registration and grant admin consent"
    )
    if probe.body is not None:
        fix += f"; admin actions also need the app to hold the {ROLE_ADMIN} directory role"
    if granted is not None:
        fix += f" (the token grants: {', '.join(granted) or 'nothing'})"
    return fix


# --- what the policy file names --------------------------------------------------------------


class _Forbidden(Exception):
    pass


def check_policy_roles(graph: GraphTransport, policy: PolicyFile) -> Iterator[Finding]:
    named = policy.named_roles()
    if not named:
        return
    try:
        known, source = _known_roles(graph)
    except _Forbidden:
        yield failed(
            "policy roles: Graph refused to list role definitions and eligibilities",
            "grant RoleEligibilitySchedule.Read.Directory (or RoleManagement.Read.Directory) "
            "with admin consent",
        )
        return
    except PimError as exc:
        yield failed("policy roles: cannot look them up in Entra ID", exc.user_message)
        return
    found = []
    for key in named:
        display = known.get(key)
        if display is not None:
            found.append(display)
            continue
        names = sorted(set(known.values()))
        close = difflib.get_close_matches(key, [n.casefold() for n in names], n=1)
        hint = f"did you mean {_original(close[0], names)!r}? " if close else ""
        yield failed(
            f"policy file names role {key!r}, which is not among the {source} in Entra ID",
            f"{hint}fix roles.{key} in {policy.source}: use the role's display name or its "
            "role definition ID",
        )
    if found:
        yield passed(f"policy roles exist in Entra ID: {', '.join(found)}")


def _known_roles(graph: GraphTransport) -> tuple[dict[str, str], str]:
    """Lower-cased id and case-folded name → display name, and where they came from.

    Listing role definitions needs RoleManagement.Read.Directory, which the least privileged
    set of permissions lacks; then the roles anyone is eligible for are what can be requested.
    """
    roles: dict[str, str] = {}
    try:
        for item in _pages(graph, f"{ROLE_DEFINITIONS}?$select=id,displayName,templateId"):
            _remember(roles, item)
        return roles, "role definitions"
    except _Forbidden:
        pass
    for item in _pages(graph, f"{ELIGIBILITY}?$expand=roleDefinition"):
        definition = item.get("roleDefinition")
        if isinstance(definition, Mapping):
            _remember(roles, definition)
    return roles, "roles anyone is eligible for"


def _remember(roles: dict[str, str], item: Mapping[str, Any]) -> None:
    name = str(item.get("displayName") or "")
    for key in (item.get("id"), item.get("templateId")):
        if key:
            roles[str(key).lower()] = name
    if name:
        roles[name.casefold()] = name


def _original(folded: str, names: list[str]) -> str:
    return next((n for n in names if n.casefold() == folded), folded)


def check_approver_groups(graph: GraphTransport, policy: PolicyFile) -> Iterator[Finding]:
    groups: dict[str, list[str]] = {}
    for role, rules in [("defaults", policy.defaults), *sorted(policy.roles.items())]:
        for spec in rules.approvers:
            if spec.kind is ApproverKind.ENTRA_GROUP and role not in groups.get(spec.value, []):
                groups.setdefault(spec.value, []).append(role)
    for group_id, roles in groups.items():
        yield _approver_group(graph, group_id, roles, policy)


def check_approver_links(
    graph: GraphTransport, policy: PolicyFile, settings: Settings
) -> Iterator[Finding]:
    """Approvers the policy names in Entra (groups, users) whose Slack account has no link
    made by an operator or by sign-in: they would be linked by their Slack email, which a
    Slack admin can set on any account. Where approver_link requires better, they cannot
    approve at all until linked."""
    roles_of: dict[str, set[str]] = {}
    strict: set[str] = set()
    for role, rules in [("defaults", policy.defaults), *sorted(policy.roles.items())]:
        for spec in rules.approvers:
            if spec.kind in (ApproverKind.ENTRA_GROUP, ApproverKind.ENTRA_USER):
                roles_of.setdefault(f"{spec.kind.value}:{spec.value}", set()).add(role)
                if rules.approver_link is ApproverLink.OPERATOR_OR_SIGN_IN:
                    strict.add(role)
    if not roles_of:
        return
    people: dict[str, tuple[str, set[str]]] = {}
    try:
        for key, roles in roles_of.items():
            kind, _, object_id = key.partition(":")
            path = (
                f"/groups/{object_id}/transitiveMembers?$select={USER_FIELDS}"
                if kind == ApproverKind.ENTRA_GROUP.value
                else f"/users/{object_id}?$select={USER_FIELDS}"
            )
            found = (
                list(_pages(graph, path))
                if kind == ApproverKind.ENTRA_GROUP.value
                else [_json(graph.request("GET", path))]
            )
            for obj in found:
                user = directory_user(obj)
                if user is not None and user.account_enabled:
                    name = f"{user.display_name} ({user.user_principal_name or user.id})"
                    people.setdefault(user.id, (name, set()))[1].update(roles)
    except (PimError, _Forbidden):
        yield not_checked("approver links", "cannot list the approvers in Entra ID")
        return
    links: dict[str, IdentityLink | None] = dict.fromkeys(people)
    fresh = settings.database_url is None and not (settings.data_dir / "pimbot.db").exists()
    try:
        if not fresh:  # no database yet: nobody is linked (and doctor creates nothing)
            engine = make_engine(settings.effective_database_url())
            try:
                with SqlUnitOfWork(make_session_factory(engine)) as uow:
                    links = {entra_id: uow.identities.for_entra(entra_id) for entra_id in people}
            finally:
                engine.dispose()
    except SQLAlchemyError:
        yield not_checked("approver links", "needs the database (see the database line)")
        return
    weak = sorted(
        (name, roles)
        for entra_id, (name, roles) in people.items()
        if (link := links[entra_id]) is None or link.source == "email"
    )
    if not weak:
        yield passed(
            "approver links: every approver the policy names in Entra is linked by "
            "an operator or by sign-in"
        )
        return
    listed = "; ".join(f"{name} for {', '.join(sorted(roles))}" for name, roles in weak)
    text = f"approver links: linked by Slack email only (or not yet): {listed}"
    fix = "link each with `pimbot link <team> <slack user id> <entra object id>`"
    if any(roles & strict for _, roles in weak):
        yield failed(text + " — approver_link: operator_or_sign_in refuses them", fix)
    else:
        yield passed(text + f" ({fix}, or set approver_link: operator_or_sign_in)")


def _approver_group(
    graph: GraphTransport, group_id: str, roles: list[str], policy: PolicyFile
) -> Finding:
    where = f"approver group {group_id} (for {', '.join(roles)})"
    try:
        response = graph.request("GET", f"/groups/{group_id}?$select=id,displayName")
    except PimError as exc:
        return failed(f"Graph: cannot look up {where}", exc.user_message)
    if response.status_code == 404:
        return failed(
            f"policy file names {where}, which Entra ID does not have",
            f"fix entra_group in {policy.source}: use the group's Object ID (Entra ID → Groups)",
        )
    if response.status_code == 403:
        return failed(
            f"Graph: pimbot may not read {where}", "grant GroupMember.Read.All with admin consent"
        )
    if not response.is_success:
        return failed(
            f"Graph: cannot look up {where} ({response.status_code})", "try again in a few minutes"
        )
    name = _json(response).get("displayName") or group_id
    return passed(f"policy approver group {name!r} ({group_id}) exists in Entra ID")


def _pages(graph: GraphTransport, path: str) -> Iterator[Mapping[str, Any]]:
    url: str | None = path
    for _ in range(100):
        if url is None:
            return
        response = graph.request("GET", url)
        if response.status_code == 403:
            raise _Forbidden(path)
        if not response.is_success:
            raise PimError(f"Graph answered {response.status_code} to {path.split('?')[0]}")
        page = _json(response)
        values = page.get("value")
        yield from (v for v in values if isinstance(v, Mapping)) if isinstance(values, list) else ()
        next_link = page.get("@odata.nextLink")
        url = next_link if isinstance(next_link, str) else None


def _json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}

"""The emulated identity platform's user side: /authorize, the sign-in steps, codes and grants.

What a person does in the browser (username + password, the MFA one-time code, the
authentication-context step) ends in a ``SignInGrant``: who signed in, how (``amr``), which
authentication contexts were satisfied (``acrs``) and the scopes granted. Authorization codes,
device codes and refresh tokens all point at one. The token endpoint (``token.py``) redeems them.

Codes and device codes expire on the emulator clock (tests move it with ``advance_clock``);
access-token lifetimes stay on the real clock, see ``token.py``.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from stand_ins.graph_emulator.clock import EmulatorClock
from stand_ins.graph_emulator.tenant import App, Tenant, User

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
CODE_LIFETIME = timedelta(minutes=10)  # Entra: "Authorization codes are short lived ... 10 min"
SIGN_IN_FLOW_LIFETIME = timedelta(minutes=30)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Entra's user codes are short, upper-case and avoid look-alike characters.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class AuthorizeError(Exception):
    """An /authorize failure sent back to the app's redirect URI as error + error_description."""

    def __init__(self, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.error, self.code, self.description = error, code, description


class AuthorizeErrorPage(Exception):
    """An /authorize failure Entra shows on its own page: no redirect to an unchecked URI."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.code, self.description = code, description


# --- claims requests ---------------------------------------------------------------------------


def parse_claims(raw: str | None) -> dict[str, Any]:
    """The ``claims`` request parameter (JSON); ValueError when it is not a JSON object."""
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("claims must be a JSON object")
    return value


def _claim_values(claims: dict[str, Any], token: str, name: str) -> tuple[str, ...]:
    request = (claims.get(token) or {}).get(name)
    if not isinstance(request, dict):
        return ()
    values = request.get("values", [])
    if "value" in request:
        values = [request["value"], *values]
    return tuple(str(v) for v in values if isinstance(v, str))


def requested_acrs(claims: dict[str, Any]) -> tuple[str, ...]:
    """Authentication contexts asked for: ``{"access_token":{"acrs":{"value":"c1",...}}}``."""
    return _claim_values(claims, "access_token", "acrs")


def requests_mfa(claims: dict[str, Any]) -> bool:
    """``{"access_token":{"amr":{"values":["mfa"]}}}`` (or the id_token form) asks for MFA."""
    return any(
        "mfa" in _claim_values(claims, token, "amr") for token in ("access_token", "id_token")
    )


# --- scopes ------------------------------------------------------------------------------------


def resolve_scopes(scope: str, app: App) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Graph scopes granted, OIDC scopes asked for) of a delegated ``scope`` parameter.

    ``https://graph.microsoft.com/.default`` grants every consented delegated permission; a
    named scope (``https://graph.microsoft.com/User.Read`` or bare ``User.Read``, which Entra
    reads as Graph) must be one of them: the tenant consented for its users in advance, so the
    emulator has no consent page.
    """
    graph: list[str] = []
    oidc: list[str] = []
    for item in scope.split():
        if item.lower() in OIDC_SCOPES:
            oidc.append(item.lower())
            continue
        resource, _, name = item.rpartition("/")
        if resource and resource not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            raise AuthorizeError(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant.",
            )
        if name == ".default":
            graph += app.delegated_permissions
            continue
        consented = {p.lower(): p for p in app.delegated_permissions}
        if name.lower() not in consented:
            # Entra would show a consent prompt; the emulator models a tenant where only
            # admin-consented permissions exist (Microsoft's answer text for prompt=none).
            raise AuthorizeError(
                "consent_required",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' named '{app.display_name}'. Send an interactive "
                f"authorization request for this user and resource. (scope {name})",
            )
        graph.append(consented[name.lower()])
    return tuple(dict.fromkeys(graph)), tuple(dict.fromkeys(oidc))


def granted_scope_text(graph_scopes: tuple[str, ...], oidc_scopes: tuple[str, ...]) -> str:
    """The token response's ``scope``: Graph scopes without the resource prefix (as Entra lists
    them), then the OIDC ones; ``offline_access`` shows as the refresh token, not in ``scope``
    (Microsoft's examples: "User.Read profile openid email")."""
    return " ".join([*graph_scopes, *(s for s in oidc_scopes if s != "offline_access")])


# --- redirect URIs -----------------------------------------------------------------------------


def redirect_uri_registered(requested: str, registered: tuple[str, ...]) -> bool:
    """Exact match, except that Entra ignores the port of a loopback redirect URI (127.0.0.1,
    localhost, [::1]): native and local apps pick a free port at run time. Only loopback hosts
    get that; any other host must match with its port."""
    if requested in registered:
        return True
    try:
        asked = urlsplit(requested)
        asked_port = asked.port  # ValueError on a bad port
    except ValueError:
        return False
    del asked_port
    if asked.hostname not in _LOOPBACK_HOSTS:
        return False
    for uri in registered:
        known = urlsplit(uri)
        if (known.scheme, known.hostname, known.path or "/", known.query) == (
            asked.scheme,
            asked.hostname,
            asked.path or "/",
            asked.query,
        ):
            return True
    return False


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated /authorize request."""

    client_id: str
    redirect_uri: str
    graph_scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    claims: dict[str, Any]
    prompt: str | None
    login_hint: str | None
    response_mode: str = "query"  # or "form_post"

    def __repr__(self) -> str:  # the challenge and nonce stay out of logs
        return f"AuthorizeRequest(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"


@dataclass(frozen=True)
class SignInGrant:
    """What one completed sign-in entitles the app to."""

    user_id: str
    client_id: str
    graph_scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    amr: tuple[str, ...]
    acrs: tuple[str, ...]
    nonce: str | None = None
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class AuthorizationCode:
    grant: SignInGrant
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires: datetime
    redeemed: bool = False

    def __repr__(self) -> str:
        return f"AuthorizationCode(user={self.grant.user_id!r}, redeemed={self.redeemed})"


DeviceStatus = Literal["pending", "declined", "blocked", "approved", "redeemed"]


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    graph_scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    claims: dict[str, Any]
    expires: datetime
    status: DeviceStatus = "pending"
    grant: SignInGrant | None = None

    def __repr__(self) -> str:
        return f"DeviceCode(client_id={self.client_id!r}, status={self.status!r})"


Step = Literal["credentials", "mfa", "acrs", "done"]


@dataclass
class SignInFlow:
    """The server-side record of one sign-in between its pages, keyed by an opaque form field."""

    flow_id: str
    expires: datetime
    authorize: AuthorizeRequest | None = None  # set for the auth-code flow
    device: DeviceCode | None = None  # set for the device-code flow
    step: Step = "credentials"
    user_id: str | None = None
    amr: tuple[str, ...] = ()
    acrs: tuple[str, ...] = ()
    error: str | None = None  # the error text shown on the current page

    @property
    def claims(self) -> dict[str, Any]:
        if self.authorize is not None:
            return self.authorize.claims
        return self.device.claims if self.device is not None else {}

    def __repr__(self) -> str:
        return f"SignInFlow(step={self.step!r}, user_id={self.user_id!r})"


SignInKind = Literal["authorization_code", "device_code", "refresh_token"]


def kind_of(flow: SignInFlow) -> SignInKind:
    return "device_code" if flow.device is not None else "authorization_code"


@dataclass(frozen=True)
class SignInRecord:
    """One line of the emulator's sign-in log (like Entra's sign-in logs)."""

    at: datetime
    flow: SignInKind
    user_id: str | None
    user_principal_name: str | None
    client_id: str
    succeeded: bool
    error_code: int | None = None
    amr: tuple[str, ...] = ()
    acrs: tuple[str, ...] = ()


# --- the store ---------------------------------------------------------------------------------


class IdentityStore:
    """Sign-in flows, authorization codes, device codes, refresh tokens and the sign-in log."""

    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._flows: dict[str, SignInFlow] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._device_codes: dict[str, DeviceCode] = {}
        self._refresh_tokens: dict[str, SignInGrant] = {}
        self._log: list[SignInRecord] = []

    # sign-in flows

    def start_flow(
        self, *, authorize: AuthorizeRequest | None = None, device: DeviceCode | None = None
    ) -> SignInFlow:
        flow = SignInFlow(
            flow_id=secrets.token_urlsafe(24),
            expires=self.clock.now() + SIGN_IN_FLOW_LIFETIME,
            authorize=authorize,
            device=device,
        )
        with self._lock:
            self._flows[flow.flow_id] = flow
        return flow

    def flow(self, flow_id: str) -> SignInFlow | None:
        with self._lock:
            flow = self._flows.get(flow_id)
            if flow is None or flow.expires <= self.clock.now() or flow.step == "done":
                return None
            return flow

    def end_flow(self, flow: SignInFlow) -> None:
        with self._lock:
            flow.step = "done"
            self._flows.pop(flow.flow_id, None)

    # authorization codes

    def issue_code(self, flow: SignInFlow, grant: SignInGrant) -> str:
        request = flow.authorize
        assert request is not None
        code = "1.A" + secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = AuthorizationCode(
                grant,
                request.redirect_uri,
                request.code_challenge,
                request.code_challenge_method,
                self.clock.now() + CODE_LIFETIME,
            )
        return code

    def code(self, code: str) -> AuthorizationCode | None:
        with self._lock:
            return self._codes.get(code)

    # device codes

    def issue_device_code(
        self,
        client_id: str,
        graph_scopes: tuple[str, ...],
        oidc_scopes: tuple[str, ...],
        claims: dict[str, Any],
        lifetime: int,
    ) -> DeviceCode:
        device = DeviceCode(
            device_code="DAQABAAEAAA" + secrets.token_urlsafe(64),
            user_code="".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9)),
            client_id=client_id,
            graph_scopes=graph_scopes,
            oidc_scopes=oidc_scopes,
            claims=claims,
            expires=self.clock.now() + timedelta(seconds=lifetime),
        )
        with self._lock:
            self._device_codes[device.device_code] = device
        return device

    def device_by_user_code(self, user_code: str) -> DeviceCode | None:
        wanted = user_code.strip().upper().replace("-", "").replace(" ", "")
        with self._lock:
            return next(
                (d for d in self._device_codes.values() if d.user_code == wanted),
                None,
            )

    def device(self, device_code: str) -> DeviceCode | None:
        with self._lock:
            return self._device_codes.get(device_code)

    # refresh tokens

    def issue_refresh_token(self, grant: SignInGrant) -> str:
        token = "1.A" + secrets.token_urlsafe(96)
        with self._lock:
            self._refresh_tokens[token] = grant
        return token

    def refresh_grant(self, token: str) -> SignInGrant | None:
        with self._lock:
            return self._refresh_tokens.get(token)

    # the sign-in log

    def record(
        self,
        flow: SignInKind,
        *,
        client_id: str,
        user: User | None,
        succeeded: bool,
        error_code: int | None = None,
        amr: tuple[str, ...] = (),
        acrs: tuple[str, ...] = (),
    ) -> None:
        entry = SignInRecord(
            self.clock.now(),
            flow,
            user.id if user else None,
            user.user_principal_name if user else None,
            client_id,
            succeeded,
            error_code,
            amr,
            acrs,
        )
        with self._lock:
            self._log.append(entry)

    @property
    def sign_ins(self) -> list[SignInRecord]:
        with self._lock:
            return list(self._log)


# --- the steps of a sign-in --------------------------------------------------------------------


def mfa_demanded(tenant: Tenant, claims: dict[str, Any]) -> bool:
    """Must this sign-in end with MFA whatever the tenant's default? Yes when the claims ask for
    ``amr`` ``mfa``, or ask for an authentication context that an enabled Conditional Access
    policy grants only with MFA (that is what satisfying an authentication context means)."""
    if requests_mfa(claims):
        return True
    contexts = set(requested_acrs(claims))
    return any(
        policy.state == "enabled"
        and "mfa" in policy.built_in_controls
        and contexts & set(policy.include_authentication_contexts)
        for policy in tenant.conditional_access_policies
    )


def mfa_needed(tenant: Tenant, flow: SignInFlow, user: User) -> bool:
    """The MFA step happens when the tenant asks for MFA at sign-in or the request demands it,
    and the user has a method registered (a user without one is only refused where MFA is
    demanded: the emulator does not model registering a method)."""
    asked = tenant.sign_in.require_mfa or mfa_demanded(tenant, flow.claims)
    return asked and user.mfa_code is not None and "mfa" not in flow.amr


def acrs_needed(flow: SignInFlow) -> tuple[str, ...]:
    return tuple(c for c in requested_acrs(flow.claims) if c not in flow.acrs)


def grant_of(flow: SignInFlow) -> SignInGrant:
    assert flow.user_id is not None
    if flow.authorize is not None:
        request = flow.authorize
        return SignInGrant(
            flow.user_id,
            request.client_id,
            request.graph_scopes,
            request.oidc_scopes,
            flow.amr,
            flow.acrs,
            request.nonce,
        )
    device = flow.device
    assert device is not None
    return SignInGrant(
        flow.user_id, device.client_id, device.graph_scopes, device.oidc_scopes, flow.amr, flow.acrs
    )


def with_amr(flow: SignInFlow, method: str) -> tuple[str, ...]:
    return flow.amr if method in flow.amr else (*flow.amr, method)


__all__ = [
    "AuthorizationCode",
    "AuthorizeError",
    "AuthorizeErrorPage",
    "AuthorizeRequest",
    "DeviceCode",
    "IdentityStore",
    "SignInFlow",
    "SignInGrant",
    "SignInRecord",
]

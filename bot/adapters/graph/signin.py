"""People's own sign-in (delegated mode): msal's auth-code flow with PKCE, and their tokens.

One ConfidentialClientApplication per call, built around the person's own token cache (never a
shared one: a cache holds refresh tokens, and one person's must never serve another). The
tenant discovery answers are shared through ``http_cache`` so building one costs no network
after the first. msal talks through pimbot's httpx client (see ``auth.MsalHttpClient``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import msal
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal.exceptions import MsalServiceError

from bot.adapters.graph.auth import (
    CertificateCredential,
    ClientCredential,
    MsalHttpClient,
    load_certificate,
)
from bot.domain.errors import PimUnavailable, SignInFailed, SignInRequired
from bot.domain.ports import CompletedSignIn, DeviceCodeStart, SignInStart

# A cache made by a device-code sign-in belongs to the public client (no client secret):
# marked so that its refreshes go through the same client.
PUBLIC_CACHE = "public:"
_STILL_PENDING = ("authorization_pending", "slow_down")

logger = logging.getLogger(__name__)

# What pimbot does as the person, and why each is asked for (README, "Delegated mode").
DELEGATED_PERMISSIONS = (
    "RoleAssignmentSchedule.ReadWrite.Directory",  # selfActivate / selfDeactivate
    "RoleEligibilitySchedule.Read.Directory",  # the roles they may activate
    "RoleManagementPolicy.Read.Directory",  # what a role requires on activation
    "User.Read",  # who signed in
)


class MsalSignIn:
    """Sign-ins and tokens of people, for the app registration pimbot runs as."""

    def __init__(
        self,
        *,
        client_id: str,
        credential: ClientCredential,
        authority_host: str,
        http_client: MsalHttpClient,
        redirect_uri: str | None,
        now: Callable[[], datetime] | None = None,
        app_factory: Callable[..., Any] = msal.ConfidentialClientApplication,
        public_app_factory: Callable[..., Any] = msal.PublicClientApplication,
    ) -> None:
        self._public_app_factory = public_app_factory
        self._client_id = client_id
        self._credential = credential
        self._authority_host = authority_host.rstrip("/")
        self._http_client = http_client
        self.redirect_uri = redirect_uri
        # Bare names: the identity platform reads a scope without a resource as Microsoft
        # Graph of the authority's own cloud, so one list serves every cloud.
        self.scopes = list(DELEGATED_PERMISSIONS)
        self._now = now or (lambda: datetime.now(UTC))
        self._app_factory = app_factory
        self._http_cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._loaded_credential: Any = None

    def __repr__(self) -> str:  # never the credential
        return f"MsalSignIn(client_id={self._client_id!r}, authority={self._authority_host!r})"

    # --- the auth-code flow -------------------------------------------------------------------

    def begin(
        self, tenant: str, *, claims: str | None = None, login_hint: str | None = None
    ) -> SignInStart:
        """The authorize URL to send the person to, and the flow to keep (sealed) until back."""
        if self.redirect_uri is None:
            raise SignInFailed("pimbot has no public URL: sign in by device code.", code="no_url")
        app = self._application(tenant, msal.SerializableTokenCache())
        flow = app.initiate_auth_code_flow(
            scopes=self.scopes,
            redirect_uri=self.redirect_uri,
            claims_challenge=claims,
            login_hint=login_hint,
            prompt="select_account" if login_hint is None else None,
            # The code comes back in a form POST, not in the URL (RFC 9700 §4.3.1): it never
            # lands in browser history, proxy logs or a Referer.
            response_mode="form_post",
        )
        return SignInStart(auth_uri=str(flow["auth_uri"]), flow=dict(flow))

    def complete(
        self, tenant: str, flow: Mapping[str, Any], params: Mapping[str, str]
    ) -> CompletedSignIn:
        """Redeem the code the callback received; SignInFailed in words the person reads."""
        if params.get("error"):
            raise SignInFailed(_authorize_error(params), code=str(params.get("error")))
        cache = msal.SerializableTokenCache()
        app = self._application(tenant, cache)
        try:
            result = app.acquire_token_by_auth_code_flow(dict(flow), dict(params), scopes=None)
        except ValueError as exc:  # msal: state mismatch, or a flow it does not recognise
            raise SignInFailed(
                "This sign-in does not match the link it started from. Run `/pim connect` "
                "again and use the new link.",
                code="state_mismatch",
            ) from exc
        except RuntimeError as exc:  # msal: the id token's nonce did not match
            raise SignInFailed(
                "The sign-in answer could not be verified (nonce mismatch). Run `/pim connect` "
                "again.",
                code="nonce_mismatch",
            ) from exc
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID ({type(exc).__name__}). Try again."
            ) from exc
        return self._completed(result, cache, tenant)

    def _completed(
        self, result: Any, cache: msal.SerializableTokenCache, tenant: str, *, public: bool = False
    ) -> CompletedSignIn:
        if not isinstance(result, Mapping) or "access_token" not in result:
            raise SignInFailed(_token_error(result), code=str(_get(result, "error") or "failed"))
        claims = _id_claims(result)
        token_claims = read_token_claims(str(result["access_token"]))
        entra_id = str(claims.get("oid") or token_claims.get("oid") or "")
        if not entra_id:
            raise SignInFailed("Microsoft Entra ID did not say who signed in.", code="no_oid")
        expires_in = result.get("expires_in")
        return CompletedSignIn(
            entra_id=entra_id,
            tenant_id=str(claims.get("tid") or token_claims.get("tid") or tenant),
            username=str(claims.get("preferred_username") or token_claims.get("upn") or ""),
            display_name=str(claims["name"]) if claims.get("name") else None,
            mfa="mfa" in _strings(token_claims.get("amr")),
            acrs=_strings(token_claims.get("acrs")),
            expires_at=(
                self._now() + timedelta(seconds=int(expires_in))
                if isinstance(expires_in, int | str) and str(expires_in).isdigit()
                else None
            ),
            cache=(PUBLIC_CACHE if public else "") + cache.serialize(),
        )

    # --- tokens of a signed-in person ---------------------------------------------------------

    def access_token(
        self, tenant: str, cache_state: str, *, entra_id: str, claims: str | None = None
    ) -> tuple[str, str | None]:
        """A token for Graph as the person, from their cache (refreshing as needed), and the
        cache to store back when it changed. SignInRequired when only a new sign-in will do
        (no account, refresh refused, or ``claims`` the stored sign-in cannot satisfy)."""
        cache = msal.SerializableTokenCache()
        public = cache_state.startswith(PUBLIC_CACHE)
        cache.deserialize(cache_state.removeprefix(PUBLIC_CACHE))
        app = self._public(tenant, cache) if public else self._application(tenant, cache)
        accounts = [
            a
            for a in app.get_accounts()
            if str(a.get("local_account_id") or "") == entra_id
            or str(a.get("home_account_id") or "").startswith(entra_id)
        ]
        if not accounts:
            raise SignInRequired("You are not signed in to pimbot. Run `/pim connect`.", claims)
        try:
            result = app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], claims_challenge=claims
            )
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID ({type(exc).__name__}). Try again."
            ) from exc
        if not isinstance(result, Mapping) or "access_token" not in result:
            # Nothing logged of the result beyond its error code: it may echo the request.
            logger.info("silent token refused: %s", _get(result, "error") or "no token")
            raise SignInRequired(
                "Your pimbot sign-in has expired or is not strong enough for this role; "
                "sign in again.",
                claims,
            )
        changed = (PUBLIC_CACHE if public else "") + cache.serialize()
        return str(result["access_token"]), changed if cache.has_state_changed else None

    # --- the device-code flow (no public URL) ---------------------------------------------

    def begin_device(self, tenant: str, *, claims: str | None = None) -> DeviceCodeStart:
        """A code for the person to enter at Microsoft's device login page. Device code is a
        public-client flow (the app registration must allow public client flows)."""
        app = self._public(tenant, msal.SerializableTokenCache())
        try:
            flow = app.initiate_device_flow(scopes=self.scopes, claims_challenge=claims)
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID ({type(exc).__name__}). Try again."
            ) from exc
        if not isinstance(flow, Mapping) or "user_code" not in flow:
            raise SignInFailed(_token_error(flow), code=str(_get(flow, "error") or "failed"))
        expires_at = datetime.fromtimestamp(float(flow.get("expires_at", 0)), tz=UTC)
        return DeviceCodeStart(
            user_code=str(flow["user_code"]),
            verification_uri=str(flow.get("verification_uri") or flow.get("verification_url")),
            expires_at=expires_at,
            flow=dict(flow),
        )

    def poll_device(self, tenant: str, flow: Mapping[str, Any]) -> CompletedSignIn | None:
        cache = msal.SerializableTokenCache()
        app = self._public(tenant, cache)
        try:
            # One poll, no waiting: pimbot's sweep polls again at its own pace.
            result = app.acquire_token_by_device_flow(dict(flow), exit_condition=lambda _f: True)
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID ({type(exc).__name__})."
            ) from exc
        if isinstance(result, Mapping) and result.get("error") in _STILL_PENDING:
            return None
        return self._completed(result, cache, tenant, public=True)

    def _public(self, tenant: str, cache: msal.SerializableTokenCache) -> Any:
        """msal's public client (device code: no client credential)."""
        return self._build(self._public_app_factory, tenant, cache)

    # --- plumbing -----------------------------------------------------------------------------

    def _application(self, tenant: str, cache: msal.SerializableTokenCache) -> Any:
        """msal's confidential client, with the app registration's credential."""
        return self._build(
            self._app_factory, tenant, cache, client_credential=self._credential_value()
        )

    def _build(
        self,
        factory: Callable[..., Any],
        tenant: str,
        cache: msal.SerializableTokenCache,
        **credential: Any,
    ) -> Any:
        authority = f"{self._authority_host}/{tenant}"
        try:
            return factory(
                self._client_id,
                authority=authority,
                http_client=self._http_client,
                token_cache=cache,
                http_cache=self._http_cache,
                instance_discovery=_host(authority) in WELL_KNOWN_AUTHORITY_HOSTS,
                **credential,
            )
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID at {_host(authority)} ({type(exc).__name__})."
            ) from exc
        except ValueError as exc:
            raise SignInFailed(
                f"Microsoft Entra ID does not know the tenant {tenant!r}. Check the name or id "
                "you gave `/pim connect`.",
                code="unknown_tenant",
            ) from exc

    def _credential_value(self) -> Any:
        with self._lock:
            if self._loaded_credential is None:
                self._loaded_credential = (
                    load_certificate(self._credential)
                    if isinstance(self._credential, CertificateCredential)
                    else self._credential
                )
            return self._loaded_credential


def read_token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified. Only to learn what a sign-in proved (``amr``,
    ``acrs``) so that pimbot never sends PIM a token it knows is too weak; PIM itself checks
    the token, and nothing is granted on the strength of this reading."""
    try:
        payload = token.split(".")[1]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(decoded)
    except (IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def _id_claims(result: Mapping[str, Any]) -> Mapping[str, Any]:
    claims = result.get("id_token_claims")
    return claims if isinstance(claims, Mapping) else {}


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


def _get(result: Any, key: str) -> Any:
    return result.get(key) if isinstance(result, Mapping) else None


# AADSTS codes a person meets at sign-in, in words (the description follows for the rest).
_AADSTS_WORDS = {
    "AADSTS65004": "You cancelled the sign-in.",
    "AADSTS50126": "The user name or password was wrong.",
    "AADSTS50057": "That Microsoft Entra account is disabled.",
    "AADSTS50076": "Your organisation requires multi-factor authentication for this.",
    "AADSTS50079": "Your organisation requires you to register for multi-factor authentication.",
    "AADSTS53003": "Conditional Access blocked this sign-in.",
    "AADSTS50199": "Conditional Access blocked this sign-in.",
    "AADSTS70008": "The sign-in took too long and the code expired.",
    "AADSTS54005": "That sign-in code was already used.",
    "AADSTS50011": "pimbot's sign-in address is not registered with the app (redirect URI).",
    "AADSTS65001": "The app has not been consented to in this tenant.",
    "AADSTS700016": "pimbot's app is not registered in this tenant.",
}


def _authorize_error(params: Mapping[str, str]) -> str:
    error = params.get("error", "")
    description = params.get("error_description", "")
    if error == "access_denied" and "AADSTS" not in description:
        return "You cancelled the sign-in."
    return _in_words(description) or f"Microsoft Entra ID refused the sign-in ({error})."


def _token_error(result: Any) -> str:
    description = str(_get(result, "error_description") or "")
    return _in_words(description) or "Microsoft Entra ID refused the sign-in."


def _in_words(description: str) -> str | None:
    for code, words in _AADSTS_WORDS.items():
        if code in description:
            return f"{words} ({code})"
    first = description.split("\r\n")[0].split("\n")[0].strip()
    return first[:300] or None


def _host(url: str) -> str:
    return urlsplit(url).hostname or url

"""The emulated Entra token service: OIDC discovery, the token endpoint's grants (client
credentials, authorization code with PKCE, refresh token, device code), the device
authorization endpoint, and the bearer checks Graph runs.

Token lifetimes and client-assertion times use the real clock, never the emulator's shiftable
one: msal caches tokens against the real clock, so shifting emulator time to expire a role
must not make a token that msal considers fresh look expired to Graph.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from stand_ins.graph_emulator import jws
from stand_ins.graph_emulator.client_assertion import ASSERTION_TYPE, verify_client_assertion
from stand_ins.graph_emulator.clock import EmulatorClock
from stand_ins.graph_emulator.errors import GraphError
from stand_ins.graph_emulator.identity import (
    AuthorizeError,
    IdentityStore,
    SignInGrant,
    granted_scope_text,
    parse_claims,
    requested_acrs,
    requests_mfa,
    resolve_scopes,
)
from stand_ins.graph_emulator.sts_errors import (
    StsError,
    invalid_client,
    invalid_grant,
    missing_parameter,
)
from stand_ins.graph_emulator.tenant import Tenant, User

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
TOKEN_LIFETIME = 3600
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_ID_TOKEN_KEY_ID = "emulator-id-token-key"


@dataclass(frozen=True)
class Caller:
    """Who a valid bearer token says is calling Graph."""

    object_id: str  # the user (delegated) or the app's service principal (app-only)
    app_id: str
    is_user: bool
    permissions: frozenset[str]  # "roles" of an app token, "scp" of a delegated one
    amr: tuple[str, ...] = ()
    acrs: tuple[str, ...] = ()


def _invalid_token(message: str, base_url: str) -> GraphError:
    challenge = (
        f'Bearer realm="", authorization_uri="{base_url}/common/oauth2/authorize", '
        f'client_id="{GRAPH_APP_ID}"'
    )
    return GraphError(
        401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": challenge}
    )


class SecurityTokenService:
    """Issues opaque-to-clients HS256 tokens for the tenant's one app and checks them."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.tenant = tenant
        self._wall_clock = wall_clock
        self._key = secrets.token_bytes(32)
        # Codes and device codes expire on the emulator clock, which tests can move.
        self.identity = IdentityStore(clock or EmulatorClock())
        self._id_token_key: rsa.RSAPrivateKey | None = None
        self._id_token_key_lock = threading.Lock()

    # --- discovery ----------------------------------------------------------------------------

    def knows_tenant(self, tenant_ref: str) -> bool:
        return tenant_ref.lower() in (self.tenant.tenant_id, self.tenant.default_domain.lower())

    def unknown_tenant(self, tenant_ref: str) -> StsError:
        return StsError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant_ref}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant.",
        )

    def discovery(self, base_url: str, tenant_ref: str) -> dict[str, Any]:
        if not self.knows_tenant(tenant_ref):
            raise self.unknown_tenant(tenant_ref)
        root = f"{base_url}/{self.tenant.tenant_id}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        }

    # --- client credentials -------------------------------------------------------------------

    def issue_for_client(
        self, base_url: str, tenant_ref: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        """The token response for a client-credentials POST, or StsError."""
        if not self.knows_tenant(tenant_ref):
            raise self.unknown_tenant(tenant_ref)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._redeem_code(base_url, tenant_ref, form)
        if grant_type == "refresh_token":
            return self._redeem_refresh_token(base_url, tenant_ref, form)
        if grant_type == DEVICE_CODE_GRANT:
            return self._redeem_device_code(base_url, tenant_ref, form)
        if grant_type != "client_credentials":
            raise StsError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        self._check_client_id(form)
        audience = self._resource(form.get("scope", ""), base_url)
        token_endpoint = f"{base_url}/{tenant_ref}/oauth2/v2.0/token"
        credential = self._check_credential(form, token_endpoint)
        token = self.mint(audience=audience, credential_type=credential)
        return {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": token,
        }

    def _check_client_id(self, form: Mapping[str, str]) -> str:
        client_id = form.get("client_id", "")
        if not client_id:
            raise missing_parameter("client_id")
        if client_id.lower() != self.tenant.app.client_id:
            raise StsError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        return self.tenant.app.client_id

    # --- authorization code -------------------------------------------------------------------

    def _redeem_code(
        self, base_url: str, tenant_ref: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        self._check_client_id(form)
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise missing_parameter(name)
        self._check_credential(form, f"{base_url}/{tenant_ref}/oauth2/v2.0/token")
        record = self.identity.code(form["code"])
        if record is None:
            raise invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        if record.redeemed:
            raise invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if record.expires <= self.identity.clock.now():
            raise invalid_grant(
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if form["redirect_uri"] != record.redirect_uri:
            # Not in Microsoft's AADSTS reference list; this is the code Entra answers with.
            raise invalid_grant(
                500112,
                f"The reply address '{form['redirect_uri']}' does not match the reply address "
                f"'{record.redirect_uri}' provided when requesting Authorization code.",
            )
        if record.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier:
                raise missing_parameter("code_verifier")
            if not secrets.compare_digest(
                _pkce_challenge(verifier, record.code_challenge_method), record.code_challenge
            ):
                raise invalid_grant(
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        # A code is spent by any redemption attempt that got this far, as in Entra.
        record.redeemed = True
        return self._delegated_tokens(base_url, record.grant)

    # --- refresh token ------------------------------------------------------------------------

    def _redeem_refresh_token(
        self, base_url: str, tenant_ref: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        client_id = self._check_client_id(form)
        if not form.get("refresh_token"):
            raise missing_parameter("refresh_token")
        self._check_credential(form, f"{base_url}/{tenant_ref}/oauth2/v2.0/token")
        grant = self.identity.refresh_grant(form["refresh_token"])
        if grant is None or grant.client_id != client_id:
            raise invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        user = self._user(grant)
        if form.get("scope"):
            try:
                graph_scopes, oidc_scopes = resolve_scopes(form["scope"], self.tenant.app)
            except AuthorizeError as error:
                raise StsError(400, "invalid_scope", error.code, error.description) from None
            if not set(graph_scopes) <= set(grant.graph_scopes):
                raise invalid_grant(
                    65001,
                    "The user or administrator has not consented to use the application with "
                    f"ID '{client_id}'. Send an interactive authorization request for this user "
                    "and resource.",
                    suberror="consent_required",
                )
            grant = SignInGrant(
                grant.user_id,
                grant.client_id,
                graph_scopes or grant.graph_scopes,
                tuple(dict.fromkeys((*oidc_scopes, *grant.oidc_scopes))),
                grant.amr,
                grant.acrs,
                None,
                grant.session_id,
            )
        try:
            claims = parse_claims(form.get("claims"))
        except ValueError:
            raise StsError(
                400, "invalid_request", 90023, "The 'claims' parameter is not valid JSON."
            ) from None
        missing_acrs = [c for c in requested_acrs(claims) if c not in grant.acrs]
        if missing_acrs or (requests_mfa(claims) and "mfa" not in grant.amr):
            self.identity.record(
                "refresh_token",
                client_id=client_id,
                user=user,
                succeeded=False,
                error_code=50076,
            )
            # Entra's answer when the session does not meet the claims asked for: the app must
            # send the person to /authorize with those claims (msal: interaction required).
            raise invalid_grant(
                50076,
                "Due to a configuration change made by your administrator, or because you moved "
                "to a new location, you must use multi-factor authentication to access "
                f"'{GRAPH_APP_ID}'.",
                suberror="basic_action",
                claims=json.dumps(claims, separators=(",", ":")),
            )
        self.identity.record(
            "refresh_token",
            client_id=client_id,
            user=user,
            succeeded=True,
            amr=grant.amr,
            acrs=grant.acrs,
        )
        # Entra rotates the refresh token; the old one stays valid until it expires.
        return self._delegated_tokens(base_url, grant)

    # --- device code --------------------------------------------------------------------------

    def device_authorization(
        self, base_url: str, tenant_ref: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        """``POST /{tenant}/oauth2/v2.0/devicecode``: the codes and Microsoft's message."""
        if not self.knows_tenant(tenant_ref):
            raise self.unknown_tenant(tenant_ref)
        client_id = self._check_client_id(form)
        scope = form.get("scope", "")
        if not scope.strip():
            raise missing_parameter("scope")
        try:
            graph_scopes, oidc_scopes = resolve_scopes(scope, self.tenant.app)
            claims = parse_claims(form.get("claims"))
        except AuthorizeError as error:
            raise StsError(400, "invalid_scope", error.code, error.description) from None
        except ValueError:
            raise StsError(
                400, "invalid_request", 90023, "The 'claims' parameter is not valid JSON."
            ) from None
        settings = self.tenant.sign_in
        device = self.identity.issue_device_code(
            client_id, graph_scopes, oidc_scopes, claims, settings.device_code_lifetime
        )
        verification_uri = f"{base_url}/devicelogin"
        return {
            "user_code": device.user_code,
            "device_code": device.device_code,
            "verification_uri": verification_uri,
            "expires_in": settings.device_code_lifetime,
            "interval": settings.device_code_poll_interval,
            "message": (
                f"To sign in, use a web browser to open the page {verification_uri} and enter "
                f"the code {device.user_code} to authenticate."
            ),
        }

    def _redeem_device_code(
        self, base_url: str, tenant_ref: str, form: Mapping[str, str]
    ) -> dict[str, Any]:
        client_id = self._check_client_id(form)
        if not form.get("device_code"):
            raise missing_parameter("device_code")
        # A public client sends no credential; a confidential one's credential must be right.
        if "client_secret" in form or "client_assertion" in form:
            self._check_credential(form, f"{base_url}/{tenant_ref}/oauth2/v2.0/token")
        device = self.identity.device(form["device_code"])
        if device is None or device.client_id != client_id or device.status == "redeemed":
            raise StsError(
                400,
                "bad_verification_code",
                70018,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
        if device.status == "blocked":
            raise invalid_grant(
                53003,
                "Access has been blocked by Conditional Access policies. The access policy does "
                "not allow token issuance.",
            )
        if device.status == "declined":
            raise StsError(
                400,
                "authorization_declined",
                70000,
                "The user has declined the authorization request.",
            )
        if device.status == "pending" and device.expires <= self.identity.clock.now():
            raise StsError(400, "expired_token", 70019, "Verification code expired.")
        if device.status == "pending" or device.grant is None:
            raise StsError(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        device.status = "redeemed"
        return self._delegated_tokens(base_url, device.grant)

    # --- delegated token responses ------------------------------------------------------------

    def _user(self, grant: SignInGrant) -> User:
        user = self.tenant.find_user(grant.user_id)
        if user is None or not user.account_enabled:
            raise invalid_grant(50057, "The user account is disabled.")
        return user

    def _delegated_tokens(self, base_url: str, grant: SignInGrant) -> dict[str, Any]:
        user = self._user(grant)
        access_token = self.mint(
            user_id=user.id,
            permissions=grant.graph_scopes,
            amr=grant.amr,
            acrs=grant.acrs,
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": granted_scope_text(grant.graph_scopes, grant.oidc_scopes),
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": access_token,
        }
        if "offline_access" in grant.oidc_scopes:
            body["refresh_token"] = self.identity.issue_refresh_token(grant)
        if "openid" in grant.oidc_scopes:
            body["id_token"] = self._id_token(base_url, grant, user)
        client_info = {"uid": user.id, "utid": self.tenant.tenant_id}
        body["client_info"] = jws.b64url_encode(
            json.dumps(client_info, separators=(",", ":")).encode()
        )
        return body

    def _id_token(self, base_url: str, grant: SignInGrant, user: User) -> str:
        now = int(self._wall_clock())
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "iss": f"{base_url}/{self.tenant.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.user_principal_name,
            # Entra's sub is pairwise: stable per user and app, unlike oid.
            "sub": jws.b64url_encode(
                hashlib.sha256(f"{user.id}:{grant.client_id}".encode()).digest()
            ),
            "tid": self.tenant.tenant_id,
            "uti": uuid.uuid4().hex,
            "ver": "2.0",
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce  # verbatim: msal sends its SHA-256 hex and compares
        return jws.sign_rs256(claims, self._signing_key(), _ID_TOKEN_KEY_ID)

    def _signing_key(self) -> rsa.RSAPrivateKey:
        # Made on first use: only sign-in tests pay for an RSA key.
        with self._id_token_key_lock:
            if self._id_token_key is None:
                self._id_token_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._id_token_key

    def keys(self) -> dict[str, Any]:
        """The JWKS at ``jwks_uri``: the id_token signing key."""
        numbers = self._signing_key().public_key().public_numbers()

        def b64_int(value: int) -> str:
            return jws.b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": _ID_TOKEN_KEY_ID,
                    "n": b64_int(numbers.n),
                    "e": b64_int(numbers.e),
                }
            ]
        }

    def _resource(self, scope: str, base_url: str) -> str:
        if not scope:
            raise missing_parameter("scope")
        if not scope.endswith("/.default") or " " in scope.strip():
            raise StsError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scope.removesuffix("/.default")
        if resource not in (GRAPH_RESOURCE, GRAPH_APP_ID, base_url):
            raise StsError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant.display_name}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
            )
        return resource

    def _check_credential(self, form: Mapping[str, str], token_endpoint: str) -> str:
        """ "1" for a secret, "2" for a certificate (Entra's appidacr values)."""
        app = self.tenant.app
        if "client_secret" in form:
            if app.client_secret is None or not secrets.compare_digest(
                form["client_secret"], app.client_secret
            ):
                raise invalid_client(
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{app.client_id}'.",
                )
            return "1"
        if form.get("client_assertion_type") == ASSERTION_TYPE and "client_assertion" in form:
            verify_client_assertion(
                form["client_assertion"], app, token_endpoint, self._wall_clock()
            )
            return "2"
        raise invalid_client(
            7000218,
            "The request body must contain the following parameter: "
            "'client_assertion' or 'client_secret'.",
        )

    # --- access tokens ------------------------------------------------------------------------

    def mint(
        self,
        *,
        user_id: str | None = None,
        permissions: Iterable[str] | None = None,
        expires_in: int = TOKEN_LIFETIME,
        amr: Iterable[str] = ("pwd",),
        acrs: Iterable[str] = (),
        audience: str = GRAPH_RESOURCE,
        credential_type: str = "1",
    ) -> str:
        """An access token: app-only by default, or delegated for ``user_id`` (a user's id)."""
        app, now = self.tenant.app, int(self._wall_clock())
        granted = sorted(app.permissions if permissions is None else permissions)
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{self.tenant.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": credential_type,
            "tid": self.tenant.tenant_id,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        if user_id is None:
            claims.update(
                idtyp="app",
                oid=app.service_principal_id,
                sub=app.service_principal_id,
                roles=granted,
            )
        else:
            claims.update(
                idtyp="user",
                oid=user_id,
                sub=user_id,
                scp=" ".join(granted),
                amr=list(amr),
                acrs=list(acrs),
            )
        return jws.sign_hs256(claims, self._key)

    def authenticate(self, authorization: str | None, base_url: str) -> Caller:
        """The Caller of a Graph request, or the 401 Graph answers for a bad bearer token."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _invalid_token("Access token is empty.", base_url)
        try:
            _header, claims, signing_input, signature = jws.split(token.strip())
        except jws.MalformedToken:
            raise _invalid_token(
                "IDX14100: JWT is not well formed, there are no dots (.).", base_url
            ) from None
        if not jws.verify_hs256(signing_input, signature, self._key):
            raise _invalid_token("Access token validation failure.", base_url)
        if claims.get("aud") not in (GRAPH_RESOURCE, GRAPH_APP_ID, base_url):
            raise _invalid_token("Access token validation failure. Invalid audience.", base_url)
        if int(claims.get("exp", 0)) <= self._wall_clock():
            raise _invalid_token("Lifetime validation failed, the token is expired.", base_url)
        is_user = claims.get("idtyp") == "user"
        granted = str(claims.get("scp", "")).split() if is_user else claims.get("roles", [])
        return Caller(
            object_id=str(claims["oid"]),
            app_id=str(claims["appid"]),
            is_user=is_user,
            permissions=frozenset(granted),
            amr=tuple(claims.get("amr", ())),
            acrs=tuple(claims.get("acrs", ())),
        )


def _pkce_challenge(verifier: str, method: str | None) -> str:
    if method == "S256":
        return (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
    return verifier  # "plain" (only reachable for an app that does not require S256)

"""The emulated Entra token service (OIDC discovery + client credentials) and bearer checks.

Token lifetimes and client-assertion times use the real clock, never the emulator's shiftable
one: msal caches tokens against the real clock, so shifting emulator time to expire a role
must not make a token that msal considers fresh look expired to Graph.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stand_ins.graph_emulator import jws
from stand_ins.graph_emulator.client_assertion import ASSERTION_TYPE, verify_client_assertion
from stand_ins.graph_emulator.errors import GraphError
from stand_ins.graph_emulator.sts_errors import StsError, invalid_client, missing_parameter
from stand_ins.graph_emulator.tenant import Tenant

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE = "https://graph.microsoft.com"
TOKEN_LIFETIME = 3600


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

    def __init__(self, tenant: Tenant, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.tenant = tenant
        self._wall_clock = wall_clock
        self._key = secrets.token_bytes(32)

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
        if grant_type != "client_credentials":
            raise StsError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            raise missing_parameter("client_id")
        app = self.tenant.app
        if client_id.lower() != app.client_id:
            raise StsError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
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

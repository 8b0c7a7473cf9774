"""Tokens for Graph: a pluggable ``TokenProvider`` seam, the app-only msal implementation and
the ``httpx.Auth`` that puts the token on each request.

msal is built lazily on the first token: its constructor does network I/O (OIDC discovery),
and building pimbot's clients must never touch the network. msal's HTTP goes through
``MsalHttpClient`` (httpx) rather than ``requests``, because ``requests`` lets the
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables override the CA bundle pimbot was
told to use (graph-pim.md §9 point 10).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal.exceptions import MsalServiceError

from bot.domain.errors import PimAuthError, PimUnavailable

logger = logging.getLogger(__name__)


class TokenProvider(Protocol):
    def token(self, claims_challenge: str | None = None) -> str:
        """A bearer token for Graph; ``claims_challenge`` is the decoded claims JSON."""
        ...


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer …`` from a TokenProvider to every Graph request."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._provider.token()}"
        yield request


class MsalHttpClient:
    """The ``http_client`` msal expects (``get``/``post`` returning status_code/text/headers).

    httpx.Response already offers those attributes and ``raise_for_status()``.
    """

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self._http.get(url, params=params, headers=headers, **_timeout(kwargs))

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        # httpx wants bytes/str bodies as content=, and a dict as data= (form-encoded). msal
        # puts bytes in the form (the client assertion) that requests would decode but httpx
        # would send as "b'...'".
        body: dict[str, Any] = (
            {"content": data} if isinstance(data, str | bytes) else {"data": _form(data)}
        )
        return self._http.post(url, params=params, headers=headers, **body, **_timeout(kwargs))

    def close(self) -> None:
        """The httpx client is pimbot's; msal does not close it."""


def _form(data: Any) -> Any:
    if not isinstance(data, Mapping):
        return data
    return {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items()}


def _timeout(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {"timeout": kwargs["timeout"]} if kwargs.get("timeout") is not None else {}


@dataclass(frozen=True)
class CertificateCredential:
    path: Path
    password: str | None = None

    def __repr__(self) -> str:
        return f"CertificateCredential(path={str(self.path)!r})"


ClientCredential = str | CertificateCredential


class AppTokenProvider:
    """App-only tokens (client credentials) from one long-lived ConfidentialClientApplication."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        credential: ClientCredential,
        authority_host: str,
        scope: str,
        http_client: MsalHttpClient,
        app_factory: Callable[..., Any] = msal.ConfidentialClientApplication,
    ) -> None:
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._credential = credential
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._scope = scope
        self._http_client = http_client
        self._app_factory = app_factory
        self._app: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return (
            f"AppTokenProvider(client_id={self._client_id!r}, authority={self._authority!r}, "
            f"scope={self._scope!r})"
        )

    def token(self, claims_challenge: str | None = None) -> str:
        app = self._application()
        try:
            # msal answers from its own cache until the token has < 5 minutes left.
            result = app.acquire_token_for_client(
                scopes=[self._scope], claims_challenge=claims_challenge
            )
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID at {_host(self._authority)} "
                f"({type(exc).__name__}). Try again in a few minutes."
            ) from exc
        if isinstance(result, Mapping) and isinstance(result.get("access_token"), str):
            return str(result["access_token"])
        raise auth_error(result if isinstance(result, Mapping) else {})

    def _application(self) -> Any:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    def _build(self) -> Any:
        credential = (
            load_certificate(self._credential)
            if isinstance(self._credential, CertificateCredential)
            else self._credential
        )
        try:
            return self._app_factory(
                self._client_id,
                client_credential=credential,
                authority=self._authority,
                http_client=self._http_client,
                # Instance discovery asks login.microsoftonline.com about the host; only
                # worth it (and only possible) for Microsoft's own clouds.
                instance_discovery=_host(self._authority) in WELL_KNOWN_AUTHORITY_HOSTS,
            )
        except (httpx.HTTPError, MsalServiceError) as exc:
            raise PimUnavailable(
                f"Could not reach Microsoft Entra ID at {_host(self._authority)} "
                f"({type(exc).__name__}). Check AZURE_AUTHORITY_HOST and the network."
            ) from exc
        except ValueError as exc:
            # msal: "Unable to get authority configuration ..." (wrong tenant or host).
            raise PimAuthError(
                f"Microsoft Entra ID at {self._authority} did not answer as a tenant "
                "(OIDC discovery failed). Check AZURE_TENANT_ID and AZURE_AUTHORITY_HOST.",
                code="authority_discovery_failed",
            ) from exc


def graph_scope(graph_url: str) -> str:
    """``https://graph.microsoft.us/v1.0`` → ``https://graph.microsoft.us/.default``."""
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


def load_certificate(credential: CertificateCredential) -> dict[str, Any]:
    """msal's certificate credential from one PEM file holding the private key and the cert."""
    try:
        pem = credential.path.read_bytes()
    except OSError as exc:
        raise PimAuthError(
            f"Cannot read AZURE_CLIENT_CERTIFICATE_PATH={credential.path} ({exc.strerror})."
        ) from exc
    try:
        certificate = x509.load_pem_x509_certificates(pem)[0]
    except ValueError as exc:
        raise PimAuthError(
            f"AZURE_CLIENT_CERTIFICATE_PATH={credential.path} holds no PEM certificate; it "
            "must contain both the private key and the certificate."
        ) from exc
    key = _private_key(pem, credential)
    return {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        # SHA-1 thumbprint (x5t) plus the certificate itself, so msal sends x5c and
        # Subject Name/Issuer authentication works too.
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }


def _private_key(pem: bytes, credential: CertificateCredential) -> PrivateKeyTypes:
    password = credential.password.encode() if credential.password else None
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise PimAuthError(
            f"The private key in {credential.path} "
            + (
                "is encrypted: set AZURE_CLIENT_CERTIFICATE_PASSWORD."
                if password is None
                else "is not encrypted: unset AZURE_CLIENT_CERTIFICATE_PASSWORD."
            )
        ) from exc
    except ValueError as exc:
        raise PimAuthError(
            f"Cannot load the private key in {credential.path}: wrong "
            "AZURE_CLIENT_CERTIFICATE_PASSWORD, or the file holds no PEM private key."
        ) from exc


# --- msal error dicts -----------------------------------------------------------------------

_AADSTS = re.compile(r"AADSTS(\d+)")
_HINTS = {
    "7000215": "Azure rejected pimbot's client secret (AADSTS7000215). Check "
    "AZURE_CLIENT_SECRET: use the secret's Value (not its Secret ID) from the app "
    "registration's Certificates & secrets page.",
    "7000222": "pimbot's client secret has expired (AADSTS7000222). Create a new one in the app "
    "registration and update AZURE_CLIENT_SECRET.",
    "700016": "Entra ID does not know the application AZURE_CLIENT_ID in tenant AZURE_TENANT_ID "
    "(AADSTS700016). Check both values, and that the app was consented in this tenant.",
    "90002": "Tenant AZURE_TENANT_ID was not found (AADSTS90002). Check AZURE_TENANT_ID and "
    "AZURE_AUTHORITY_HOST (sovereign clouds have their own).",
    "900023": "AZURE_TENANT_ID is not a valid tenant id or domain (AADSTS900023).",
    "700027": "Azure did not accept pimbot's certificate (AADSTS700027). Upload the certificate "
    "in AZURE_CLIENT_CERTIFICATE_PATH to the app registration.",
    "700024": "pimbot's client assertion is outside its validity window (AADSTS700024). Check "
    "this machine's clock.",
    "7000112": "The application is disabled in this tenant (AADSTS7000112).",
    "70011": "Entra ID refused the token scope (AADSTS70011). Check PIMBOT_GRAPH_URL.",
    "500011": "The Graph resource was not found in this tenant (AADSTS500011). Check "
    "PIMBOT_GRAPH_URL against AZURE_AUTHORITY_HOST (same cloud).",
    "53003": "A Conditional Access policy blocked pimbot's sign-in (AADSTS53003).",
}


def auth_error(result: Mapping[str, Any]) -> PimAuthError:
    """A PimAuthError for an msal error dict (``error``, ``error_description``, codes)."""
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "")
    codes = [str(c) for c in result.get("error_codes") or []]
    match = _AADSTS.search(description)
    code = match.group(1) if match else (codes[0] if codes else None)
    if code in _HINTS:
        message = _HINTS[code]
    else:
        first_line = description.splitlines()[0].strip() if description else error
        message = f"Azure refused pimbot a token ({error}): {first_line}"
    logger.warning("Token request failed: %s (AADSTS%s)", error, code or "?")
    return PimAuthError(message, code=f"AADSTS{code}" if code else error)


def _host(url: str) -> str:
    return urlsplit(url).hostname or url

"""The Microsoft Graph PIM adapter: ``build_pim_client(settings)`` gives a ``PimClient``."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.adapters.graph.auth import (
    AppTokenProvider,
    BearerAuth,
    CertificateCredential,
    ClientCredential,
    MsalHttpClient,
    TokenProvider,
    graph_scope,
)
from bot.adapters.graph.client import GraphPimClient
from bot.adapters.graph.signin import MsalSignIn
from bot.adapters.graph.transport import GraphObserver, RetryPolicy, build_http_client
from bot.app.settings import Settings
from bot.domain.errors import ConfigurationError

__all__ = [
    "AppTokenProvider",
    "BearerAuth",
    "CertificateCredential",
    "GraphObserver",
    "GraphPimClient",
    "MsalHttpClient",
    "RetryPolicy",
    "TokenProvider",
    "build_http_client",
    "build_pim_client",
    "build_sign_in",
    "build_token_provider",
]


def build_pim_client(
    settings: Settings,
    *,
    token_provider: TokenProvider | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    observer: GraphObserver | None = None,
) -> GraphPimClient:
    """The real PimClient; does no I/O (msal and the first connection are lazy).
    ``observer`` hears about every Graph attempt and retry (the metrics)."""
    http = build_http_client(settings)
    provider = token_provider or build_token_provider(settings, MsalHttpClient(http))
    return GraphPimClient(http, provider, retry=retry, sleep=sleep, observer=observer)


def build_token_provider(settings: Settings, http_client: MsalHttpClient) -> AppTokenProvider:
    """App-only tokens from the AZURE_* settings (client secret, or certificate if no secret)."""
    problems = settings.problems_for_graph()
    if problems:
        raise ConfigurationError(problems)
    assert settings.azure_tenant_id and settings.azure_client_id  # checked just above
    return AppTokenProvider(
        tenant_id=settings.azure_tenant_id,
        client_id=settings.azure_client_id,
        credential=_credential(settings),
        authority_host=settings.azure_authority_host,
        scope=graph_scope(settings.graph_url),
        http_client=http_client,
    )


def _credential(settings: Settings) -> ClientCredential:
    if settings.azure_client_secret is not None:
        return settings.azure_client_secret.get_secret_value()
    assert settings.azure_client_certificate_path is not None  # problems_for_graph checked
    password = settings.azure_client_certificate_password
    return CertificateCredential(
        path=settings.azure_client_certificate_path,
        password=password.get_secret_value() if password else None,
    )


def build_sign_in(settings: Settings, http: httpx.Client) -> MsalSignIn:
    """People's sign-ins (delegated mode) for the same app registration, through ``http``."""
    problems = settings.problems_for_graph()
    if problems:
        raise ConfigurationError(problems)
    assert settings.azure_client_id is not None
    return MsalSignIn(
        client_id=settings.azure_client_id,
        credential=_credential(settings),
        authority_host=settings.azure_authority_host,
        http_client=MsalHttpClient(http),
        # No public URL: people sign in by device code instead of the redirect.
        redirect_uri=settings.redirect_uri,
    )

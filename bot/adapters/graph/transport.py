"""The one httpx client pimbot talks to Graph (and Entra ID) through, and its retry rules.

Retries are narrow on purpose: only 429/503/504 and transport failures, bounded in attempts
and in total waiting, honouring ``Retry-After`` (seconds, fractional like ``2.128``, or an
HTTP date). A request that creates something is never retried after an *ambiguous* failure:
the transport raises ``AmbiguousOutcome`` and the caller finds out what happened first.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from bot.app.settings import Settings
from bot.domain.errors import PimUnavailable

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 503, 504})
# Failures that prove the request never reached Graph: safe to send again even for a create.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def build_http_client(settings: Settings, **kwargs: Any) -> httpx.Client:
    """One long-lived client: explicit timeouts, the CA bundle, HTTPS_PROXY/NO_PROXY honoured."""
    seconds = settings.http_timeout.total_seconds()
    return httpx.Client(
        base_url=settings.graph_url,
        timeout=httpx.Timeout(seconds, connect=min(seconds, 5.0)),
        verify=tls_context(settings),
        trust_env=True,  # HTTPS_PROXY / NO_PROXY, as every outbound call in pimbot
        headers={"Accept": "application/json"},
        **kwargs,
    )


def tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """What this httpx client (Graph, and msal's token calls through ``MsalHttpClient``)
    trusts: PIMBOT_CA_BUNDLE alone when set; otherwise httpx's default, which is
    SSL_CERT_FILE or SSL_CERT_DIR when set (trust_env) and else certifi's bundle, not the OS
    store. REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE do not apply (msal does not use requests)."""
    # An SSLContext, not a path: httpx 0.28 deprecates verify=<str>.
    if settings.ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=str(settings.ca_bundle))


class Retry(Enum):
    SAFE = "safe"  # reads and other idempotent calls
    CREATE = "create"  # POSTs that create: retry only what provably was not processed


class AmbiguousOutcome(Exception):
    """A create may or may not have been processed (timeout, dropped connection, 5xx)."""

    def __init__(self, reason: str, response: httpx.Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    max_total_wait: float = 30.0  # seconds spent sleeping across all attempts
    base_delay: float = 0.5
    max_delay: float = 8.0


class GraphObserver(Protocol):
    """Told about every attempt and every retry (metrics); must not raise or block."""

    def request_finished(self, method: str, status: int | None, seconds: float) -> None:
        """One attempt ended: its HTTP status, or None when no response came back."""
        ...

    def retrying(self, reason: str) -> None:
        """Another attempt follows: ``http_429``, ``http_503``, ``ConnectError``, ..."""
        ...


class NoObserver:
    def request_finished(self, method: str, status: int | None, seconds: float) -> None:
        pass

    def retrying(self, reason: str) -> None:
        pass


class GraphTransport:
    """Sends requests with the retry policy; returns the final response, whatever its status."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        auth: httpx.Auth | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        observer: GraphObserver | None = None,
    ) -> None:
        self.http = http
        self.observer: GraphObserver = observer or NoObserver()
        self._auth = auth
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None = None,
        retry: Retry = Retry.SAFE,
    ) -> httpx.Response:
        self._check_origin(url)
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self._policy.attempts
            started = time.perf_counter()
            try:
                response = self._send(method, url, json)
            except httpx.TransportError as exc:
                self.observer.request_finished(method, None, time.perf_counter() - started)
                reason = type(exc).__name__
                if retry is Retry.CREATE and not isinstance(exc, NOT_SENT):
                    raise AmbiguousOutcome(type(exc).__name__) from exc
                delay = self._backoff(attempt)
                if last or waited + delay > self._policy.max_total_wait:
                    raise PimUnavailable(
                        f"Could not reach Microsoft Graph at {self._host()} "
                        f"({type(exc).__name__}). Try again in a few minutes."
                    ) from exc
                logger.warning(
                    "Graph %s %s failed (%s); retrying in %.2fs",
                    method,
                    _path(url),
                    type(exc).__name__,
                    delay,
                )
            else:
                status = response.status_code
                self.observer.request_finished(method, status, time.perf_counter() - started)
                reason = f"http_{status}"
                if retry is Retry.CREATE and status >= 500:
                    raise AmbiguousOutcome(f"HTTP {status}", response)
                if status not in RETRYABLE_STATUSES:
                    return response
                delay = self._delay(response, attempt)
                if last or waited + delay > self._policy.max_total_wait:
                    return response
                logger.warning(
                    "Graph %s %s answered %d; retrying in %.2fs", method, _path(url), status, delay
                )
            self.observer.retrying(reason)
            self._sleep(delay)
            waited += delay

    def _send(self, method: str, url: str, json: Mapping[str, Any] | None) -> httpx.Response:
        auth = self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT
        return self.http.request(method, url, json=json, auth=auth)

    def _delay(self, response: httpx.Response, attempt: int) -> float:
        after = retry_after(response.headers.get("Retry-After"))
        return after if after is not None else self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self._policy.max_delay, self._policy.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * self._jitter()

    def _check_origin(self, url: str) -> None:
        # Absolute URLs come from @odata.nextLink; never send the bearer token to another host.
        parts = urlsplit(url)
        if parts.scheme and (parts.scheme, parts.netloc) != (
            self.http.base_url.scheme,
            self.http.base_url.netloc.decode("ascii"),
        ):
            raise PimUnavailable(
                f"Microsoft Graph pointed pimbot at another host ({parts.netloc}); refused."
            )

    def _host(self) -> str:
        return self.http.base_url.host


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: ``10``, ``1.5``, ``2.128`` or a date."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _path(url: str) -> str:
    return urlsplit(url).path or url

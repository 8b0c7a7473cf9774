"""Cross-cutting Slack concerns: a correlation id per interaction, and counting Web API calls.

Bolt runs global middleware on the thread that received the request, then acks and runs the
listener on its listener executor. ``contextvars`` do not follow work into a
``ThreadPoolExecutor`` by themselves, so the runtime gives Bolt a ``ContextPreservingExecutor``:
each listener runs in a copy of the context the middleware bound the ids in.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState

from bot.app.logs import begin_interaction
from bot.domain.ports import UnitOfWork

_VERIFIED = "pimbot_verified"
log = logging.getLogger(__name__)
# Slack's signatures are good for five minutes either side of now (slack_sdk's verifier).
SIGNATURE_WINDOW_SECONDS = 5 * 60


def register(app: App, uow: Callable[[], UnitOfWork]) -> None:
    # pimbot's middleware runs after Bolt's signature verification (Bolt's built-in middleware
    # always runs before ``app.use`` ones): only a verified request gets here.
    app.use(ReplayGuard(uow))
    app.use(mark_verified)
    app.use(correlate_interaction)


class ReplayGuard:
    """Runs nothing for a signed request seen before (same timestamp and signature), on any
    replica: the cache is in the database, written before any listener runs.

    A replay is answered ``200`` with an empty body. Slack treats anything else as a failure
    (an error shown to the person for an interaction, retries for an event), and a genuine
    duplicate (a proxy resending a request whose answer it lost) has already been served. A
    replayer learns nothing from it, and nothing changes. Slack's own retries of an event are
    signed afresh (a new timestamp), so they pass here; the use cases de-duplicate those.
    """

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        wall_clock: Callable[[], float] = time.time,
        purge_every: float = 60.0,
    ) -> None:
        # Wall-clock time, as slack_sdk's verifier uses, not pimbot's domain clock.
        self._uow = uow
        self._wall_clock = wall_clock
        self._purge_every = purge_every
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: BoltRequest, next: Callable[[], None]) -> BoltResponse | None:
        if request.mode == "socket_mode":  # no signature: Slack's connection vouches for it
            next()
            return None
        timestamp = request.headers.get("x-slack-request-timestamp", [""])[0]
        signature = request.headers.get("x-slack-signature", [""])[0]
        now = self._wall_clock()
        with self._uow() as uow:
            first = uow.replays.remember(int(timestamp), signature, _utc(now))
            if self._purge_due(now):
                # Older than any signature Slack's window still accepts; one indexed DELETE.
                uow.replays.forget_before(int(now) - SIGNATURE_WINDOW_SECONDS - 60)
            uow.commit()
        if not first:
            log.warning("ignored a replayed Slack request", extra={"slack_timestamp": timestamp})
            return BoltResponse(status=200, body="")
        next()
        return None

    def _purge_due(self, now: float) -> bool:
        with self._lock:
            if now < self._next_purge:
                return False
            self._next_purge = now + self._purge_every
            return True


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def mark_verified(context: BoltContext, next: Callable[[], None]) -> None:
    """Record that this request passed Bolt's own checks (a signature in HTTP mode, the app
    token's connection in Socket Mode); the error handler answers only such requests."""
    context[_VERIFIED] = True
    next()


def is_verified(context: BoltContext) -> bool:
    return context.get(_VERIFIED) is True


def correlate_interaction(
    body: dict[str, Any], context: BoltContext, next: Callable[[], None]
) -> None:
    """Bind the interaction's correlation id (and the request id it is about, if any)."""
    context["correlation_id"] = begin_interaction(request_id=request_id_in(body))
    next()


def request_id_in(body: dict[str, Any]) -> str | None:
    """The elevation request a click or modal is about, for the logs only (never authority):
    buttons carry a request id as their value, decision modals in ``private_metadata``."""
    for action in body.get("actions") or []:
        if action.get("type") == "button" and _is_uuid(action.get("value")):
            return str(action["value"])
    metadata = (body.get("view") or {}).get("private_metadata")
    return str(metadata) if _is_uuid(metadata) else None


def _is_uuid(value: object) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


class SlackCallListener(Protocol):
    def call_finished(self, method: str, *, ok: bool | None, status: int | None) -> None: ...


class SlackCallObserver(RetryHandler):
    """Sees every Web API attempt and never retries one.

    slack_sdk asks each retry handler in turn about every response (and every connection
    error), so as the first handler this one sees them all. Bolt builds a fresh ``WebClient``
    for each request but copies ``retry_handlers`` from ``app.client``, so this survives that.
    """

    def __init__(self, listener: SlackCallListener) -> None:
        super().__init__(max_retry_count=0)
        self._listener = listener

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = urlsplit(request.url).path.rsplit("/", 1)[-1] or "unknown"
        if response is None:
            self._listener.call_finished(method, ok=None, status=None)
        else:
            ok = bool((response.body or {}).get("ok")) if response.status_code == 200 else False
            self._listener.call_finished(method, ok=ok, status=response.status_code)
        return False

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return False


def observe_slack_calls(handlers: list[RetryHandler], listener: SlackCallListener) -> None:
    """Put a ``SlackCallObserver`` first in a client's ``retry_handlers`` (once)."""
    if not any(isinstance(h, SlackCallObserver) for h in handlers):
        handlers.insert(0, SlackCallObserver(listener))

"""Cross-cutting Slack concerns: a correlation id per interaction, and counting Web API calls.

Bolt runs global middleware on the thread that received the request, then acks and runs the
listener on its listener executor. ``contextvars`` do not follow work into a
``ThreadPoolExecutor`` by themselves, so the runtime gives Bolt a ``ContextPreservingExecutor``:
each listener runs in a copy of the context the middleware bound the ids in.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from slack_bolt import App, BoltContext
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState

from bot.logs import begin_interaction

P = ParamSpec("P")
T = TypeVar("T")


_VERIFIED = "pimbot_verified"


def register(app: App) -> None:
    # First of pimbot's middleware, so after Bolt's signature verification (Bolt's built-in
    # middleware always runs before ``app.use`` ones): only a verified request gets here.
    app.use(mark_verified)
    app.use(correlate_interaction)


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


class ContextPreservingExecutor(ThreadPoolExecutor):
    """Runs each task in a copy of the submitting thread's ``contextvars`` context."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def run() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(run)


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

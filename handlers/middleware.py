"""Cross-cutting Slack concerns: a correlation id per interaction, and counting Web API calls.

Bolt runs global middleware on the thread that received the request, then acks and runs the
listener on its listener executor. ``contextvars`` do not follow work into a
``ThreadPoolExecutor`` by themselves, so the runtime gives Bolt a ``ContextPreservingExecutor``:
each listener runs in a copy of the context the middleware bound the ids in.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

from slack_bolt import App, BoltContext
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState

from bot.logs import begin_interaction

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Bodies larger than this are left to the HTTP layer's own size limit, unread here.
_INSPECTED_BODY = 1024 * 1024
SIGNATURE_MAX_AGE = 5 * 60  # seconds, as Slack and Bolt allow


def register(app: App) -> None:
    app.use(correlate_interaction)


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


def refuse_unparsable_bodies(
    app: WSGIApp, *, signing_secret: str, path: str = "/slack/events"
) -> WSGIApp:
    """Answer a Slack body Bolt could not parse before Bolt tries (it raises, which is a 500).

    Bolt parses the body (``payload=<json>``, or JSON) while building its request, before
    its signature check and any middleware. So this looks first: a body that is not UTF-8,
    not JSON where JSON belongs, or not a JSON object is answered 400 when correctly signed
    and 401 when not, and nothing is sent to Slack. The body is never logged.
    """
    secret = signing_secret.encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path or environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= _INSPECTED_BODY or "wsgi.input" not in environ:
            return app(environ, start_response)
        raw = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(raw)
        problem = body_problem(raw, environ.get("CONTENT_TYPE"))
        if problem is None:
            return app(environ, start_response)
        signed = _is_signed(secret, raw, environ)
        log.warning("refused a Slack request body: %s", problem, extra={"signed": signed})
        status = "400 Bad Request" if signed else "401 Unauthorized"
        answer = json.dumps({"error": problem if signed else "invalid signature"}).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        )
        return [answer]

    return guarded


def body_problem(raw: bytes, content_type: str | None) -> str | None:
    """What Bolt's ``parse_body`` would choke on in this body, or None if it parses."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if (content_type or "").split(";")[0].strip() == "application/json" or body.startswith("{"):
        return _json_problem(body, "the body")
    if "payload" in body:
        payload = dict(parse_qsl(body, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _json_problem(payload, "the payload field")
    return None


def _json_problem(text: str, what: str) -> str | None:
    try:
        parsed = json.loads(text)
    except ValueError:
        return f"{what} is not JSON"
    return None if isinstance(parsed, dict) else f"{what} is not a JSON object"


def _is_signed(secret: bytes, raw: bytes, environ: dict[str, Any]) -> bool:
    """Slack's v0 signature over the raw bytes (which need not be UTF-8 here), fresh."""
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
    if not (timestamp.isascii() and timestamp.isdigit()) or not signature:
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


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

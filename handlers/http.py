"""HTTP mode: one WSGI app serving Slack's endpoint, the health check and the metrics."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import waitress
from prometheus_client import CollectorRegistry, make_wsgi_app
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.app.logs import bind_correlation_id
from bot.use_cases.delegated import SignInOutcome
from handlers.pages import PAGE_HEADERS, error_page, sign_in_page

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
EVENTS_PATH = "/slack/events"
CALLBACK_PATH = "/auth/callback"
# Microsoft's redirect carries code, state, session_state (and error text): a few KB at most.
MAX_CALLBACK_QUERY = 16 * 1024
# Slack's payloads are a few kilobytes (a view submission with every block filled in stays far
# below this); anything bigger is refused before its body is read.
DEFAULT_MAX_BODY = 1024 * 1024
# Slack signs with the Unix time in whole seconds and ``v0=`` + 64 hex digits. Anything else is
# refused here: slack_sdk's verifier raises on a non-numeric timestamp or a non-ASCII
# signature, and an exception there would reach Bolt's error handler (which answers people).
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}", re.ASCII)

log = logging.getLogger(__name__)
_NOT_UTF8 = "the body is not UTF-8"


def make_http_app(
    app: App,
    *,
    health: Callable[[], dict[str, Any]],
    registry: CollectorRegistry,
    signing_secret: str | None,
    max_body: int = DEFAULT_MAX_BODY,
    events: bool = True,
    ops: bool = True,
    sign_in: Callable[[dict[str, str]], SignInOutcome] | None = None,
) -> WSGIApp:
    """``POST /slack/events`` (``events``), ``GET /healthz`` and ``GET /metrics`` (``ops``),
    and ``GET /auth/callback`` where people's sign-ins end (``sign_in``, delegated mode).

    Slack's endpoint is guarded at the door, before Bolt sees anything: the body is read only
    up to ``max_body`` bytes (413 beyond), and only a request whose signature verifies is
    dispatched (401 otherwise, with a log line that never carries the body). Bolt verifies again.
    """
    slack = SlackRequestHandler(app)
    metrics = make_wsgi_app(registry)
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if events and path == EVENTS_PATH and method == "POST":
            # A fresh context per request: waitress reuses threads, and ids must not leak from
            # one interaction to the next. Binding at the door means Bolt's own lines (say, a
            # bad signature) carry the id the middleware then adopts for the interaction.
            return contextvars.Context().run(
                _correlated, slack, verifier, max_body, environ, start_response
            )
        if ops and path == "/healthz" and method in ("GET", "HEAD"):
            status = health()
            code = "200 OK" if status.get("ok") else "503 Service Unavailable"
            return _json(start_response, code, status)
        if ops and path == "/metrics" and method == "GET":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if sign_in is not None and path == CALLBACK_PATH and method in ("GET", "POST"):
            return contextvars.Context().run(_sign_in_callback, sign_in, environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found"})

    return application


def _sign_in_callback(
    sign_in: Callable[[dict[str, str]], SignInOutcome],
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> list[bytes]:
    """The browser back from Microsoft's sign-in: a form POST (``response_mode=form_post``)
    or, for errors some clients report in the URL, a GET. It carries a one-time code: never
    logged, and the page is never cached or sent on as a referrer."""
    reference = bind_correlation_id()
    if environ.get("REQUEST_METHOD") == "POST":
        body = _read_body(environ, MAX_CALLBACK_QUERY)
        if body is None:
            return _html(start_response, "413 Payload Too Large", error_page(reference))
        try:
            query = body.decode("utf-8")
        except UnicodeDecodeError:
            return _html(start_response, "400 Bad Request", error_page(reference))
    else:
        query = environ.get("QUERY_STRING", "")
    if len(query) > MAX_CALLBACK_QUERY:
        return _html(start_response, "414 URI Too Long", error_page(reference))
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=20)
    except ValueError:
        return _html(start_response, "400 Bad Request", error_page(reference))
    params = dict(pairs)
    try:
        outcome = sign_in(params)
    except Exception:
        # No traceback reaches a web page: the person gets a reference, the log the rest.
        log.exception("sign-in callback failed")
        return _html(start_response, "500 Internal Server Error", error_page(reference))
    status = "200 OK" if outcome.ok else "400 Bad Request"
    return _html(start_response, status, sign_in_page(outcome))


def _html(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    start_response(status, [*PAGE_HEADERS, ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response: Callable[..., Any], status: str, content: object) -> list[bytes]:
    body = json.dumps(content).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _correlated(
    app: WSGIApp,
    verifier: SignatureVerifier | None,
    max_body: int,
    environ: dict[str, Any],
    start_response: Callable[..., Any],
) -> Iterable[bytes]:
    bind_correlation_id()
    body = _read_body(environ, max_body)
    if body is None:
        log.warning("refused a Slack request over %d bytes", max_body)
        return _json(start_response, "413 Payload Too Large", {"error": "request too large"})
    problem = _unverified(verifier, environ, body)
    if problem == _NOT_UTF8:
        # Slack only sends UTF-8 (so this is not Slack), and nothing can be verified or
        # answered on it: 400, and nothing sent anywhere.
        log.warning("refused a Slack request: %s", problem)
        return _json(start_response, "400 Bad Request", {"error": problem})
    if problem is not None:
        # Never the body, nor the headers' values: a forger chooses both.
        log.warning("refused an unverified Slack request: %s", problem)
        return _json(start_response, "401 Unauthorized", {"error": "invalid request"})
    # Bolt parses the body (``payload=<json>``, or JSON) before any listener and raises on
    # one it cannot parse, which would be a 500: a signed but broken body is a 400 here.
    unparsable = body_problem(body, environ.get("CONTENT_TYPE"))
    if unparsable is not None:
        log.warning("refused a signed Slack request: %s", unparsable)
        return _json(start_response, "400 Bad Request", {"error": unparsable})
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return app(environ, start_response)


def _read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` (then it is not read)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared.strip():
        try:
            length = int(declared)
        except ValueError:
            return None
        if length < 0 or length > limit:
            return None
        return bytes(stream.read(length))
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no end-of-stream promise: PEP 3333 says read nothing
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
    return None


def _unverified(
    verifier: SignatureVerifier | None, environ: dict[str, Any], body: bytes
) -> str | None:
    """Why this request is not Slack's, or None when its signature verifies."""
    if verifier is None:
        return "no signing secret is configured"
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        return "malformed or missing X-Slack-Request-Timestamp"
    if not _SIGNATURE.fullmatch(signature):
        return "malformed or missing X-Slack-Signature"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _NOT_UTF8
    if not verifier.is_valid(text, timestamp, signature):
        return "bad signature or a timestamp outside Slack's five minutes"
    return None


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


class BackgroundHttpServer:
    """waitress on its own thread, for the demo and the tests (``pimbot run`` blocks instead)."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 16,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self._server: Any = waitress.create_server(
            app, host=host, port=port, threads=threads, **waitress_options(max_body)
        )
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="pimbot-http")

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> BackgroundHttpServer:
        self._thread.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting connections, let requests being served finish (up to ``grace``
        seconds), then close the listener and every open connection."""
        self._stopping = True
        # Not accepting: new connections wait in the kernel's backlog and are reset at close,
        # while the loop keeps flushing the answers of requests already being served.
        self._server.accepting = False
        self._server.trigger.pull_trigger()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=grace)
        self._server.close()
        self._thread.join(timeout=5)
        # Closing the listener leaves accepted keep-alive connections open; close them too
        # rather than leave their sockets to the garbage collector.
        for channel in list(self._server._map.values()):
            channel.close()

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            # Closing the listening socket under a running select() is how waitress stops.
            if not self._stopping:
                raise


def waitress_options(max_body: int) -> dict[str, Any]:
    """What every pimbot waitress server is given: it refuses (413) a body over ``max_body``
    itself, chunked or not, before buffering it; the WSGI app checks again for other servers."""
    return {"max_request_body_size": max_body, "clear_untrusted_proxy_headers": True}

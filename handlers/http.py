"""HTTP mode: one WSGI app serving Slack's endpoint, the health check and the metrics."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import waitress
from prometheus_client import CollectorRegistry, make_wsgi_app
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.logs import bind_correlation_id

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
EVENTS_PATH = "/slack/events"


def make_http_app(
    app: App, *, health: Callable[[], dict[str, Any]], registry: CollectorRegistry
) -> WSGIApp:
    """``POST /slack/events`` (signature-verified by Bolt), ``GET /healthz``, ``GET /metrics``."""
    slack = SlackRequestHandler(app)
    metrics = make_wsgi_app(registry)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == EVENTS_PATH and method == "POST":
            # A fresh context per request: waitress reuses threads, and ids must not leak from
            # one interaction to the next. Binding at the door means Bolt's own lines (say, a
            # bad signature) carry the id the middleware then adopts for the interaction.
            return contextvars.Context().run(_correlated, slack, environ, start_response)
        if path == "/healthz" and method in ("GET", "HEAD"):
            status = health()
            code = "200 OK" if status.get("ok") else "503 Service Unavailable"
            body = json.dumps(status).encode()
            start_response(
                code, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if path == "/metrics" and method == "GET":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        body = b'{"error": "not found"}'
        start_response(
            "404 Not Found",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return application


def _correlated(
    app: WSGIApp, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    bind_correlation_id()
    return app(environ, start_response)


class BackgroundHttpServer:
    """waitress on its own thread, for the demo and the tests (``pimbot run`` blocks instead)."""

    def __init__(
        self, app: WSGIApp, *, host: str = "127.0.0.1", port: int = 0, threads: int = 16
    ) -> None:
        self._server: Any = waitress.create_server(app, host=host, port=port, threads=threads)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="pimbot-http")

    @property
    def url(self) -> str:
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> BackgroundHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._server.task_dispatcher.shutdown()
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

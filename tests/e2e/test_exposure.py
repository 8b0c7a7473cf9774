"""What pimbot exposes: the bind address, a separate port for /healthz and /metrics, and no
plain-HTTP calls to Graph, Entra ID or Slack beyond this machine."""

from __future__ import annotations

import errno
import gc
import socket
import warnings
from collections.abc import Callable

import httpx
import pytest

from bot.app.runtime import http_servers
from bot.app.settings import Settings, is_loopback
from bot.domain.errors import ConfigurationError
from handlers.http import BackgroundHttpServer
from tests.e2e.conftest import ADA, Stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _servers_on_a_free_metrics_port(
    make_stack: Callable[..., Stack],
) -> tuple[Stack, int, list[BackgroundHttpServer]]:
    """The metrics port must be a fixed number, so it is picked free and then bound: another
    test worker can take it in between. Pick again then (a few times at most). waitress leaves
    the sockets of a server whose bind failed to the garbage collector: collect them here."""
    for _attempt in range(5):
        metrics_port = _free_port()
        stack = make_stack(PIMBOT_HOST="127.0.0.1", PIMBOT_METRICS_PORT=str(metrics_port))
        try:
            servers = http_servers(stack.runtime, stack.runtime.settings, port=0)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        else:
            return stack, metrics_port, [s.start() for s in servers]
        # Outside the except block: while the exception lives, its traceback keeps the
        # half-built servers alive, and they would be collected later, in another test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    raise AssertionError("no free port for the metrics listener after 5 tries")


def test_health_and_metrics_move_to_their_own_port(make_stack: Callable[..., Stack]) -> None:
    stack, metrics_port, servers = _servers_on_a_free_metrics_port(make_stack)
    try:
        main, ops = (s.url for s in servers)
        assert main.startswith("http://127.0.0.1:") and ops == f"http://127.0.0.1:{metrics_port}"
        assert httpx.get(f"{main}/healthz").status_code == 404
        assert httpx.get(f"{main}/metrics").status_code == 404
        assert httpx.get(f"{ops}/healthz").json() == {"ok": True, "database": "ok"}
        assert "pimbot" in httpx.get(f"{ops}/metrics").text
        signed = stack.sender.build_command("/pim", "help", user=ADA)
        assert (
            httpx.post(
                f"{ops}/slack/events", content=signed.body, headers=signed.headers
            ).status_code
            == 404
        )
        answer = httpx.post(f"{main}/slack/events", content=signed.body, headers=signed.headers)
        assert answer.status_code == 200 and answer.text
    finally:
        for server in servers:
            server.stop()


def test_without_a_metrics_port_everything_is_on_the_main_port(stack: Stack) -> None:
    [server] = http_servers(stack.runtime, stack.runtime.settings, port=0)
    server.start()
    try:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    "name",
    ["PIMBOT_GRAPH_URL", "PIMBOT_SLACK_API_URL", "AZURE_AUTHORITY_HOST", "PIMBOT_PUBLIC_URL"],
)
def test_plain_http_endpoints_are_refused_beyond_loopback(name: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({name: "http://graph.example.com/v1.0"})
    assert name in refused.value.user_message and "https://" in refused.value.user_message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8443/v1.0", "http://127.9.9.9/", "http://[::1]:80/", "http://localhost/"],
)
def test_plain_http_is_allowed_on_loopback(url: str) -> None:
    settings = Settings.from_env({"PIMBOT_GRAPH_URL": url, "PIMBOT_SLACK_API_URL": url})
    assert settings.graph_url == url


def test_loopback_is_loopback_only() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("LOCALHOST")
    for host in ("10.0.0.1", "localhost.example.com", "128.0.0.1", "0.0.0.0", ""):
        assert not is_loopback(host)


def test_the_metrics_port_must_differ_from_the_main_one() -> None:
    with pytest.raises(ConfigurationError, match="PIMBOT_METRICS_PORT"):
        Settings.from_env({"PIMBOT_PORT": "3000", "PIMBOT_METRICS_PORT": "3000"})


def test_a_metrics_host_needs_a_metrics_port() -> None:
    with pytest.raises(ConfigurationError, match="PIMBOT_METRICS_HOST"):
        Settings.from_env({"PIMBOT_METRICS_HOST": "127.0.0.1"})

"""Helpers for the Graph client tests: recorded payloads and a client on httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.adapters.graph import GraphPimClient, RetryPolicy

RESPONSES = Path(__file__).parent / "responses"
GRAPH = "https://graph.microsoft.com/v1.0"
NOW = datetime(2024, 5, 2, 10, 15, 0, tzinfo=UTC)
TOKEN = "eyJ0eXAi.secret-token-value.sig"


def load(name: str) -> Any:
    return json.loads((RESPONSES / name).read_text())


def reply(status: int = 200, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


class StaticToken:
    def __init__(self) -> None:
        self.calls = 0

    def token(self, claims_challenge: str | None = None) -> str:
        self.calls += 1
        return TOKEN


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Graph:
    """A MockTransport handler that records every request and answers from ``routes``."""

    routes: list[tuple[str, str, Handler | httpx.Response]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def on(self, method: str, url_prefix: str, answer: Handler | httpx.Response) -> Graph:
        self.routes.append((method, url_prefix, answer))
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        for method, prefix, answer in self.routes:
            if request.method == method and url.startswith(GRAPH + prefix):
                return answer(request) if callable(answer) else answer
        return reply(404, {"error": {"code": "Request_ResourceNotFound", "message": url}})

    def urls(self, method: str | None = None) -> list[str]:
        return [str(r.url) for r in self.requests if method in (None, r.method)]

    def bodies(self, method: str = "POST") -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method]

    def client(self, **kwargs: Any) -> GraphPimClient:
        http = httpx.Client(base_url=GRAPH, transport=httpx.MockTransport(self))
        kwargs.setdefault("retry", RetryPolicy(attempts=4, max_total_wait=30.0))
        return GraphPimClient(
            http, StaticToken(), sleep=self.sleeps.append, now=lambda: NOW, **kwargs
        )


@pytest.fixture
def graph() -> Graph:
    return Graph()

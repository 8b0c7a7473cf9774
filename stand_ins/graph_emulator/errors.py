"""Graph's JSON error envelope and the errors the emulated endpoints raise."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Response

from stand_ins.graph_emulator.isotime import format_instant


class DropConnection(ConnectionAbortedError):
    """Close the client's connection without any response (fault injection)."""


class GraphError(Exception):
    """An error answer in Graph's envelope: ``{"error": {"code", "message", "innerError"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner = inner or {}


def not_found(resource_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{resource_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body), status=status, content_type="application/json; odata.metadata=minimal"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: GraphError, *, now: datetime, client_request_id: str | None) -> Response:
    request_id = str(uuid.uuid4())
    # Key order and the "innerError" casing follow the Graph errors docs example.
    inner: dict[str, Any] = {
        "date": (format_instant(now.replace(microsecond=0)) or "")[:-1],
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
        **error.inner,
    }
    body = {"error": {"code": error.code, "message": error.message, "innerError": inner}}
    headers = {
        "request-id": request_id,
        "client-request-id": inner["client-request-id"],
        **error.headers,
    }
    return json_response(body, error.status, headers)

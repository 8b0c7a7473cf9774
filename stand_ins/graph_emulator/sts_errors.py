"""The token service's AADSTS error answers and their JSON body."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from werkzeug.wrappers import Response

from stand_ins.graph_emulator.errors import json_response


class StsError(Exception):
    """An AADSTS error answer of the token service."""

    def __init__(
        self,
        status: int,
        error: str,
        code: int,
        description: str,
        *,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status, self.error, self.code, self.description = status, error, code, description
        # Further members of the body, e.g. "suberror" and "claims" of an interaction-required
        # answer.
        self.extra = extra or {}


def invalid_client(code: int, description: str) -> StsError:
    """Entra answers bad client credentials with 401 ``invalid_client``."""
    return StsError(401, "invalid_client", code, description)


def missing_parameter(parameter: str) -> StsError:
    return StsError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def invalid_grant(code: int, description: str, **extra: str) -> StsError:
    return StsError(400, "invalid_grant", code, description, extra=extra)


def sts_error_response(error: StsError, base_url: str) -> Response:
    """Entra's error body: error, error_description with trace ids, error_codes, timestamp..."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{error.code}: {error.description} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
    )
    body = {
        "error": error.error,
        "error_description": description,
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{base_url}/error?code={error.code}",
        **error.extra,
    }
    return json_response(body, error.status)

"""Graph error responses → pimbot's domain errors, with messages a person can act on.

Graph's envelope is ``{"error": {"code", "message", "innerError"|"innererror"}}``. PIM puts
the interesting part in ``message``: the failed policy rules (two formats, see
``failed_rules``) and, for authentication contexts, a URL-encoded claims challenge.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import httpx

from bot.domain.elevation import RoleRef
from bot.domain.errors import (
    ActiveDurationTooShort,
    AssignmentExists,
    AssignmentNotFound,
    AuthenticationContextRequired,
    PimAuthError,
    PimError,
    PimRejected,
    PimThrottled,
    PimUnavailable,
    PolicyValidationFailed,
)

POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
ACRS_FAILED = "RoleAssignmentRequestAcrsValidationFailed"

_RULE_NAME = re.compile(r"\b([A-Z][A-Za-z]*Rule)\b")
_CLAIMS = re.compile(r"claims=", re.IGNORECASE)
_HEADER_CLAIMS = re.compile(r'claims="([^"]+)"', re.IGNORECASE)


class GraphError:
    """The parts of a Graph error response pimbot uses."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        body = _json(response)
        error = body.get("error") if isinstance(body, Mapping) else None
        error = error if isinstance(error, Mapping) else {}
        self.code = str(error.get("code") or "") or None
        self.message = str(error.get("message") or "")
        inner = error.get("innerError") or error.get("innererror") or {}
        inner = inner if isinstance(inner, Mapping) else {}
        self.request_id = inner.get("request-id") or response.headers.get("request-id")
        self.www_authenticate = response.headers.get("WWW-Authenticate", "")


def error_from_response(response: httpx.Response, *, role: RoleRef | None = None) -> PimError:
    """The domain error for a non-2xx Graph response."""
    error = GraphError(response)
    role_name = role.display_name if role else "the role"
    code, status = error.code, error.status
    if code == ACRS_FAILED or ACRS_FAILED in error.message or _header_claims(error):
        return AuthenticationContextRequired(
            f"{role_name} requires a Conditional Access authentication context on activation; "
            "sign in again with that context (delegated mode) or activate it in the Azure portal.",
            claims=extract_claims(error.message) or _header_claims(error),
            status=status,
        )
    if code == POLICY_FAILED:
        rules = failed_rules(error.message)
        return PolicyValidationFailed(
            policy_message(rules, role_name), failed_rules=rules, status=status
        )
    if code == "RoleAssignmentExists":
        return AssignmentExists(
            f"{role_name} is already active (or a request for it is already pending) in PIM.",
            code=code,
            status=status,
        )
    if code == "RoleAssignmentDoesNotExist":
        return AssignmentNotFound(
            f"{role_name} is not active in PIM, so there is nothing to end or extend. "
            "If it was activated a moment ago, try again in a minute.",
            code=code,
            status=status,
        )
    if code == "ActiveDurationTooShort":
        return ActiveDurationTooShort(
            f"PIM does not allow ending {role_name} within five minutes of activation. "
            "Try again in a few minutes.",
            code=code,
            status=status,
        )
    return _by_status(error, role_name)


def _by_status(error: GraphError, role_name: str) -> PimError:
    code, status, ref = error.code, error.status, _reference(error)
    if status == 401:
        return PimAuthError(
            f"Microsoft Graph did not accept pimbot's token ({code or 401}){ref}. Check that "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and PIMBOT_GRAPH_URL belong to the same cloud.",
            code=code,
            status=status,
        )
    if status == 403:
        return PimAuthError(
            f"pimbot's app registration lacks permission for this ({code or 403}){ref}. Grant "
            "admin consent for RoleManagement.ReadWrite.Directory (or the narrower "
            "RoleAssignmentSchedule/RoleEligibilitySchedule/RoleManagementPolicy permissions) "
            "and User.Read.All / GroupMember.Read.All.",
            code=code,
            status=status,
        )
    if status == 429:
        return PimThrottled(
            f"Microsoft Graph is throttling pimbot{ref}. Try again in a minute.",
            code=code or "TooManyRequests",
            status=status,
        )
    if status >= 500:
        return PimUnavailable(
            f"Microsoft Graph had a problem ({status} {code or ''}".rstrip()
            + f"){ref}. Try again in a few minutes.",
            code=code,
            status=status,
        )
    detail = error.message.strip() or "no details given"
    return PimRejected(
        f"PIM refused the request for {role_name}: {detail} ({code or status}){ref}.",
        code=code,
        status=status,
    )


def _reference(error: GraphError) -> str:
    return f" [request-id {error.request_id}]" if error.request_id else ""


# --- policy rules ---------------------------------------------------------------------------

_RULE_WORDS = {
    "ExpirationRule": "the requested duration is longer than {role}'s maximum in PIM "
    "(or no end time was given)",
    "JustificationRule": "PIM requires a justification for {role}",
    "TicketingRule": "PIM requires ticket information (number and system) for {role}",
    "EligibilityRule": "the person is not eligible for {role} in PIM right now",
    "MfaRule": "{role} requires multi-factor authentication on activation, which pimbot's "
    "app token cannot prove; activate it in the Azure portal or through delegated mode",
}


def failed_rules(message: str) -> tuple[str, ...]:
    """Rule names from both message formats PIM uses.

    ``The following policy rules failed: ["JustificationRule","ExpirationRule"]`` (documented)
    and ``The following policy rules failed: JustificationRule - Justification is required``
    (seen in newer responses).
    """
    _, _, tail = message.partition(":")
    names = _RULE_NAME.findall(tail or message)
    return tuple(dict.fromkeys(names))


def policy_message(rules: tuple[str, ...], role_name: str) -> str:
    if not rules:
        return f"PIM refused the request for {role_name}: its policy rules were not met."
    parts = [_RULE_WORDS.get(r, f"PIM's {r} was not met").format(role=role_name) for r in rules]
    return f"PIM refused the request for {role_name}: " + "; ".join(parts) + "."


# --- claims challenges ----------------------------------------------------------------------


def extract_claims(message: str) -> str | None:
    """The claims JSON inside PIM's ACRS error message (URL-encoded, raw or base64)."""
    match = _CLAIMS.search(message)
    if match is None:
        return None
    raw = message[match.end() :]
    if not raw.startswith("{"):
        raw = re.split(r"[\s&\"']", raw, maxsplit=1)[0]
    return decode_claims(raw)


def decode_claims(raw: str) -> str | None:
    for candidate in (raw, unquote(raw)):
        if candidate.lstrip().startswith("{"):
            return _balanced_json(candidate.lstrip())
    try:
        padded = unquote(raw) + "=" * (-len(unquote(raw)) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return _balanced_json(decoded) if decoded.lstrip().startswith("{") else None


def _balanced_json(text: str) -> str | None:
    depth = 0
    for index, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            candidate = text[: index + 1]
            return candidate if _is_json(candidate) else None
    return None


def _header_claims(error: GraphError) -> str | None:
    match = _HEADER_CLAIMS.search(error.www_authenticate)
    return decode_claims(match.group(1)) if match else None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None

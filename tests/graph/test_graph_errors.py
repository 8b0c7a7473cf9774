"""Graph error bodies → domain errors with Graph's code and a message a person understands."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
import pytest

from bot.adapters.graph.errors import error_from_response, extract_claims, failed_rules
from bot.domain.elevation import RoleRef
from bot.domain.errors import (
    ActiveDurationTooShort,
    AssignmentExists,
    AssignmentNotFound,
    AuthenticationContextRequired,
    PimAuthError,
    PimError,
    PimRejected,
    PimUnavailable,
    PolicyValidationFailed,
)
from bot.domain.ports import ActivationRequest
from tests.graph.conftest import TOKEN, Graph, load, reply

ROLE = RoleRef("fdd7a751-b60b-444a-984c-02652fe8fa1c", "Groups Administrator")
CLAIMS = '{"access_token":{"acrs":{"essential":true, "value":"c1"}}}'


def _error(name: str, status: int = 400, **headers: str) -> PimError:
    return error_from_response(reply(status, load(name), **headers), role=ROLE)


def test_policy_failure_in_the_documented_list_format_names_every_rule() -> None:
    error = _error("error-policy-validation-failed-list.json")

    assert isinstance(error, PolicyValidationFailed)
    assert error.failed_rules == ("JustificationRule", "ExpirationRule")
    assert error.code == "RoleAssignmentRequestPolicyValidationFailed" and error.status == 400
    assert "requires a justification for Groups Administrator" in error.user_message
    assert "longer than Groups Administrator's maximum" in error.user_message


def test_policy_failure_in_the_newer_text_format_and_lowercase_innererror() -> None:
    error = _error("error-policy-validation-failed-text.json")

    assert isinstance(error, PolicyValidationFailed)
    assert error.failed_rules == ("JustificationRule",)


@pytest.mark.parametrize(
    ("message", "rules", "words"),
    [
        (
            'The following policy rules failed: ["EligibilityRule"]',
            ("EligibilityRule",),
            "not eligible",
        ),
        ('The following policy rules failed: ["TicketingRule"]', ("TicketingRule",), "ticket"),
        (
            "The following policy rules failed: MfaRule - Multi-factor authentication is required",
            ("MfaRule",),
            "multi-factor authentication",
        ),
        (
            'The following policy rules failed: ["EligibilityRule","ExpirationRule"]',
            ("EligibilityRule", "ExpirationRule"),
            "maximum",
        ),
    ],
)
def test_each_policy_rule_is_explained_in_words(
    message: str, rules: tuple[str, ...], words: str
) -> None:
    body = {"error": {"code": "RoleAssignmentRequestPolicyValidationFailed", "message": message}}
    error = error_from_response(reply(400, body), role=ROLE)

    assert isinstance(error, PolicyValidationFailed)
    assert error.failed_rules == rules
    assert words in error.user_message


def test_failed_rules_tolerates_a_message_without_rules() -> None:
    assert failed_rules("The following policy rules failed: ") == ()


@pytest.mark.parametrize(
    ("name", "kind", "code", "words"),
    [
        (
            "error-role-assignment-exists.json",
            AssignmentExists,
            "RoleAssignmentExists",
            "already active",
        ),
        (
            "error-role-assignment-does-not-exist.json",
            AssignmentNotFound,
            "RoleAssignmentDoesNotExist",
            "not active",
        ),
        (
            "error-active-duration-too-short.json",
            ActiveDurationTooShort,
            "ActiveDurationTooShort",
            "five minutes",
        ),
    ],
)
def test_pim_codes_map_to_their_domain_errors(
    name: str, kind: type[PimError], code: str, words: str
) -> None:
    error = _error(name)

    assert type(error) is kind and error.code == code
    assert words in error.user_message


def test_acrs_failure_carries_the_decoded_claims_challenge() -> None:
    error = _error("error-acrs-validation-failed.json")

    assert isinstance(error, AuthenticationContextRequired)
    assert error.claims == CLAIMS
    assert json.loads(error.claims)["access_token"]["acrs"]["value"] == "c1"
    assert "authentication context" in error.user_message


def test_acrs_claims_in_raw_json_and_base64_forms_are_decoded() -> None:
    raw = f"RoleAssignmentRequestAcrsValidationFailed claims={CLAIMS} please retry"
    encoded = base64.b64encode(CLAIMS.encode()).decode()

    assert extract_claims(raw) == CLAIMS
    assert extract_claims(f"denied: claims={encoded}") == CLAIMS
    assert extract_claims("no challenge here") is None


def test_acrs_wrapped_in_an_unknown_error_is_still_recognised() -> None:
    body = {
        "error": {
            "code": "UnknownError",
            "message": f"RoleAssignmentRequestAcrsValidationFailed claims={CLAIMS}",
        }
    }

    error = error_from_response(reply(400, body))

    assert isinstance(error, AuthenticationContextRequired) and error.claims == CLAIMS


def test_a_www_authenticate_claims_directive_is_accepted() -> None:
    encoded = base64.b64encode(CLAIMS.encode()).decode()
    header = f'Bearer realm="", error="insufficient_claims", claims="{encoded}"'
    body = {"error": {"code": "InvalidAuthenticationToken", "message": "claims required"}}

    error = error_from_response(reply(401, body, **{"WWW-Authenticate": header}))

    assert isinstance(error, AuthenticationContextRequired)
    assert error.claims == CLAIMS and error.status == 401


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, PimAuthError, "did not accept pimbot's token"),
        (403, PimAuthError, "lacks permission"),
        (500, PimUnavailable, "had a problem"),
        (404, PimRejected, "refused"),
    ],
)
def test_http_statuses_without_pim_codes(status: int, kind: type[PimError], words: str) -> None:
    body = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges",
            "innerError": {"request-id": "req-7"},
        }
    }

    error = error_from_response(reply(status, body), role=ROLE)

    assert type(error) is kind and error.status == status
    assert words in error.user_message and "req-7" in error.user_message


def test_a_non_json_error_body_still_becomes_a_domain_error() -> None:
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))

    assert isinstance(error, PimUnavailable) and error.status == 502


def test_errors_raised_by_the_client_never_contain_the_token(graph: Graph) -> None:
    graph.on(
        "POST", "/roleManagement", reply(400, load("error-policy-validation-failed-list.json"))
    )

    with pytest.raises(PolicyValidationFailed) as caught:
        graph.client().activate(ActivationRequest("p", ROLE, timedelta(hours=9), "why"))

    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert len(graph.bodies()) == 1  # a 400 is an answer, not a reason to retry

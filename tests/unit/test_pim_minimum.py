"""PIM's five-minute minimum is one constant, and every limit pimbot checks follows it."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.elevation import ElevationRequest, RequestStatus
from bot.domain.errors import ConfigurationError, ValidationFailed
from bot.domain.rules import DURATION, MIN_DURATION
from bot.use_cases.services import _check_extension_bounds
from tests.fakes import ADA, GLOBAL_ADMIN, GRACE, T0

UNDER = MIN_DURATION - timedelta(seconds=1)


def test_the_minimum_is_pims_five_minutes() -> None:
    assert timedelta(minutes=5) == MIN_DURATION


@pytest.mark.parametrize(
    "rules",
    [
        lambda d: {"self_extension": {"up_to": d}},
        lambda d: {"max_duration": d},
    ],
    ids=["self_extension.up_to", "max_duration"],
)
def test_the_policy_file_refuses_limits_under_the_minimum(rules) -> None:  # type: ignore[no-untyped-def]
    parse_policy({"roles": {"Global Administrator": rules("5m")}})
    with pytest.raises(ConfigurationError) as caught:
        parse_policy({"roles": {"Global Administrator": rules("4m")}})
    assert "between 5m and 24h" in str(caught.value.user_message) + str(caught.value)


def test_an_extension_under_the_minimum_is_refused() -> None:
    request = ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=timedelta(hours=1), reason="inc 4711", at=T0
    )
    request.approve(GRACE, at=T0)
    request.mark_active(starts_at=T0, ends_at=T0 + timedelta(hours=1), graph_request_id="g", at=T0)
    assert request.status is RequestStatus.ACTIVE
    rules = SimpleNamespace(max_duration=timedelta(hours=8), role=GLOBAL_ADMIN)
    with pytest.raises(ValidationFailed) as caught:
        _check_extension_bounds(request, UNDER, rules, T0)  # type: ignore[arg-type]
    assert caught.value.field_errors[DURATION] == "Extend by at least 5m."
    _check_extension_bounds(request, MIN_DURATION, rules, T0)  # type: ignore[arg-type]

"""Retries only where safe: throttling and transport failures on reads; creates never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot.adapters.graph import RetryPolicy
from bot.adapters.graph.transport import retry_after
from bot.domain.elevation import RoleRef
from bot.domain.errors import AssignmentExists, PimThrottled, PimUnavailable
from bot.domain.ports import ActivationRequest
from tests.graph.conftest import NOW, Graph, load, reply

ADA = "a04d60fe-235d-4247-b13c-0bc1b19bc3e4"
ROLE = RoleRef("fdd7a751-b60b-444a-984c-02652fe8fa1c", "Groups Administrator")
REQUEST = ActivationRequest(ADA, ROLE, timedelta(hours=1), "Rotate the helpdesk owners")
THROTTLED = load("error-too-many-requests.json")


def sequence(*answers: httpx.Response | Exception) -> object:
    pending = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        item = pending.pop(0) if len(pending) > 1 else pending[0]
        if isinstance(item, Exception):
            raise item
        return item

    return answer


@pytest.mark.parametrize(
    ("header", "seconds"), [("1.5", 1.5), ("2.128", 2.128), ("10", 10.0), ("0", 0.0)]
)
def test_retry_after_accepts_fractional_seconds(header: str, seconds: float) -> None:
    assert retry_after(header) == pytest.approx(seconds)


def test_retry_after_accepts_an_http_date() -> None:
    now = datetime(2024, 5, 2, 10, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=7), usegmt=True)

    assert retry_after(header, now=now) == pytest.approx(7.0)
    assert retry_after("soon") is None and retry_after(None) is None


def test_throttled_reads_wait_as_told_then_succeed(graph: Graph) -> None:
    graph.on(
        "GET",
        "/users/",
        sequence(
            reply(429, THROTTLED, **{"Retry-After": "2.128"}),
            reply(429, THROTTLED, **{"Retry-After": "1.5"}),
            reply(200, load("get-user.json")),
        ),
    )

    user = graph.client().resolve_user(ADA)

    assert user is not None
    assert graph.sleeps == [2.128, 1.5]


def test_without_retry_after_the_client_backs_off_exponentially(graph: Graph) -> None:
    graph.on(
        "GET",
        "/users/",
        sequence(reply(503), reply(504), reply(503), reply(200, load("get-user.json"))),
    )

    graph.client(retry=RetryPolicy(attempts=4, base_delay=1.0, max_delay=8.0)).resolve_user(ADA)

    assert len(graph.sleeps) == 3
    for attempt, waited in enumerate(graph.sleeps, start=1):
        ceiling = 2.0 ** (attempt - 1)
        assert ceiling / 2 <= waited <= ceiling


def test_throttling_that_outlasts_the_retries_is_reported(graph: Graph) -> None:
    graph.on("GET", "/users/", reply(429, THROTTLED, **{"Retry-After": "1"}))

    with pytest.raises(PimThrottled) as caught:
        graph.client().resolve_user(ADA)

    assert caught.value.code == "TooManyRequests"
    assert len(graph.requests) == 4 and graph.sleeps == [1.0, 1.0, 1.0]


def test_a_retry_after_beyond_the_wait_budget_is_not_slept(graph: Graph) -> None:
    graph.on("GET", "/users/", reply(429, THROTTLED, **{"Retry-After": "120"}))

    with pytest.raises(PimThrottled):
        graph.client(retry=RetryPolicy(max_total_wait=30.0)).resolve_user(ADA)

    assert graph.sleeps == [] and len(graph.requests) == 1


def test_a_500_on_a_read_is_not_retried(graph: Graph) -> None:
    graph.on("GET", "/users/", reply(500))

    with pytest.raises(PimUnavailable):
        graph.client().resolve_user(ADA)
    assert len(graph.requests) == 1


def test_unreachable_graph_gives_up_after_the_bounded_attempts(graph: Graph) -> None:
    graph.on("GET", "/users/", sequence(httpx.ConnectError("refused")))

    with pytest.raises(PimUnavailable, match="Could not reach Microsoft Graph"):
        graph.client().resolve_user(ADA)
    assert len(graph.requests) == 4


# --- creates ---------------------------------------------------------------------------------


def _lookup(*requests: dict[str, object]) -> httpx.Response:
    return reply(200, {"value": list(requests)})


MINE = {
    "id": "req-1",
    "status": "Provisioned",
    "action": "AdminAssign",
    "principalId": ADA,
    "roleDefinitionId": ROLE.role_definition_id,
    "directoryScopeId": "/",
    "justification": REQUEST.justification,
    "createdDateTime": "2024-05-02T10:15:01.123Z",
    "scheduleInfo": {
        "startDateTime": "2024-05-02T10:15:00Z",
        "expiration": {"type": "AfterDuration", "duration": "PT1H"},
    },
}


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("lost"), httpx.RemoteProtocolError("dropped"), reply(503), reply(504)],
    ids=["read-timeout", "dropped", "503", "504"],
)
def test_an_ambiguous_create_is_looked_up_not_sent_again(
    graph: Graph, failure: httpx.Response | Exception
) -> None:
    graph.on(
        "POST",
        "/roleManagement/directory/roleAssignmentScheduleRequests",
        sequence(failure, reply(201, MINE)),
    )
    older = {**MINE, "id": "old", "createdDateTime": "2024-05-01T08:00:00Z"}
    other = {**MINE, "id": "other", "action": "adminRemove"}
    graph.on(
        "GET",
        "/roleManagement/directory/roleAssignmentScheduleRequests",
        _lookup(older, other, MINE),
    )

    result = graph.client().activate(REQUEST)

    assert (result.graph_request_id, result.status) == ("req-1", "Provisioned")
    assert len(graph.bodies("POST")) == 1
    assert graph.urls("GET") == [
        "https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
        f"?$filter=principalId%20eq%20'{ADA}'%20and%20roleDefinitionId%20eq%20"
        f"'{ROLE.role_definition_id}'"
    ]
    assert result.ends_at == NOW.replace(hour=11, minute=15)


def test_a_create_that_provably_did_not_happen_is_sent_again(graph: Graph) -> None:
    graph.on("POST", "/roleManagement", sequence(httpx.ReadTimeout("lost"), reply(201, MINE)))
    graph.on("GET", "/roleManagement", _lookup())

    result = graph.client().activate(REQUEST)

    assert result.graph_request_id == "req-1"
    assert len(graph.bodies("POST")) == 2 and len(graph.urls("GET")) == 1


def test_creates_give_up_after_bounded_ambiguous_attempts(graph: Graph) -> None:
    graph.on("POST", "/roleManagement", reply(503))
    graph.on("GET", "/roleManagement", _lookup())

    with pytest.raises(PimUnavailable, match="did not confirm"):
        graph.client().activate(REQUEST)
    assert len(graph.bodies("POST")) == 3


def test_a_throttled_create_is_retried_after_retry_after_without_lookup(graph: Graph) -> None:
    graph.on(
        "POST",
        "/roleManagement",
        sequence(reply(429, THROTTLED, **{"Retry-After": "1.5"}), reply(201, MINE)),
    )

    result = graph.client().activate(REQUEST)

    assert result.graph_request_id == "req-1"
    assert graph.sleeps == [1.5] and graph.urls("GET") == []
    assert len(graph.bodies("POST")) == 2


def test_a_create_that_could_not_connect_is_retried_without_lookup(graph: Graph) -> None:
    graph.on("POST", "/roleManagement", sequence(httpx.ConnectError("refused"), reply(201, MINE)))

    assert graph.client().activate(REQUEST).graph_request_id == "req-1"
    assert graph.urls("GET") == [] and len(graph.sleeps) == 1


def test_already_exists_after_a_lost_create_returns_the_first_attempts_request(
    graph: Graph,
) -> None:
    listed = iter([_lookup(), _lookup(MINE)])  # not yet listed, then listed
    graph.on(
        "POST",
        "/roleManagement",
        sequence(httpx.ReadTimeout("lost"), reply(400, load("error-role-assignment-exists.json"))),
    )
    graph.on("GET", "/roleManagement", lambda request: next(listed))

    result = graph.client().activate(REQUEST)

    assert result.graph_request_id == "req-1"
    assert len(graph.bodies("POST")) == 2


def test_already_exists_on_a_first_attempt_is_reported(graph: Graph) -> None:
    graph.on("POST", "/roleManagement", reply(400, load("error-role-assignment-exists.json")))

    with pytest.raises(AssignmentExists):
        graph.client().activate(REQUEST)
    assert graph.urls("GET") == []

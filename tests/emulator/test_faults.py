"""Injected latency, throttling, failures and dropped connections, set in code or over HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from stand_ins.graph_emulator import GraphEmulator
from tests.emulator.conftest import ADA, REQUESTS, SECURITY_READER, Graph, activation, error_of

USER = "/users/ada@contoso.example"


def test_throttled_requests_get_429_with_fractional_retry_after(graph: Graph) -> None:
    graph.emulator.faults.throttle_next(2, retry_after="0.25")
    for _ in range(2):
        response = graph.get(USER)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "0.25"
        error = response.json()["error"]
        assert error["code"] == "TooManyRequests"
        assert error["message"] == "Please retry again later."
        assert error["innerError"]["status"] == "429"
    assert graph.get(USER).status_code == 200


def test_throttle_every_nth_graph_request(graph: Graph) -> None:
    graph.emulator.faults.throttle_every = 3
    already = graph.emulator.state.request_count
    statuses = [graph.get(USER).status_code for _ in range(6)]
    expected = [429 if (already + i) % 3 == 0 else 200 for i in range(1, 7)]
    assert statuses == expected
    assert graph.emulator.state.request_count == already + 6


@pytest.mark.parametrize(("status", "code"), [(503, "serviceNotAvailable"), (504, "UnknownError")])
def test_fail_next_answers_like_graph(graph: Graph, status: int, code: int) -> None:
    graph.emulator.faults.fail_next(1, status=status)
    assert error_of(graph.get(USER))[:2] == (status, code)
    assert graph.get(USER).status_code == 200


def test_drop_next_closes_the_connection_without_an_answer(graph: Graph) -> None:
    graph.emulator.faults.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        graph.get(USER)
    assert graph.get(USER).status_code == 200


def test_a_create_whose_answer_is_dropped_was_still_made(graph: Graph) -> None:
    graph.emulator.faults.drop_response_of_next_create(1)
    with pytest.raises(httpx.RemoteProtocolError):
        graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER))
    [created] = graph.emulator.state.requests
    assert created["status"] == "Provisioned"
    assert len(graph.emulator.state.active_assignments(ADA)) == 1
    # A blind retry is refused rather than duplicated; a client reconciles by listing.
    retry = graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER))
    assert error_of(retry)[1] == "RoleAssignmentExists"


def test_latency_does_not_serialize_concurrent_requests(graph: Graph) -> None:
    graph.emulator.faults.latency = 0.3
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(lambda _: graph.get(USER).status_code, range(100)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 100
    assert elapsed < 3.0, f"100 requests with 0.3 s latency took {elapsed:.1f} s"


def test_faults_and_clock_over_http(emulator: GraphEmulator, http: httpx.Client,
                                    graph: Graph) -> None:
    knobs = http.post(f"{emulator.url}/_emulator/faults",
                      json={"throttle_next": 1, "retry_after": "2", "latency": 0.01}).json()
    assert knobs["throttle_next"] == 1 and knobs["latency"] == 0.01
    response = graph.get(USER)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
    assert http.post(f"{emulator.url}/_emulator/faults", json={"bogus": 1}).status_code == 400
    assert http.post(f"{emulator.url}/_emulator/faults", json={"reset": True}).json()[
        "latency"] == 0.0

    before = emulator.clock.now()
    moved = http.post(f"{emulator.url}/_emulator/clock", json={"advance_seconds": 600}).json()
    assert moved["now"] >= (before.replace(microsecond=0)).isoformat()
    assert (emulator.clock.now() - before).total_seconds() >= 600


def test_constructor_faults() -> None:
    with GraphEmulator(faults={"throttle_every": 1, "retry_after": "3"}) as emu:
        assert emu.faults.throttle_every == 1
        assert emu.faults.snapshot()["retry_after"] == "3"

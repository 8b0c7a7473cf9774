"""Structured logs: one correlation id per Slack interaction on every line, across Bolt's
listener threads, the request id where known, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.authorization import AuthorizeResult

from bot.app.concurrency import ContextPreservingExecutor
from bot.app.logs import (
    JsonFormatter,
    SecretMaskingFilter,
    TextFormatter,
    add_filters,
    begin_interaction,
    bind_correlation_id,
    current_correlation_id,
    current_request_id,
    log_context,
)
from handlers.middleware import correlate_interaction, request_id_in
from tests.e2e.conftest import ADA, GRACE, PRA, Stack

# Threads that work for pimbot: waitress receives and acks, the listener pool does the rest.
PIMBOT_THREADS = ("waitress", "pimbot-slack", "pimbot-work")


class Lines:
    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._buffer.getvalue().splitlines()]

    def text(self) -> str:
        return self._buffer.getvalue()


class _PimbotThreadsOnly(logging.Filter):
    """Keep what pimbot's own threads log; the stand-ins and the test's client log too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.threadName or "").startswith(PIMBOT_THREADS):
            record.thread_name = record.threadName
            return True
        return False


@contextmanager
def captured(secrets: list[str], *, pimbot_threads_only: bool = True) -> Iterator[Lines]:
    """JSON lines at DEBUG, with the filters ``configure_logging`` installs."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    if pimbot_threads_only:
        handler.addFilter(_PimbotThreadsOnly())
    add_filters(handler, secrets)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield Lines(buffer)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _secrets(stack: Stack) -> list[str]:
    return [
        stack.slack.bot_token,
        stack.slack.signing_secret,
        stack.emu.env()["AZURE_CLIENT_SECRET"],
    ]


def _settled(stack: Stack) -> None:
    """Every listener started so far has finished (they run on threads after the ack): once
    every worker is inside one of these barrier tasks, nothing queued before them still runs."""
    workers = stack.runtime.listeners._max_workers
    barrier = threading.Barrier(workers)
    for future in [stack.runtime.listeners.submit(barrier.wait, 10) for _ in range(workers)]:
        future.result(timeout=15)
    # The work after each ack runs on pimbot's own pool (``deps.later``): settle that one too,
    # or a busy machine lets one interaction's last lines land in the next one's capture.
    work_workers = 32  # bot/app/runtime.py: the pimbot-work pool
    work_barrier = threading.Barrier(work_workers)
    done = [threading.Event() for _ in range(work_workers)]

    def wait_then(flag: threading.Event) -> None:
        work_barrier.wait(10)
        flag.set()

    for flag in done:
        stack.runtime.deps.later(partial(wait_then, flag))
    for flag in done:
        assert flag.wait(15), "the work pool did not settle"


def test_every_line_of_a_click_carries_one_correlation_id_and_the_request_id(
    stack: Stack,
) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    card = stack.card()
    request_id = next(
        e["value"] for b in card.blocks for e in b.get("elements", []) if "value" in e
    )
    _settled(stack)
    stack.runtime.app.logger.setLevel(logging.DEBUG)  # Bolt's own lines, on the waitress thread

    with captured(_secrets(stack)) as lines:
        stack.sender.click("pim-approve", user=GRACE, message=card)
        stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="DM")
        _settled(stack)

    entries = lines.all()
    threads = {e["thread_name"].split("-")[0] for e in entries}
    assert threads >= {"waitress", "pimbot"}, threads  # both sides of the ack logged
    assert {e.get("correlation_id") for e in entries} == {entries[0]["correlation_id"]}
    assert entries[0]["correlation_id"]
    # After the ack the work runs on pimbot's own pool, carrying the same ids.
    listener_lines = [e for e in entries if e["thread_name"].startswith("pimbot-work")]
    assert listener_lines and all(e.get("request_id") == request_id for e in listener_lines)
    assert any(e["logger"] == "bot.adapters.graph.client" for e in listener_lines)  # the activation
    for secret in _secrets(stack):
        assert secret not in lines.text()


def test_each_interaction_gets_its_own_correlation_id(stack: Stack) -> None:
    ids = []
    for _ in range(2):
        with captured(_secrets(stack)) as lines:
            stack.open_form(ADA)
            _settled(stack)
        ids.append({e.get("correlation_id") for e in lines.all()})
    assert all(len(found) == 1 and None not in found for found in ids), ids
    assert ids[0] != ids[1]


def test_a_sweep_logs_with_its_own_id_and_each_timer_with_its_request(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    stack.sender.click("pim-approve", user=GRACE, message=stack.card())
    stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="DM")
    _settled(stack)
    stack.emu.advance_clock(55 * 60)

    with captured(_secrets(stack), pimbot_threads_only=False) as lines:
        stack.runtime.sweeper.sweep()

    reminder_lines = [e for e in lines.all() if "chat.postMessage" in e["message"]]
    assert reminder_lines
    assert all(e["correlation_id"].startswith("sweep-") for e in reminder_lines)
    assert all(e.get("request_id") for e in reminder_lines)
    assert current_correlation_id() is None and current_request_id() is None  # nothing leaks


def test_no_secret_reaches_a_log_line_from_start_to_active(
    make_stack: Callable[..., Stack],
) -> None:
    # Everything from the first token request on, every thread, at DEBUG.
    with captured([], pimbot_threads_only=False) as unmasked_probe:
        stack = make_stack()
    secrets = _secrets(stack)
    with captured(secrets, pimbot_threads_only=False) as lines:
        stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
        stack.sender.click("pim-approve", user=GRACE, message=stack.card())
        stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="DM")
        _settled(stack)

    assert len(lines.all()) > 50
    for secret in secrets:
        assert secret not in lines.text()
        assert secret not in unmasked_probe.text()


def test_secrets_are_masked_in_messages_extra_values_and_exceptions() -> None:
    secret = "xoxb-1234-abcdef-secret"
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    add_filters(handler, [secret])
    logger = logging.getLogger("tests.observability.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s", secret, extra={"detail": f"Bearer {secret}"})
        try:
            raise RuntimeError(f"auth failed for {secret}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    text = buffer.getvalue()
    assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "token ***" and first["detail"] == "Bearer ***"
    assert "auth failed for ***" in second["exception"]


def test_the_terminal_format_ends_with_the_ids() -> None:
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "approved", None, None)
    record.correlation_id, record.request_id = "c0ffee", "r-1"
    assert (
        TextFormatter()
        .format(record)
        .endswith("bot.x: approved [correlation_id=c0ffee request_id=r-1]")
    )


def test_masking_a_record_leaves_it_readable_by_a_plain_formatter() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key %s", ("s3cr3t-value",), None)
    SecretMaskingFilter(["s3cr3t-value"]).filter(record)
    assert logging.Formatter("%(message)s").format(record) == "key ***"


# --- the mechanism, on a bare Bolt app ------------------------------------------------------


def _bolt_app(executor: ThreadPoolExecutor) -> tuple[App, dict[str, Any], threading.Event]:
    seen: dict[str, Any] = {}
    done = threading.Event()
    app = App(
        signing_secret="not-checked",
        request_verification_enabled=False,
        authorize=lambda **_: AuthorizeResult(
            enterprise_id=None, team_id="T0", bot_token="xoxb-0", bot_user_id="U0BOT"
        ),
        listener_executor=executor,
    )
    app.use(correlate_interaction)

    def handle_go_button(ack: Callable[[], None], context: BoltContext) -> None:
        ack()
        seen["thread"] = threading.current_thread().name
        seen["bound"] = context.get("correlation_id")
        seen["listener"] = current_correlation_id()
        seen["request_id"] = current_request_id()
        raise RuntimeError("boom")

    def handle_any_error(error: Exception) -> None:
        seen["error_path"] = current_correlation_id()
        done.set()

    app.action("go")(handle_go_button)
    app.error(handle_any_error)
    return app, seen, done


def _click(value: str) -> BoltRequest:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0"},
        "user": {"id": "U0ADA", "team_id": "T0"},
        "api_app_id": "A0",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": "go", "block_id": "b", "value": value}],
    }
    return BoltRequest(
        body=urlencode({"payload": json.dumps(payload)}),
        headers={"content-type": ["application/x-www-form-urlencoded"]},
    )


def test_the_listener_thread_and_the_error_path_see_the_middlewares_id() -> None:
    executor = ContextPreservingExecutor(max_workers=2, thread_name_prefix="pimbot-slack")
    app, seen, done = _bolt_app(executor)
    request_id = str(uuid.uuid4())
    try:
        # The listener fails after its ack, and Bolt then answers 404 (it resets the ack):
        # only the ids matter here.
        app.dispatch(_click(request_id))
        assert done.wait(5)
    finally:
        executor.shutdown(wait=True)
    assert seen["thread"].startswith("pimbot-slack")
    assert seen["bound"] and seen["listener"] == seen["bound"] == seen["error_path"]
    assert seen["request_id"] == request_id


def test_a_plain_thread_pool_would_lose_the_id() -> None:
    """Why the runtime needs ContextPreservingExecutor: contextvars stay on their thread."""
    executor = ThreadPoolExecutor(max_workers=2)
    app, seen, done = _bolt_app(executor)
    try:
        app.dispatch(_click("home"))
        assert done.wait(5)
    finally:
        executor.shutdown(wait=True)
    assert seen["bound"] and seen["listener"] is None


# --- the context helpers ------------------------------------------------------------------


def test_an_interaction_adopts_the_id_bound_at_the_door_once() -> None:
    def run() -> list[str]:
        door = bind_correlation_id()
        first = begin_interaction()
        second = begin_interaction()  # Socket Mode: the next interaction on this thread
        return [door, first, second]

    door, first, second = threading_result(run)
    assert first == door and second != first


def test_log_context_restores_what_was_bound() -> None:
    def run() -> list[str | None]:
        begin_interaction(request_id="r-1")
        with log_context(correlation_id="sweep-1", request_id="r-2"):
            inside = [current_correlation_id(), current_request_id()]
        return [*inside, current_request_id()]

    assert threading_result(run) == ["sweep-1", "r-2", "r-1"]


REQUEST_ID = "5b0c7f0e-3d1f-4e8a-9f59-2d7c1e0a6b11"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"actions": [{"type": "button", "value": REQUEST_ID}]}, True),
        ({"actions": [{"type": "button", "value": "home"}]}, False),
        ({"actions": [{"type": "static_select", "value": REQUEST_ID}]}, False),
        ({"view": {"private_metadata": REQUEST_ID}}, True),
        ({"view": {"private_metadata": "ignore previous\ninstructions"}}, False),
        ({"command": "/pim"}, False),
    ],
)
def test_the_request_id_comes_only_from_a_button_or_modal_that_carries_one(
    body: dict[str, Any], expected: bool
) -> None:
    assert (request_id_in(body) is not None) is expected


def threading_result(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a fresh thread (a fresh context), so nothing binds in the test's own."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join(5)
    return result[0]

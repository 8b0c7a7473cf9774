"""``handlers.after_ack``: any error in the work is told on the surface used and logged; a
failure to tell is logged, never raised into the work pool (whose futures nobody reads)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bot.domain.elevation import Person
from bot.domain.errors import PimbotError
from handlers.after_ack import CommandReply, Home, Modal, Reply, run_after_ack, run_now

ADA = Person("T0TEAM", "U0ADA", "entra-ada")


class Client:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def __getattr__(self, method: str) -> Any:
        def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append((method, kwargs))
            if self.fail:
                raise RuntimeError("slack is down")
            return {"ok": True}

        return call


def _deps(later: Any = None) -> Any:
    return SimpleNamespace(identify=lambda _user: ADA, later=later or (lambda work: work()))


def _boom(_person: Person) -> None:
    raise RuntimeError("injected")


def test_an_unexpected_error_replaces_the_modal_with_a_reference_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client()
    run_now(_deps(), client, "U0ADA", _boom, surface=Modal("V1", "Request a PIM role"))  # type: ignore[arg-type]
    [(method, args)] = client.calls
    assert method == "views_update" and args["view_id"] == "V1"
    assert "reference" in str(args["view"].to_dict())
    assert [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]


def test_a_refusal_is_told_in_its_own_words_on_app_home() -> None:
    def refuse(_person: Person) -> None:
        raise PimbotError("You are not an approver for this role.")

    client = Client()
    run_now(_deps(), client, "U0ADA", refuse, surface=Home("U0ADA"))  # type: ignore[arg-type]
    [(method, args)] = client.calls
    assert method == "views_publish" and args["user_id"] == "U0ADA"
    assert args["view"].type == "home"
    assert "not an approver" in str(args["view"].to_dict())


def test_a_command_is_answered_through_its_response_url() -> None:
    said: list[dict[str, Any]] = []
    run_now(
        _deps(),
        Client(),  # type: ignore[arg-type]
        "U0ADA",
        _boom,
        surface=CommandReply(lambda **kwargs: said.append(kwargs)),  # type: ignore[arg-type]
    )
    [reply] = said
    assert reply["response_type"] == "ephemeral" and "reference" in reply["text"]


def test_failing_to_tell_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(fail=True)
    body = {"user": {"id": "U0ADA"}}
    run_now(_deps(), client, "U0ADA", _boom, surface=Reply(body))  # type: ignore[arg-type]
    assert client.calls  # it tried
    assert "could not tell the person" in caplog.text


def test_work_runs_on_the_pool_with_the_identified_person() -> None:
    queued: list[Any] = []
    seen: list[Person] = []
    run_after_ack(
        _deps(later=queued.append),
        Client(),  # type: ignore[arg-type]
        "U0ADA",
        seen.append,
        surface=Reply({}),
    )
    assert seen == [] and len(queued) == 1  # nothing runs on the listener thread
    queued[0]()
    assert seen == [ADA]

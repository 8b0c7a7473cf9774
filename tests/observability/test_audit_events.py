"""The audit trail leaves the database too: each entry is a JSON log event (``"event":
"audit"``) once its change is committed, and PIM's own record names the approvers."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.app.logs import configure_logging, log_audit_event
from bot.domain.elevation import AuditEntry, ElevationRequest, Person
from bot.domain.errors import PimUnavailable
from bot.domain.ports import DirectoryUser
from bot.use_cases.services import PIM_JUSTIFICATION_LIMIT, _justification
from storage.repository import AuditQuery
from tests.e2e.conftest import ADA, GRACE, PRA, Stack
from tests.fakes import ADA as ADA_PERSON
from tests.fakes import GLOBAL_ADMIN, T0
from tests.observability.test_logs import _secrets, _settled, captured


def _request_id(stack: Stack) -> str:
    card = stack.card()
    return str(next(e["value"] for b in card.blocks for e in b.get("elements", []) if "value" in e))


def test_every_audit_entry_of_an_approval_is_a_json_log_event(stack: Stack) -> None:
    with captured(_secrets(stack), pimbot_threads_only=False) as lines:
        stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
        request_id = _request_id(stack)
        stack.sender.click("pim-approve", user=GRACE, message=stack.card())
        stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="DM")
        _settled(stack)
    events = [e for e in lines.all() if e.get("event") == "audit"]
    with stack.runtime.deps.ports.uow() as uow:  # type: ignore[attr-defined]
        stored = uow.audit.search(AuditQuery(request_id=request_id))
    assert stored, "nothing audited"
    by_id = {e["audit_id"]: e for e in events}
    assert len(by_id) == len(events)  # one event per entry
    assert {r.id for r in stored} <= set(by_id)
    for record in stored:
        event = by_id[record.id]
        assert event["message"] == "audit" and event["logger"] == "pimbot.audit"
        assert (event["actor"], event["action"]) == (record.actor, record.action)
        assert (event["from_status"], event["to_status"]) == (
            record.from_status,
            record.to_status,
        )
        assert (event["hash"], event["prev_hash"]) == (record.hash, record.prev_hash)
        assert event["at"] == record.at.isoformat()
        assert event.get("correlation_id")  # ties the event to the interaction's other lines
    assert {"submit", "approve", "activate"} <= {e["action"] for e in by_id.values()}
    with stack.runtime.deps.ports.uow() as uow:  # type: ignore[attr-defined]
        everything = {r.id for r in uow.audit.search(AuditQuery())}
    assert set(by_id) == everything  # nothing logged that was not committed, nothing missed


def test_pims_justification_names_the_approvers_upn_and_the_request(stack: Stack) -> None:
    stack.request(ADA, {"duration": "PT1H", "reason": "Rotate the emergency keys"}, PRA)
    request_id = _request_id(stack)
    stack.sender.click("pim-approve", user=GRACE, message=stack.card())
    stack.wait(lambda: any("active until" in t for t in stack.dm_texts(ADA)), what="DM")
    created = [r for r in stack.emu.state.requests if r["action"].lower() == "adminassign"]
    assert len(created) == 1
    justification = created[0]["justification"]
    assert justification.startswith("Rotate the emergency keys")
    assert "grace@contoso.example" in justification
    assert request_id in justification
    assert len(justification) <= 500


class _SeesCommittedRow(logging.Handler):
    """At the moment an audit event is logged, is its row visible to another connection?"""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.seen: list[tuple[int, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        audit_id: Any = getattr(record, "audit_id", None)
        if getattr(record, "event", None) != "audit":
            return
        with self.engine.connect() as connection:
            found = connection.execute(
                text("SELECT count(*) FROM audit_events WHERE id = :id"), {"id": audit_id}
            ).scalar_one()
        self.seen.append((audit_id, found == 1))


@pytest.fixture
def audit_watch(engine: Engine):  # type: ignore[no-untyped-def]
    handler = _SeesCommittedRow(engine)
    logger = logging.getLogger("pimbot.audit")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_an_event_is_logged_only_after_its_commit_and_never_for_a_rollback(
    uow_factory,  # type: ignore[no-untyped-def]
    audit_watch: _SeesCommittedRow,
) -> None:
    entry = AuditEntry(None, "operator", "identity_linked", None, None, T0, "T/U -> x")
    with uow_factory() as uow:
        uow.audit.add(entry)
        uow.audit.write_pending()
        # rolled back: never committed
    with pytest.raises(RuntimeError), uow_factory() as uow:
        uow.audit.add(entry)
        raise RuntimeError("the change failed")
    assert audit_watch.seen == []
    with uow_factory() as uow:
        uow.audit.add(entry)
        uow.audit.add(AuditEntry(None, "operator", "x", None, None, T0 + timedelta(1), None))
        uow.commit()
    assert len(audit_watch.seen) == 2
    assert all(visible for _, visible in audit_watch.seen)


class _Directory:
    """resolve_user as Graph answers it: a UPN, nobody, or an outage."""

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        if ref.startswith("down"):
            raise PimUnavailable("Graph is unavailable")
        if ref.startswith("gone"):
            return None
        return DirectoryUser(ref, ref, f"{ref}@a-rather-long-tenant-name.example")


def _approved(approvers: list[Person], reason: str) -> ElevationRequest:
    request = ElevationRequest.submit(
        requester=ADA_PERSON,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason=reason,
        at=T0,
        quorum=len(approvers),
    )
    for approver in approvers:
        request.approve(approver, at=T0)
    return request


@pytest.mark.parametrize("reason_length", [10, 470, 499, 500, 5000])
def test_the_justification_never_exceeds_pims_limit(reason_length: int) -> None:
    approvers = [
        Person("T0PIMBOT", "U0A", "approver-one"),
        Person("T0PIMBOT", "U0B", "down-approver"),
        Person("T0PIMBOT", "U0C", "gone-approver"),
    ]
    request = _approved(approvers, "x" * reason_length)
    text = _justification(request, SimpleNamespace(pim=_Directory()))  # type: ignore[arg-type]
    assert len(text) <= PIM_JUSTIFICATION_LIMIT
    assert text.endswith(
        f"(via pimbot, request {request.id}; approved by "
        "approver-one@a-rather-long-tenant-name.example, down-approver, gone-approver)"
    )
    suffix = text[text.index(" (via pimbot") :]
    if reason_length + len(suffix) > PIM_JUSTIFICATION_LIMIT:
        assert len(text) == PIM_JUSTIFICATION_LIMIT
        assert text.removesuffix(suffix).endswith("x…")
    else:
        assert text.startswith("x" * reason_length + " (via pimbot")


def test_many_approvers_are_summarised_within_the_limit() -> None:
    approvers = [Person("T0PIMBOT", f"U{i:03d}", f"approver-{i:03d}") for i in range(30)]
    request = _approved(approvers, "a reason")
    text = _justification(request, SimpleNamespace(pim=_Directory()))  # type: ignore[arg-type]
    assert len(text) <= PIM_JUSTIFICATION_LIMIT
    assert text.startswith("a reason (via pimbot, request ")
    assert "approver-000@a-rather-long-tenant-name.example" in text
    assert text.endswith("more)")


def test_audit_events_are_logged_whatever_the_log_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(level="ERROR", fmt="json", secrets=["s3cret-value"])
        logging.getLogger("bot.use_cases.services").warning("quiet, please")
        log_audit_event(audit_id=7, request_id=None, actor="operator", detail="s3cret-value")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("pimbot.audit").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["audit_id"], e["detail"]) for e in lines] == [("audit", 7, "***")]
    assert "request_id" not in lines[0]

"""Repositories and the unit of work on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, text

from bot.domain.elevation import (
    ElevationRequest,
    Extension,
    RequestStatus,
    Review,
    Ticket,
    Timers,
)
from bot.domain.errors import ConcurrentUpdate
from bot.domain.ports import DueWork, Event, IdentityLink, PostedMessage
from storage.database import current_revision, head_revision, is_up_to_date
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0


def _request(**overrides: object) -> ElevationRequest:
    values: dict[str, object] = dict(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="incident 42",
        at=T0,
        ticket=Ticket("INC-42", "ServiceNow"),
        quorum=2,
        approver_specs=("slack_user:U0GRACE", "pim"),
    )
    values.update(overrides)
    return ElevationRequest.submit(**values)  # type: ignore[arg-type]


def test_schema_is_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)
    assert is_up_to_date(engine)
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("elevation_requests")}
    assert {"ix_requests_status_remind_at", "ix_requests_status_ends_at"} <= indexes


def test_a_request_round_trips_with_decisions_and_audit(uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = _request()
    with uow_factory() as uow:
        uow.requests.add(request)
        uow.commit()
    with uow_factory() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None
        loaded.approve(GRACE, at=T0 + timedelta(minutes=1))
        uow.requests.save(loaded)
        uow.commit()
    with uow_factory() as uow:
        again = uow.requests.get(request.id)
        trail = uow.audit.list_for_request(request.id)
    assert again is not None
    assert again.ticket == Ticket("INC-42", "ServiceNow")
    assert again.approver_specs == ("slack_user:U0GRACE", "pim")
    assert again.created_at == T0 and again.created_at.tzinfo is not None
    assert [d.approver.slack_user for d in again.approvals()] == ["U0GRACE"]
    assert [(e.action, e.from_status, e.to_status) for e in trail] == [
        ("submit", None, "pending_approval"),
        ("approval_recorded", "pending_approval", "pending_approval"),
    ]


def test_extension_timers_and_review_round_trip_whole(uow_factory) -> None:  # type: ignore[no-untyped-def]
    """Every field of the value objects survives a save and a load, set and unset."""
    minute = timedelta(minutes=1)
    request = _request(break_glass=True)
    with uow_factory() as uow:
        uow.requests.add(request)
        uow.commit()
    with uow_factory() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None
        assert loaded.extension == Extension() and loaded.timers == Timers()
        assert loaded.review is None
        loaded.extension = Extension(
            count=2,
            round=3,
            pending=timedelta(minutes=45),
            reason="still on it",
            requested_at=T0 + minute,
            last_key="V0FORM",
        )
        loaded.timers = Timers(
            remind_at=T0 + 2 * minute,
            reminded_at=T0 + 3 * minute,
            nudged_at=T0 + 4 * minute,
            deactivate_at=T0 + 5 * minute,
            review_due_at=T0 + 6 * minute,
        )
        loaded.review = Review(at=T0 + 7 * minute, by=GRACE)
        uow.requests.save(loaded)
        uow.commit()
    with uow_factory() as uow:
        again = uow.requests.get(request.id)
    assert again is not None
    assert again.extension == loaded.extension
    assert again.timers == loaded.timers
    assert again.review is not None and again.review.at == T0 + 7 * minute
    assert (again.review.by.slack_user, again.review.by.entra_id) == (
        GRACE.slack_user,
        GRACE.entra_id,
    )


def test_uncommitted_work_is_rolled_back(uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = _request()
    with uow_factory() as uow:
        uow.requests.add(request)
    with uow_factory() as uow:
        assert uow.requests.get(request.id) is None


def test_an_error_inside_the_unit_of_work_rolls_back(uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = _request()
    with pytest.raises(RuntimeError), uow_factory() as uow:
        uow.requests.add(request)
        raise RuntimeError("boom")
    with uow_factory() as uow:
        assert uow.requests.get(request.id) is None


def test_a_stale_save_loses(uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = _request(quorum=1)
    with uow_factory() as uow:
        uow.requests.add(request)
        uow.commit()
    # Both clicks read the same version; the first to save wins, the second must lose.
    with uow_factory() as uow:
        stale = uow.requests.get(request.id)
    with uow_factory() as first:
        fresh = first.requests.get(request.id)
        assert fresh is not None
        fresh.approve(GRACE, at=T0)
        first.requests.save(fresh)
        first.commit()
    assert stale is not None
    stale.approve(ALAN, at=T0)
    with uow_factory() as second, pytest.raises(ConcurrentUpdate):
        second.requests.save(stale)
    with uow_factory() as uow:
        final = uow.requests.get(request.id)
        assert final is not None
        assert final.status is RequestStatus.APPROVED
        assert [d.approver.slack_user for d in final.decisions] == ["U0GRACE"]
        assert [e.action for e in uow.audit.list_for_request(request.id)] == ["submit", "approve"]


def test_scheduler_queries_find_only_due_rows(uow_factory) -> None:  # type: ignore[no-untyped-def]
    due_soon, later = _request(quorum=1), _request(quorum=1, requester=GRACE)
    for req, end in ((due_soon, T0 + timedelta(minutes=30)), (later, T0 + timedelta(hours=3))):
        req.auto_approve(actor="pimbot", at=T0, why="test")
        req.mark_active(
            starts_at=T0,
            ends_at=end,
            graph_request_id="g",
            at=T0,
            remind_at=end - timedelta(minutes=10),
        )
    with uow_factory() as uow:
        uow.requests.add(due_soon)
        uow.requests.add(later)
        uow.commit()
    now = T0 + timedelta(minutes=25)

    def due(kind: DueWork, at: datetime) -> list[str]:
        with uow_factory() as uow:  # never committed: the leases taken here are rolled back
            return uow.requests.claim_due(kind, at, owner="test", lease=timedelta(minutes=2))

    assert due(DueWork.REMINDER, now) == [due_soon.id]
    assert due(DueWork.EXPIRY, now) == []
    assert due(DueWork.EXPIRY, T0 + timedelta(hours=4)) == [due_soon.id, later.id]
    with uow_factory() as uow:
        live = uow.requests.list_live_for_role(ADA, GLOBAL_ADMIN.role_definition_id)
    assert [r.id for r in live] == [due_soon.id]


def test_identity_links_and_posted_messages(uow_factory) -> None:  # type: ignore[no-untyped-def]
    request = _request()
    with uow_factory() as uow:
        uow.requests.add(request)
        uow.identities.link(IdentityLink("T0PIMBOT", "U0ADA", "entra-1", "email", T0))
        uow.messages.add(
            PostedMessage(request.id, "C0APPROVALS", "1700000000.000100", "approver_card", T0)
        )
        uow.commit()
    with uow_factory() as uow:
        uow.identities.link(IdentityLink("T0PIMBOT", "U0ADA", "entra-2", "operator", T0))
        uow.commit()
    with uow_factory() as uow:
        link = uow.identities.get("T0PIMBOT", "U0ADA")
        assert link is not None and (link.entra_id, link.source) == ("entra-2", "operator")
        assert [m.ts for m in uow.messages.list_for_request(request.id)] == ["1700000000.000100"]
        assert uow.identities.unlink("T0PIMBOT", "U0ADA") is True
        assert uow.identities.unlink("T0PIMBOT", "U0ADA") is False


def test_audit_rows_are_never_updated_by_the_code(engine: Engine) -> None:
    # The audit log class offers no update or delete; prove nothing else writes there either.
    from storage.repository import SqlAuditLog

    public = {name for name in dir(SqlAuditLog) if not name.startswith("_")}
    # Queue, chain-and-insert, forget the queue, read, check: nothing that changes a stored row.
    assert public == {
        "add",
        "write_pending",
        "discard_pending",
        "list_for_request",
        "list_recent",
        "search",
        "verify",
    }
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_events")).scalar() == 0


def test_recorded_events_reach_the_outbox_in_the_same_transaction(uow_factory) -> None:  # type: ignore[no-untyped-def]
    def owed(uow) -> list[tuple[str, Event]]:  # type: ignore[no-untyped-def]
        pending = uow.outbox.claim_undelivered(
            T0 + timedelta(hours=1), older_than=timedelta(0), owner="test", lease=timedelta(0)
        )
        return [(n.request_id, n.event) for n in pending]

    request = _request(quorum=1)
    with uow_factory() as uow:
        queued = uow.requests.add(request)
        assert [(n.request_id, n.event) for n in queued] == [(request.id, Event.SUBMITTED)]
        assert request.new_events == []  # drained, like the audit entries
        uow.commit()
    with uow_factory() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None
        loaded.approve(GRACE, at=T0 + timedelta(minutes=1))
        uow.requests.save(loaded)  # never committed: neither the change nor its event stays
    with uow_factory() as uow:
        loaded = uow.requests.get(request.id)
        assert loaded is not None and loaded.status is RequestStatus.PENDING_APPROVAL
        loaded.approve(GRACE, at=T0 + timedelta(minutes=2))
        queued = uow.requests.save(loaded)
        uow.commit()
    assert [n.event for n in queued] == [Event.APPROVED]
    with uow_factory() as uow:
        assert owed(uow) == [(request.id, Event.SUBMITTED), (request.id, Event.APPROVED)]


def test_recent_elevations_leave_out_requests_that_timed_out(uow_factory) -> None:  # type: ignore[no-untyped-def]
    timed_out, granted = _request(quorum=1), _request(quorum=1, at=T0 + timedelta(minutes=1))
    timed_out.time_out(at=T0 + timedelta(hours=1))
    granted.auto_approve(actor="pimbot", at=T0, why="test")
    granted.mark_active(starts_at=T0, ends_at=T0 + timedelta(hours=1), graph_request_id="g", at=T0)
    granted.expire(at=T0 + timedelta(hours=1))
    assert timed_out.timed_out and not granted.timed_out
    with uow_factory() as uow:
        uow.requests.add(timed_out)
        uow.requests.add(granted)
        uow.commit()
    with uow_factory() as uow:
        recent = uow.requests.list_recent_elevations(ADA, since=T0 - timedelta(days=1))
    assert [r.id for r in recent] == [granted.id]

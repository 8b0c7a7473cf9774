"""The timer table: every kind of due work is described once, and both layers read it."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import timedelta
from types import SimpleNamespace
from typing import get_args

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from bot.app.scheduler import STUCK_AFTER, Sweeper, handler_for
from bot.domain.elevation import ElevationRequest, RequestStatus, Review
from bot.domain.ports import TIMERS, DueAfter, DueColumn, DueWork, TimerSpec, timer_spec
from storage import repository
from storage.tables import RequestRow, UtcDateTime
from tests.fakes import ADA, GLOBAL_ADMIN, GRACE, T0


def test_every_kind_has_exactly_one_spec_and_a_handler() -> None:
    assert sorted(spec.kind for spec in TIMERS) == sorted(DueWork)
    for kind in DueWork:
        assert timer_spec(kind).kind is kind
        assert callable(handler_for(kind))
        assert list(inspect.signature(handler_for(kind)).parameters)[:2] == ["request_id", "ports"]


def test_an_unknown_kind_raises_instead_of_falling_back() -> None:
    with pytest.raises(ValueError, match="no timer"):
        timer_spec("coffee_break")  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        handler_for("coffee_break")  # type: ignore[arg-type]


def test_due_columns_are_timestamps_on_the_request_and_its_row() -> None:
    request = ElevationRequest.submit(
        requester=ADA, role=GLOBAL_ADMIN, duration=timedelta(hours=1), reason="r", at=T0
    )
    columns = set(RequestRow.__table__.columns.keys())
    for name in get_args(DueColumn):
        assert name in columns, name
        assert isinstance(RequestRow.__table__.columns[name].type, UtcDateTime), name
        assert request.moment(name) in (None, T0), name  # readable on the domain object
    later = T0 + timedelta(hours=1)
    request.timers = dataclasses.replace(request.timers, remind_at=later, review_due_at=later)
    request.review = Review(at=later, by=GRACE)
    assert [request.moment(n) for n in ("remind_at", "review_due_at", "reviewed_at")] == [later] * 3
    with pytest.raises(AttributeError):
        request.moment("reason")


def test_each_status_bound_timer_has_its_status_and_due_index() -> None:
    indexed = {tuple(c.name for c in index.columns) for index in RequestRow.__table__.indexes}
    for spec in TIMERS:
        wanted = ("status", spec.due_column) if spec.statuses else (spec.due_column,)
        assert wanted in indexed, spec.kind


@pytest.mark.parametrize("spec", TIMERS, ids=lambda spec: spec.kind.value)
def test_the_claim_query_is_built_from_the_spec(spec: TimerSpec) -> None:
    now = T0 + timedelta(days=1)
    age = timedelta(minutes=7)
    query = select(RequestRow.id).where(repository._due_condition(spec, now, age))
    sql = str(
        query.order_by(repository._due_order(spec)).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    where, order = " ".join(sql.split()).split(" WHERE ", 1)[1].split(" ORDER BY ")
    for status in RequestStatus:
        assert (f"'{status.value}'" in where) is (status in spec.statuses), status
    assert where.startswith("elevation_requests.status") is bool(spec.statuses)
    cutoff = now - (timedelta(0) if spec.after is DueAfter.AT_ONCE else age)
    assert f"elevation_requests.{spec.due_column} <= '{cutoff.isoformat(sep=' ')}'" in where
    if spec.unless_set:
        assert f"elevation_requests.{spec.unless_set} IS NULL" in where
    assert order == f"elevation_requests.{spec.due_column}"


def test_the_sweeper_serves_the_table_in_order_with_its_waits() -> None:
    sweeper = Sweeper(
        ports=SimpleNamespace(delegation=None),  # type: ignore[arg-type]
        pending_timeout=timedelta(hours=24),
        nudge_after=timedelta(hours=1),
    )
    waits = {
        DueAfter.AT_ONCE: timedelta(0),
        DueAfter.STUCK_AFTER: STUCK_AFTER,
        DueAfter.NUDGE_AFTER: timedelta(hours=1),
        DueAfter.PENDING_TIMEOUT: timedelta(hours=24),
        DueAfter.SIGN_IN_TTL: timedelta(minutes=10),  # a sign-in link's life, by default
    }
    for spec in TIMERS:
        assert sweeper._age(spec.kind) == waits[spec.after]
    # The order a sweep serves them: a stuck activation before its schedule, deactivation
    # before expiry, the reminder after the end has been synced.
    assert [spec.kind for spec in TIMERS] == [
        DueWork.STUCK_APPROVED,
        DueWork.SCHEDULED_START,
        DueWork.DEACTIVATION,
        DueWork.EXPIRY,
        DueWork.REMINDER,
        DueWork.NUDGE,
        DueWork.PENDING_TIMEOUT,
        DueWork.FOLLOW_PIM,
        DueWork.SIGN_IN_TIMEOUT,
        DueWork.BREAK_GLASS_REVIEW,
    ]


def test_due_at_reads_the_spec_column_plus_its_wait() -> None:
    request = ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="incident 42",
        at=T0,
        quorum=1,
        approver_specs=("pim",),
    )
    assert timer_spec(DueWork.NUDGE).due_at(request, timedelta(hours=1)) == T0 + timedelta(hours=1)
    assert timer_spec(DueWork.REMINDER).due_at(request, timedelta(0)) is None


def test_the_saved_columns_are_the_table_minus_the_fixed_ones() -> None:
    columns = set(RequestRow.__table__.columns.keys())
    # A misspelt name would silently make its column saved: every name must be a column.
    assert repository._FIXED.issubset(columns) and repository._NOT_SAVED.issubset(columns)
    assert set(repository._MUTABLE) == columns - repository._FIXED - repository._NOT_SAVED
    assert {"status", "remind_at", "extension_key", "review_due_at"} <= set(repository._MUTABLE)
    assert not {"lease_owner", "lease_until", "version", "created_at"} & set(repository._MUTABLE)

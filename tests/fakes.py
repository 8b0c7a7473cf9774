"""Test doubles for the ports: they record what they were asked and can be told to fail."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.domain.authority import ApproverSet
from bot.domain.elevation import ElevationRequest, Person, RoleRef, Ticket
from bot.domain.errors import PimError
from bot.domain.ports import (
    ActivationRequest,
    ActivationResult,
    ActiveAssignment,
    DirectoryUser,
    EligibleRole,
    Event,
)
from bot.domain.rules import ApproverKind, ApproverSpec, EffectiveRules, RoleSettings

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

GLOBAL_ADMIN = RoleRef("62e90394-69f5-4237-9190-012177145e10", "Global Administrator")
SECURITY_READER = RoleRef("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader")
EXCHANGE_ADMIN = RoleRef("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator")

ADA = Person("T0PIMBOT", "U0ADA", "11111111-aaaa-4aaa-8aaa-000000000001", "Ada")
GRACE = Person("T0PIMBOT", "U0GRACE", "22222222-bbbb-4bbb-8bbb-000000000002", "Grace")
ALAN = Person("T0PIMBOT", "U0ALAN", "33333333-cccc-4ccc-8ccc-000000000003", "Alan")
MALLORY = Person("T0PIMBOT", "U0MALLORY", "44444444-dddd-4ddd-8ddd-000000000004", "Mallory")
APPROVERS = [Person("T0PIMBOT", f"U0APPR{i:02d}", f"entra-approver-{i}") for i in range(20)]
_PEOPLE = (ADA, GRACE, ALAN, MALLORY, *APPROVERS)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self._now = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


@dataclass
class FakePimClient:
    """Holds eligibility, settings and assignments in memory; records every write."""

    clock: FakeClock
    eligible: dict[str, list[RoleRef]] = field(default_factory=dict)
    settings: dict[str, RoleSettings] = field(default_factory=dict)
    active: dict[tuple[str, str], tuple[datetime, datetime]] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    fail_next: list[PimError] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    # Entra ids of accounts an admin disabled (the rest of the people above are enabled).
    disabled: set[str] = field(default_factory=set)

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        """The people above, by Entra object id (emails resolve to nobody here)."""
        person = next((p for p in _PEOPLE if p.entra_id == ref), None)
        if person is None:
            return None
        upn = f"{person.slack_user.removeprefix('U0').lower()}@contoso.example"
        return DirectoryUser(
            ref, person.display_name or ref, upn, upn, account_enabled=ref not in self.disabled
        )

    def users_by_email(self, email: str) -> list[DirectoryUser]:
        user = self.resolve_user(email)
        return [user] if user is not None else []

    def list_group_members(self, group_id: str) -> list[DirectoryUser]:
        return []

    def list_eligible_roles(self, principal_id: str) -> list[EligibleRole]:
        return [EligibleRole(role) for role in self.eligible.get(principal_id, [])]

    def list_active_assignments(self, principal_id: str) -> list[ActiveAssignment]:
        now = self.clock.now()
        return [
            ActiveAssignment(RoleRef(role_id, role_id), "Activated", start, end)
            for (pid, role_id), (start, end) in self.active.items()
            if pid == principal_id and end > now
        ]

    def get_role_settings(self, role: RoleRef) -> RoleSettings:
        return self.settings.get(role.role_definition_id, RoleSettings(role.role_definition_id))

    def activate(self, request: ActivationRequest) -> ActivationResult:
        with self._lock:
            self.calls.append(("activate", request))
            self._maybe_fail()
            start = request.start or self.clock.now()
            end = start + request.duration
            self.active[(request.principal_id, request.role.role_definition_id)] = (start, end)
            status = "Granted" if request.start else "Provisioned"
            return ActivationResult(f"req-{len(self.calls)}", status, start, end)

    def deactivate(self, principal_id: str, role: RoleRef) -> ActivationResult:
        with self._lock:
            self.calls.append(("deactivate", (principal_id, role.role_definition_id)))
            self._maybe_fail()
            self.active.pop((principal_id, role.role_definition_id), None)
            return ActivationResult(f"req-{len(self.calls)}", "Revoked", None, None)

    def extend(
        self,
        principal_id: str,
        role: RoleRef,
        *,
        new_end: datetime,
        justification: str,
        ticket: Ticket | None = None,
    ) -> ActivationResult:
        with self._lock:
            self.calls.append(("extend", (principal_id, role.role_definition_id, new_end)))
            self._maybe_fail()
            start, _ = self.active[(principal_id, role.role_definition_id)]
            self.active[(principal_id, role.role_definition_id)] = (start, new_end)
            return ActivationResult(f"req-{len(self.calls)}", "Provisioned", start, new_end)

    def get_request(self, graph_request_id: str) -> ActivationResult:
        return ActivationResult(graph_request_id, "Provisioned", None, None)

    def writes(self, kind: str) -> list[object]:
        return [arg for name, arg in self.calls if name == kind]


@dataclass
class FakeNotifier:
    sent: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False

    def request_changed(self, request: ElevationRequest, event: Event) -> None:
        if self.broken:
            raise ConnectionError("Slack is down")
        self.sent.append((request.id, event.value))

    def events_for(self, request_id: str) -> list[str]:
        return [event for rid, event in self.sent if rid == request_id]


@dataclass
class FakeApproverResolver:
    """Maps ``slack_user:`` specs directly; ``pim`` and groups to a fixed set of people."""

    group_members: dict[str, list[Person]] = field(default_factory=dict)

    def resolve(self, specs: Sequence[ApproverSpec], rules: EffectiveRules) -> ApproverSet:
        slack: set[str] = set()
        entra: set[str] = set()
        for spec in specs:
            if spec.kind is ApproverKind.SLACK_USER:
                slack.add(spec.value)
            for person in self.group_members.get(spec.as_text(), []):
                slack.add(person.slack_user)
                if person.entra_id:
                    entra.add(person.entra_id)
        return ApproverSet(frozenset(slack), frozenset(entra))

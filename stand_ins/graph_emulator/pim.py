"""PIM's state for directory roles: eligibilities, assignments and schedule requests.

Instances are computed from schedules against the emulator clock on every read, so a
time-bound assignment disappears by itself when its end passes, as in PIM. One lock guards it.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from typing import Any

from stand_ins.graph_emulator import enforcement as rules
from stand_ins.graph_emulator.clock import EmulatorClock
from stand_ins.graph_emulator.errors import GraphError, bad_request, not_found
from stand_ins.graph_emulator.faults import Faults
from stand_ins.graph_emulator.schedule_requests import ScheduleRequest, parse_request_body
from stand_ins.graph_emulator.schedules import Assignment, Eligibility, instance_id
from stand_ins.graph_emulator.tenant import Grant, Role, Tenant
from stand_ins.graph_emulator.token import Caller

_CANCELABLE = ("Granted", "PendingApproval", "PendingApprovalProvisioning")


class PimState:
    """Everything PIM knows, plus counters tests inspect."""

    def __init__(self, tenant: Tenant, clock: EmulatorClock, faults: Faults) -> None:
        self.tenant, self.clock, self.faults = tenant, clock, faults
        self._lock = threading.RLock()
        self._eligibilities = [self._eligibility(i, g) for i, g in enumerate(tenant.eligibilities)]
        self._assignments = [self._standing(i, g) for i, g in enumerate(tenant.assignments)]
        self._requests: list[ScheduleRequest] = []
        self._request_count = 0

    def _eligibility(self, index: int, grant: Grant) -> Eligibility:
        return Eligibility(
            schedule_id=str(uuid.uuid5(uuid.UUID(self.tenant.tenant_id), f"eligibility:{index}")),
            principal_id=self._principal(grant.principal),
            role_id=self._role(grant.role).id,
            start=grant.start,
            end=grant.end,
        )

    def _standing(self, index: int, grant: Grant) -> Assignment:
        principal, role = self._principal(grant.principal), self._role(grant.role).id
        return Assignment(
            instance_id(role, principal, eligible=False),
            principal,
            role,
            grant.start,
            grant.end,
            "Assigned",
        )

    def _principal(self, ref: str) -> str:
        principal = self.tenant.principal_id(ref)
        assert principal is not None  # the tenant checked its references
        return principal

    def _role(self, ref: str) -> Role:
        role = self.tenant.find_role(ref)
        assert role is not None
        return role

    # --- inspection (for tests and the demo) --------------------------------------------------

    def count_graph_request(self) -> int:
        with self._lock:
            self._request_count += 1
            return self._request_count

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every schedule request created so far, as Graph would return it."""
        return self.list_requests()

    def active_assignments(self, principal_id: str) -> list[dict[str, Any]]:
        return [i for i in self.assignment_instances() if i["principalId"] == principal_id]

    # --- reads --------------------------------------------------------------------------------

    def eligibility_instances(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            return [e.to_json() for e in self._eligibilities if e.is_active(now)]

    def assignment_instances(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            return [a.to_json() for a in self._assignments if a.is_active(now)]

    def list_requests(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            return [r.to_json(now) for r in self._requests]

    def get_request(self, request_id: str) -> dict[str, Any]:
        with self._lock:
            return self._find_request(request_id).to_json(self.clock.now())

    def _find_request(self, request_id: str) -> ScheduleRequest:
        found = next((r for r in self._requests if r.id == request_id.lower()), None)
        if found is None:
            raise not_found(request_id)
        return found

    def is_eligible(self, principal_id: str, role_id: str, at: datetime) -> bool:
        """Directly, or through membership of an eligible role-assignable group."""
        principals = {principal_id} | {g.id for g in self.tenant.groups_of(principal_id)}
        with self._lock:
            return any(
                e.role_id == role_id and e.principal_id in principals and e.is_active(at)
                for e in self._eligibilities
            )

    # --- writes -------------------------------------------------------------------------------

    def create_request(self, body: Any, caller: Caller) -> dict[str, Any]:
        now = self.clock.now()
        request = parse_request_body(body, now)
        role = self.tenant.find_role(request.role_definition_id)
        if role is None:
            raise bad_request(
                f"The role definition '{request.role_definition_id}' was not found.",
                code="RoleNotFound",
            )
        if self.tenant.principal_id(request.principal_id) is None and (
            request.principal_id != self.tenant.app.service_principal_id
        ):
            raise bad_request(
                f"The principal '{request.principal_id}' was not found.", code="PrincipalNotFound"
            )
        request.created_by = _created_by(caller, self.tenant)
        with self._lock:
            self._carry_out(request, role, caller, now)
            if not request.is_validation_only:
                self._requests.append(request)
            return request.to_json(now)

    def _carry_out(
        self, request: ScheduleRequest, role: Role, caller: Caller, now: datetime
    ) -> None:
        action = request.canonical_action
        if action in ("adminRemove", "selfDeactivate"):
            self._remove(request, now)
        elif action == "adminAssign":
            self._check(rules.admin_failures(request, role))
            self._grant(request, "Assigned", now)
        elif action == "selfActivate":
            self._check_end_user(request, role, caller)
            if self._live_assignment(request, now) is not None:
                raise rules.role_assignment_exists()
            if role.activation.approval_required:
                self._await_approval(request)
            else:
                self._grant(request, "Activated", now)
        else:  # adminUpdate, adminExtend, adminRenew, selfExtend, selfRenew
            self._extend(request, role, caller, now)

    def _check(self, failures: list[rules.RuleFailure]) -> None:
        if failures:
            raise rules.policy_validation_failed(failures, self.faults.policy_message_format)

    def _check_end_user(self, request: ScheduleRequest, role: Role, caller: Caller) -> None:
        start = request.schedule.start if request.schedule else self.clock.now()
        eligible = self.is_eligible(request.principal_id, role.id, max(start, self.clock.now()))
        self._check(rules.end_user_failures(request, role, eligible=eligible, caller=caller))
        acrs_failure = rules.authentication_context_failure(role, caller)
        if acrs_failure is not None:
            raise acrs_failure

    def _live_assignment(self, request: ScheduleRequest, now: datetime) -> Assignment | None:
        return next(
            (
                a
                for a in self._assignments
                if a.principal_id == request.principal_id
                and a.role_id == request.role_definition_id
                and a.is_live(now)
            ),
            None,
        )

    def _grant(self, request: ScheduleRequest, assignment_type: str, now: datetime) -> None:
        if self._live_assignment(request, now) is not None:
            raise rules.role_assignment_exists()
        schedule = request.schedule
        start = now if schedule is None or schedule.start <= now else schedule.start
        end = None if schedule is None else schedule.effective_end
        request.status = "Provisioned" if start <= now else "Granted"
        request.completed_at = now if start <= now else start
        if not request.is_validation_only:
            self._assignments.append(
                Assignment(
                    request.id,
                    request.principal_id,
                    request.role_definition_id,
                    start,
                    end,
                    assignment_type,
                )
            )

    def _await_approval(self, request: ScheduleRequest) -> None:
        request.status = "PendingApprovalProvisioning"
        request.approval_id = request.id

    def _remove(self, request: ScheduleRequest, now: datetime) -> None:
        current = next(
            (
                a
                for a in self._assignments
                if a.principal_id == request.principal_id
                and a.role_id == request.role_definition_id
                and a.is_active(now)
            ),
            None,
        )
        if current is None:
            raise rules.role_assignment_does_not_exist()
        if current.start is not None and now - current.start < rules.MINIMUM_ACTIVE_DURATION:
            raise rules.active_duration_too_short()
        request.status, request.completed_at = "Revoked", now
        if not request.is_validation_only:
            self._assignments.remove(current)

    def _extend(self, request: ScheduleRequest, role: Role, caller: Caller, now: datetime) -> None:
        current = self._live_assignment(request, now)
        if current is None:
            raise rules.role_assignment_does_not_exist()
        if request.canonical_action.startswith("self"):
            self._check_end_user(request, role, caller)
            if role.activation.approval_required_for_extension:
                self._await_approval(request)
                return
        else:
            self._check(rules.admin_failures(request, role))
        request.status, request.completed_at = "Provisioned", now
        if not request.is_validation_only and request.schedule is not None:
            current.end = request.schedule.effective_end

    def cancel_request(self, request_id: str) -> None:
        with self._lock:
            request = self._find_request(request_id)
            status = request.status_at(self.clock.now())
            if status not in _CANCELABLE:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"The request is in status '{status}' and "
                    "cannot be canceled. Only Granted requests can be canceled.",
                )
            request.status, request.completed_at = "Canceled", self.clock.now()
            self._assignments = [a for a in self._assignments if a.schedule_id != request.id]

    def decide_approval(self, request_id: str, *, approve: bool) -> dict[str, Any]:
        """Stand-in for an approver acting in PIM (Graph v1.0 has no API for this)."""
        now = self.clock.now()
        with self._lock:
            request = self._find_request(request_id)
            if not request.status.startswith("PendingApproval"):
                raise GraphError(
                    400, "BadRequest", f"The request is in status '{request.status}', not pending."
                )
            if approve:
                self._grant(request, "Activated", now)
            else:
                request.status, request.completed_at = "Denied", now
            return request.to_json(now)


def _created_by(caller: Caller, tenant: Tenant) -> dict[str, Any]:
    if caller.is_user:
        return {
            "application": None,
            "device": None,
            "user": {"displayName": None, "id": caller.object_id},
        }
    return {
        "application": {"displayName": tenant.app.display_name, "id": tenant.app.client_id},
        "device": None,
        "user": None,
    }

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
from stand_ins.graph_emulator.approvals import APPROVE, DENY, Approval, ApprovalStage
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
        self._approvals: dict[str, Approval] = {}
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

    @property
    def approvals(self) -> list[dict[str, Any]]:
        """Every approval as Graph beta renders it (``assignedToMe`` for nobody)."""
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            return [a.to_json(None, self.tenant, now) for a in self._approvals.values()]

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
            self._settle_approvals(now)
            return [r.to_json(now) for r in self._requests]

    def get_request(self, request_id: str) -> dict[str, Any]:
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            return self._find_request(request_id).to_json(now)

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
                self._await_approval(request, role, now)
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

    def _await_approval(self, request: ScheduleRequest, role: Role, now: datetime) -> None:
        request.status = "PendingApprovalProvisioning"
        request.approval_id = request.id
        if not request.is_validation_only:
            self._approvals[request.id] = Approval.start(
                request.id, request.principal_id, role.activation.stages, now
            )

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
                self._await_approval(request, role, now)
                return
        else:
            self._check(rules.admin_failures(request, role))
        request.status, request.completed_at = "Provisioned", now
        if not request.is_validation_only and request.schedule is not None:
            current.end = request.schedule.effective_end

    def cancel_request(self, request_id: str) -> None:
        with self._lock:
            self._settle_approvals(self.clock.now())
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

    # --- approvals ----------------------------------------------------------------------------

    def _settle_approvals(self, now: datetime) -> None:
        """End every request whose open stage timed out (callers hold the lock)."""
        for request in self._requests:
            approval = self._approvals.get(request.id)
            if approval is None or not request.status.startswith("PendingApproval"):
                continue
            stage = approval.current()
            deadline = None if stage is None else stage.deadline
            if stage is not None and deadline is not None and deadline <= now:
                stage.expired = True
                request.status, request.completed_at = "TimedOut", deadline

    def _find_approval(self, approval_id: str) -> Approval:
        approval = self._approvals.get(approval_id.lower())
        if approval is None:
            raise not_found(approval_id)
        return approval

    def get_approval(self, approval_id: str, caller_id: str) -> dict[str, Any]:
        """The approval with its started steps; ``assignedToMe`` is computed for ``caller_id``."""
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            return self._find_approval(approval_id).to_json(caller_id, self.tenant, now)

    def get_approval_stage(self, approval_id: str, stage_id: str, caller_id: str) -> dict[str, Any]:
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            approval = self._find_approval(approval_id)
            stage = approval.find_stage(stage_id)
            if stage is None:
                raise not_found(stage_id)
            return approval.stage_json(stage, caller_id, self.tenant, now)

    def requests_for_approver(self, caller_id: str) -> list[dict[str, Any]]:
        """Pending requests whose open stage the caller may review now.

        The docs define ``on='approver'`` only as the requests for which the caller is an
        approver; whether decided ones stay listed is not said: the emulator lists pending ones.
        """
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            found = []
            for request in self._requests:
                approval = self._approvals.get(request.id)
                stage = None if approval is None else approval.current()
                if (
                    approval is not None
                    and stage is not None
                    and request.status.startswith("PendingApproval")
                    and approval.is_assigned_to(caller_id, stage, self.tenant, now)
                ):
                    found.append(request.to_json(now))
            return found

    def review_stage(
        self,
        approval_id: str,
        stage_id: str,
        reviewer_id: str,
        review_result: Any,
        justification: Any,
    ) -> None:
        """PATCH of a step by a signed-in approver; GraphError for every refusal."""
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            approval = self._find_approval(approval_id)
            stage = approval.find_stage(stage_id)
            if stage is None:
                raise not_found(stage_id)
            self._review(approval, stage, reviewer_id, review_result, justification, now)

    def _review(
        self,
        approval: Approval,
        stage: ApprovalStage,
        reviewer_id: str,
        review_result: Any,
        justification: Any,
        now: datetime,
    ) -> None:
        if review_result not in (APPROVE, DENY):
            raise bad_request(
                f"Invalid value '{review_result}' for property 'reviewResult'. "
                "Possible values are: Approve, Deny."
            )
        if justification is not None and not isinstance(justification, str):
            raise bad_request("Property 'justification' must be a string.")
        request = self._find_request(approval.id)
        if reviewer_id == approval.requestor_id:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "The requestor cannot approve or deny their own request.",
            )
        if reviewer_id not in stage.reviewer_ids(self.tenant, now):
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "The caller is not an approver of this approval stage.",
            )
        if not stage.is_open() or not request.status.startswith("PendingApproval"):
            # 409 is what the docs give an approver for a stage another approver already
            # decided; they are silent on expired stages and ended requests: the same here.
            raise GraphError(
                409,
                "Conflict",
                f"The approval stage is '{stage.status()}' and the request is in status "
                f"'{request.status}'; it can no longer be reviewed.",
            )
        # isApproverJustificationRequired is documented for approving; PIM's message is not.
        if (
            review_result == APPROVE
            and stage.settings.approver_justification_required
            and not (justification or "").strip()
        ):
            raise bad_request("Justification is required to approve this request.")
        following = approval.next_after(stage)
        if (
            review_result == APPROVE
            and following is None
            and request.canonical_action == "selfActivate"
            and self._live_assignment(request, now) is not None
        ):
            # Refused before anything is recorded, so the stage stays open.
            raise rules.role_assignment_exists()
        stage.review_result, stage.reviewed_by = review_result, reviewer_id
        stage.reviewed_at, stage.justification = now, justification or ""
        if review_result == DENY:
            request.status, request.completed_at = "Denied", now
            return
        if following is not None:
            following.started_at = now  # serial: the next stage's clock starts now
            return
        self._provision(request, now)

    def _provision(self, request: ScheduleRequest, now: datetime) -> None:
        """The last stage approved: carry the request out as PIM would have without approval."""
        if request.canonical_action in ("selfExtend", "selfRenew"):
            current = self._live_assignment(request, now)
            if current is None:
                raise rules.role_assignment_does_not_exist()
            request.status, request.completed_at = "Provisioned", now
            if request.schedule is not None:
                current.end = request.schedule.effective_end
            return
        self._grant(request, "Activated", now)

    def decide_approval(
        self,
        request_id: str,
        *,
        approve: bool,
        reviewer: str | None = None,
        justification: str | None = None,
    ) -> dict[str, Any]:
        """The emulator's "portal": an approver deciding in PIM itself, outside pimbot.

        With ``reviewer`` (a user id or UPN) the current stage is reviewed as that user, under
        the same rules as the Graph PATCH. Without one, an administrator decides every remaining
        stage at once (nobody is recorded as the reviewer), as the earliest tests expect.
        """
        now = self.clock.now()
        with self._lock:
            self._settle_approvals(now)
            request = self._find_request(request_id)
            if not request.status.startswith("PendingApproval"):
                raise GraphError(
                    400, "BadRequest", f"The request is in status '{request.status}', not pending."
                )
            approval = self._approvals.get(request.id)
            if reviewer is not None:
                user = self.tenant.find_user(reviewer)
                if user is None:
                    raise bad_request(f"No user '{reviewer}' in the tenant.")
                stage = None if approval is None else approval.current()
                if approval is None or stage is None:
                    raise bad_request("The request has no open approval stage.")
                result = APPROVE if approve else DENY
                self._review(approval, stage, user.id, result, justification, now)
                return request.to_json(now)
            if approval is not None:
                for stage in approval.stages:
                    if stage.is_open() or stage.started_at is None:
                        stage.started_at = stage.started_at or now
                        stage.review_result = APPROVE if approve else DENY
                        stage.reviewed_at, stage.justification = now, justification or ""
                        if not approve:
                            break
            if approve:
                self._provision(request, now)
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

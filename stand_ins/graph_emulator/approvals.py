"""PIM approvals of self-activations: stages, who may review them, and time-driven endings.

Microsoft documents these as the ``approval`` resource. For Entra roles it exists in **beta
only** (``/beta/roleManagement/directory/roleAssignmentApprovals/{id}`` with ``steps``, each an
``approvalStep``; ``PATCH .../steps/{id}`` decides); v1.0 has no approval relationship for
directory roles. For PIM for Groups it is in v1.0 (``identityGovernance/privilegedAccess/group/
assignmentApprovals``, with ``stages``); the emulator does not serve PIM for Groups.

What the docs say, and what the emulator does where they are silent:

* The approval id is the schedule request's id (``approvalId`` of the request, as in the docs'
  ``selfActivate`` example), and one step exists per policy stage.
* Only started stages are listed: "in multi-step approvals both pending and previously completed
  steps are shown" (beta approval resource); a later serial stage appears when it starts.
* A reviewed step answers ``reviewResult`` ``Approve``/``Deny`` and ``reviewedBy`` as an identity
  object ``{id, displayName, userPrincipalName, mail}``, as in the docs' reviewed-step examples
  (the resource table's "Approved/Denied" wording is not what the examples show); unreviewed it
  is ``NotReviewed`` with ``reviewedBy: null`` and ``reviewedDateTime: null``.
* Step ``status``: ``InProgress`` while open, ``Completed`` once decided, ``Expired`` when its
  ``approvalStageTimeOutInDays`` passed unreviewed (values from the approvalStep resource).
* ``approvalStageTimeOutInDays`` is "the number of days that a request can be pending a response
  before it's automatically denied". The Graph docs do not name the request status that follows;
  PIM's status enum (ARM ``RequestStatus``, shared by PIM) has ``TimedOut``, which the emulator
  answers.
* Escalation: once ``escalationTimeInMinutes`` have passed in an open stage with
  ``isEscalationEnabled``, the escalation approvers may review it too (primary ones still may).
* The requestor never reviews their own request, even when listed as an approver (Entra's PIM
  approval docs: approvers cannot approve their own requests); for them ``assignedToMe`` is false.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stand_ins.graph_emulator.isotime import format_instant
from stand_ins.graph_emulator.tenant import ApprovalStageSettings, Tenant, User

NOT_REVIEWED, APPROVE, DENY = "NotReviewed", "Approve", "Deny"


@dataclass
class ApprovalStage:
    """One stage as it stands for one request."""

    id: str
    settings: ApprovalStageSettings
    started_at: datetime | None = None  # None: a later serial stage that has not started
    review_result: str = NOT_REVIEWED
    reviewed_by: str | None = None  # user id
    reviewed_at: datetime | None = None
    justification: str | None = None
    expired: bool = False

    @property
    def deadline(self) -> datetime | None:
        if self.started_at is None:
            return None
        return self.started_at + timedelta(days=self.settings.timeout_days)

    def is_open(self) -> bool:
        return (
            self.started_at is not None
            and self.review_result == NOT_REVIEWED
            and not (self.expired)
        )

    def status(self) -> str:
        if self.expired:
            return "Expired"
        return "InProgress" if self.review_result == NOT_REVIEWED else "Completed"

    def is_escalated(self, now: datetime) -> bool:
        settings = self.settings
        return (
            self.started_at is not None
            and settings.escalation_enabled
            and now >= self.started_at + timedelta(minutes=settings.escalation_minutes)
        )

    def reviewer_ids(self, tenant: Tenant, now: datetime) -> set[str]:
        """Who may review it now: primary approvers, plus escalation ones once escalated."""
        ids = tenant.approver_user_ids(self.settings.approvers)
        if self.is_escalated(now):
            ids |= tenant.approver_user_ids(self.settings.escalation_approvers)
        return ids


@dataclass
class Approval:
    """The approval of one schedule request (same id), with its stages in order."""

    id: str
    requestor_id: str
    stages: list[ApprovalStage] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        request_id: str,
        requestor_id: str,
        stages: tuple[ApprovalStageSettings, ...],
        now: datetime,
    ) -> Approval:
        base = uuid.UUID(request_id)
        approval = cls(
            request_id,
            requestor_id,
            [ApprovalStage(str(uuid.uuid5(base, f"stage:{i}")), s) for i, s in enumerate(stages)],
        )
        approval.stages[0].started_at = now
        return approval

    def current(self) -> ApprovalStage | None:
        return next((s for s in self.stages if s.is_open()), None)

    def next_after(self, stage: ApprovalStage) -> ApprovalStage | None:
        index = self.stages.index(stage)
        return self.stages[index + 1] if index + 1 < len(self.stages) else None

    def find_stage(self, stage_id: str) -> ApprovalStage | None:
        return next(
            (s for s in self.started() if s.id == stage_id.lower()),
            None,
        )

    def started(self) -> list[ApprovalStage]:
        return [s for s in self.stages if s.started_at is not None]

    def is_assigned_to(
        self, user_id: str, stage: ApprovalStage, tenant: Tenant, now: datetime
    ) -> bool:
        if user_id == self.requestor_id:
            return False
        return user_id in stage.reviewer_ids(tenant, now)

    def stage_json(
        self, stage: ApprovalStage, caller_id: str | None, tenant: Tenant, now: datetime
    ) -> dict[str, Any]:
        reviewer = tenant.find_user(stage.reviewed_by) if stage.reviewed_by else None
        return {
            "id": stage.id,
            "displayName": None,
            "reviewedDateTime": format_instant(stage.reviewed_at),
            "reviewResult": stage.review_result,
            "status": stage.status(),
            "assignedToMe": caller_id is not None
            and self.is_assigned_to(caller_id, stage, tenant, now),
            "justification": stage.justification or "",
            "reviewedBy": _identity(reviewer),
        }

    def to_json(self, caller_id: str | None, tenant: Tenant, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "steps": [self.stage_json(s, caller_id, tenant, now) for s in self.started()],
        }


def _identity(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "displayName": user.display_name,
        "userPrincipalName": user.user_principal_name,
        "mail": user.mail or "",
    }

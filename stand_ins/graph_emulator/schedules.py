"""Eligibility and assignment schedules, and the instance objects Graph lists for them."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stand_ins.graph_emulator.isotime import format_instant


def instance_id(role_id: str, principal_id: str, *, eligible: bool) -> str:
    """Entra's ids: base64url of the two GUIDs (little-endian), ``-1`` or ``-1-e`` appended."""
    raw = uuid.UUID(role_id).bytes_le + uuid.UUID(principal_id).bytes_le
    encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return f"{encoded}-1-e" if eligible else f"{encoded}-1"


def _covers(start: datetime | None, end: datetime | None, now: datetime) -> bool:
    """Open-ended on a missing side; the end itself is already outside, as in PIM."""
    return (start is None or start <= now) and (end is None or now < end)


@dataclass
class Eligibility:
    schedule_id: str
    principal_id: str
    role_id: str
    start: datetime | None
    end: datetime | None

    def is_active(self, now: datetime) -> bool:
        return _covers(self.start, self.end, now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": instance_id(self.role_id, self.principal_id, eligible=True),
            "principalId": self.principal_id,
            "roleDefinitionId": self.role_id,
            "directoryScopeId": "/",
            "appScopeId": None,
            "startDateTime": format_instant(self.start),
            "endDateTime": format_instant(self.end),
            "memberType": "Direct",
            "roleEligibilityScheduleId": self.schedule_id,
        }


@dataclass
class Assignment:
    schedule_id: str
    principal_id: str
    role_id: str
    start: datetime | None  # None: a standing assignment made outside PIM's schedules
    end: datetime | None
    assignment_type: str  # "Assigned" | "Activated"

    def is_active(self, now: datetime) -> bool:
        return _covers(self.start, self.end, now)

    def is_live(self, now: datetime) -> bool:
        """Active now or starting later: either way a second one would overlap it."""
        return self.end is None or now < self.end

    def to_json(self) -> dict[str, Any]:
        assignment_id = instance_id(self.role_id, self.principal_id, eligible=False)
        return {
            "id": assignment_id,
            "principalId": self.principal_id,
            "roleDefinitionId": self.role_id,
            "directoryScopeId": "/",
            "appScopeId": None,
            "startDateTime": format_instant(self.start),
            "endDateTime": format_instant(self.end),
            "assignmentType": self.assignment_type,
            "memberType": "Direct",
            "roleAssignmentOriginId": assignment_id,
            "roleAssignmentScheduleId": self.schedule_id,
        }

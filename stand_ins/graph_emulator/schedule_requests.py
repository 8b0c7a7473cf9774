"""unifiedRoleAssignmentScheduleRequest: the POST body as PIM reads it, the object as it answers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stand_ins.graph_emulator.errors import bad_request
from stand_ins.graph_emulator.isotime import format_instant, parse_duration, parse_instant

ACTIONS = (
    "adminAssign",
    "adminUpdate",
    "adminRemove",
    "adminExtend",
    "adminRenew",
    "selfActivate",
    "selfDeactivate",
    "selfExtend",
    "selfRenew",
)
_ACTIONS_BY_LOWER = {a.lower(): a for a in ACTIONS}
_EXPIRATION_TYPES = {
    t.lower(): t for t in ("notSpecified", "noExpiration", "afterDateTime", "afterDuration")
}


@dataclass(frozen=True)
class Schedule:
    """scheduleInfo of a request: when the assignment starts and how it ends."""

    start: datetime
    expiration_type: str  # camelCase, as Graph answers whatever case was sent
    end: datetime | None = None
    duration: str | None = None
    sent_start: bool = True

    @property
    def effective_end(self) -> datetime | None:
        if self.expiration_type == "afterDuration" and self.duration is not None:
            return self.start + parse_duration(self.duration)
        if self.expiration_type == "afterDateTime":
            return self.end
        return None

    @property
    def length(self) -> timedelta | None:
        end = self.effective_end
        return None if end is None else end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "startDateTime": format_instant(self.start),
            "recurrence": None,
            "expiration": {
                "type": self.expiration_type,
                "endDateTime": format_instant(self.end),
                "duration": self.duration,
            },
        }


@dataclass
class ScheduleRequest:
    """One request as stored; ``status`` may move later (approval, start time, cancel)."""

    action: str  # exactly as sent: the service echoes "SelfActivate" or "selfActivate"
    principal_id: str
    role_definition_id: str
    directory_scope_id: str | None
    app_scope_id: str | None
    justification: str | None
    ticket_number: str | None
    ticket_system: str | None
    schedule: Schedule | None
    is_validation_only: bool
    custom_data: str | None
    created_at: datetime
    created_by: dict[str, Any] = field(default_factory=dict)
    status: str = "Provisioned"
    completed_at: datetime | None = None
    approval_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def canonical_action(self) -> str:
        return _ACTIONS_BY_LOWER[self.action.lower()]

    def status_at(self, now: datetime) -> str:
        # A Granted request whose start has come has been carried out.
        if self.status == "Granted" and self.schedule is not None and self.schedule.start <= now:
            return "Provisioned"
        return self.status

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The object in the field order of the v1.0 docs examples."""
        return {
            "id": self.id,
            "status": self.status_at(now),
            "createdDateTime": format_instant(self.created_at),
            "completedDateTime": format_instant(self.completed_at),
            "approvalId": self.approval_id,
            "customData": self.custom_data,
            "action": self.action,
            "principalId": self.principal_id,
            "roleDefinitionId": self.role_definition_id,
            "directoryScopeId": self.directory_scope_id,
            "appScopeId": self.app_scope_id,
            "isValidationOnly": self.is_validation_only,
            "targetScheduleId": self.id,
            "justification": self.justification,
            "createdBy": self.created_by,
            "scheduleInfo": None if self.schedule is None else self.schedule.to_json(),
            "ticketInfo": {"ticketNumber": self.ticket_number, "ticketSystem": self.ticket_system},
        }


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"Property '{name}' must be a string.")
    return value


def _schedule(raw: Any, now: datetime) -> Schedule | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("Property 'scheduleInfo' must be an object.")
    try:
        start_text = raw.get("startDateTime")
        start = parse_instant(start_text) if start_text else now
        expiration = raw.get("expiration") or {}
        kind = str(expiration.get("type") or "notSpecified")
        expiration_type = _EXPIRATION_TYPES.get(kind.lower())
        if expiration_type is None:
            raise bad_request(f"Invalid expiration type '{kind}'.")
        end_text = expiration.get("endDateTime")
        duration = expiration.get("duration")
        if duration is not None:
            parse_duration(str(duration))
        schedule = Schedule(
            start=start,
            expiration_type=expiration_type,
            end=parse_instant(end_text) if end_text else None,
            duration=None if duration is None else str(duration),
            sent_start=bool(start_text),
        )
    except (TypeError, ValueError) as error:
        raise bad_request(f"Invalid scheduleInfo: {error}") from None
    if expiration_type == "afterDuration" and schedule.duration is None:
        raise bad_request("The expiration duration is required for type afterDuration.")
    if expiration_type == "afterDateTime" and schedule.end is None:
        raise bad_request("The expiration endDateTime is required for type afterDateTime.")
    length = schedule.length
    if length is not None and length <= timedelta():
        raise bad_request("The expiration must be after the start of the schedule.")
    return schedule


def parse_request_body(body: Any, now: datetime) -> ScheduleRequest:
    """Validate a POST body; GraphError (400) for what PIM would refuse before any policy."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    action = _text(body, "action")
    if not action or action.lower() not in _ACTIONS_BY_LOWER:
        raise bad_request(
            f"Requested value '{action}' was not found."
            if action
            else "The 'action' property is required."
        )
    principal_id, role_id = _text(body, "principalId"), _text(body, "roleDefinitionId")
    if not principal_id or not role_id:
        raise bad_request("The 'principalId' and 'roleDefinitionId' properties are required.")
    directory_scope, app_scope = _text(body, "directoryScopeId"), _text(body, "appScopeId")
    if directory_scope is None and app_scope is None:
        raise bad_request("Either 'directoryScopeId' or 'appScopeId' is required.")
    ticket = body.get("ticketInfo") or {}
    if not isinstance(ticket, dict):
        raise bad_request("Property 'ticketInfo' must be an object.")
    return ScheduleRequest(
        action=action,
        principal_id=principal_id.lower(),
        role_definition_id=role_id.lower(),
        directory_scope_id=directory_scope,
        app_scope_id=app_scope,
        justification=_text(body, "justification"),
        ticket_number=_text(ticket, "ticketNumber"),
        ticket_system=_text(ticket, "ticketSystem"),
        schedule=_schedule(body.get("scheduleInfo"), now),
        is_validation_only=bool(body.get("isValidationOnly", False)),
        custom_data=_text(body, "customData"),
        created_at=now,
    )

"""The operator's policy file (YAML): who approves which role, where cards go, what to tighten.

It can only make PIM's own settings stricter (see ``bot.domain.rules.effective_rules``). Loading
checks everything at once and raises one ``ConfigurationError`` naming file, key and problem.
An example with every key explained lives in ``policy.example.yaml`` at the repository root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.domain.durations import humanize, parse_duration
from bot.domain.elevation import ActivationMode, RoleRef
from bot.domain.errors import ConfigurationError
from bot.domain.rules import (
    MIN_DURATION,
    PIM_MAX_ACTIVATION,
    ApprovalMode,
    ApproverKind,
    ApproverLink,
    ApproverSpec,
    RolePolicy,
)

_OUTSIDE_PIM = f"must be between {humanize(MIN_DURATION)} and 24h (PIM's activation limits)"
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_USERGROUP_HANDLE = re.compile(r"^@?[a-z0-9][a-z0-9._-]*$")


class _Approver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slack_user: str | None = None
    slack_usergroup: str | None = None
    entra_group: str | None = None
    entra_user: str | None = None
    pim: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _Approver:
        given = [k for k, v in self.model_dump().items() if v not in (None, False)]
        if len(given) != 1:
            raise ValueError(
                "each approver needs exactly one of slack_user, slack_usergroup, "
                "entra_group, entra_user or pim: true"
            )
        if self.slack_user is not None and not _SLACK_USER.match(self.slack_user):
            raise ValueError(f"slack_user {self.slack_user!r} is not a Slack user ID (U…/W…)")
        if self.entra_group is not None and not _GUID.match(self.entra_group):
            raise ValueError(f"entra_group {self.entra_group!r} is not a group object ID (GUID)")
        if self.entra_user is not None and not _GUID.match(self.entra_user):
            raise ValueError(f"entra_user {self.entra_user!r} is not a user object ID (GUID)")
        if self.slack_usergroup is not None and not _USERGROUP_HANDLE.match(self.slack_usergroup):
            raise ValueError(f"slack_usergroup {self.slack_usergroup!r} is not a handle")
        return self

    def to_spec(self) -> ApproverSpec:
        if self.slack_user:
            return ApproverSpec(ApproverKind.SLACK_USER, self.slack_user)
        if self.slack_usergroup:
            return ApproverSpec(ApproverKind.SLACK_USERGROUP, self.slack_usergroup.lstrip("@"))
        if self.entra_group:
            return ApproverSpec(ApproverKind.ENTRA_GROUP, self.entra_group.lower())
        if self.entra_user:
            return ApproverSpec(ApproverKind.ENTRA_USER, self.entra_user.lower())
        return ApproverSpec(ApproverKind.PIM)


class _SelfExtension(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    up_to: timedelta

    @field_validator("up_to", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        raise ValueError("write the total active time with a unit, e.g. up_to: 2h")

    @field_validator("up_to")
    @classmethod
    def _within_pim(cls, value: timedelta) -> timedelta:
        if not MIN_DURATION <= value <= PIM_MAX_ACTIVATION:
            raise ValueError(_OUTSIDE_PIM)
        return value


class _RoleRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: list[_Approver] | None = None
    approval: ApprovalMode | None = None
    approvals_channel: str | None = None
    quorum: int | None = Field(default=None, ge=1, le=10)
    max_duration: timedelta | None = None
    ticket_required: bool | None = None
    ticket_pattern: str | None = None
    reminder_lead: timedelta | None = None
    extension_requires_approval: bool | None = None
    break_glass: list[str] | None = None
    # Break glass bypasses PIM's own approval on this role: per role only (refused in defaults).
    break_glass_overrides_pim_approval: bool | None = None
    # Where break-glass alerts go besides the approvals channel (security team, SOC).
    security_channel: str | None = None
    self_extension: _SelfExtension | None = None
    approver_link: ApproverLink | None = None
    # broker | delegated: how this role is activated, whatever PIMBOT_MODE=auto would choose.
    mode: ActivationMode | None = None

    @field_validator("max_duration", "reminder_lead", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, int):
            raise ValueError("write durations with a unit, e.g. 90m or 2h")
        return value

    @field_validator("max_duration")
    @classmethod
    def _within_pim(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_DURATION <= value <= PIM_MAX_ACTIVATION:
            raise ValueError(_OUTSIDE_PIM)
        return value

    @field_validator("approvals_channel", "security_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_CHANNEL.match(value):
            raise ValueError(
                f"{value!r} is not a Slack channel ID (C…/G…); names can change, IDs cannot"
            )
        return value

    @field_validator("ticket_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("break_glass")
    @classmethod
    def _break_glass(cls, value: list[str] | None) -> list[str] | None:
        for user in value or []:
            if not _SLACK_USER.match(user):
                raise ValueError(f"{user!r} is not a Slack user ID (U…/W…)")
        return value


class _PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: _RoleRules = _RoleRules()
    roles: dict[str, _RoleRules] = {}


@dataclass(frozen=True)
class PolicyFile:
    """Per-role policies keyed by role definition id or display name (case-insensitive)."""

    defaults: RolePolicy = RolePolicy()
    roles: dict[str, RolePolicy] = field(default_factory=dict)
    source: Path | None = None

    def policy_for(self, role: RoleRef) -> RolePolicy:
        return (
            self.roles.get(role.role_definition_id.lower())
            or self.roles.get(role.display_name.casefold())
            or self.defaults
        )

    def named_roles(self) -> list[str]:
        return sorted(self.roles)


def load_policy_file(path: Path | None) -> PolicyFile:
    """Read and check the policy file; no file at all means "follow PIM" for every role."""
    if path is None:
        return PolicyFile()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            [f"{path}: cannot read the policy file ({exc.strerror})"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_policy(raw if raw is not None else {}, source=path)


def parse_policy(raw: object, *, source: Path | None = None) -> PolicyFile:
    name = str(source) if source else "policy"
    try:
        document = _PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(
            [
                f"{name}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {_explain(err)}"
                for err in exc.errors()
            ]
        ) from None
    defaults = _merge(RolePolicy(), document.defaults)
    problems = []
    if document.defaults.break_glass_overrides_pim_approval:
        problems.append(
            f"{name}: defaults.break_glass_overrides_pim_approval: set it per role, never for "
            "every role: it lets break glass bypass PIM's own approval"
        )
    roles: dict[str, RolePolicy] = {}
    for key, rules in document.roles.items():
        policy = _merge(defaults, rules)
        if policy.approval is ApprovalMode.AUTO and policy.quorum > 1:
            problems.append(f"{name}: roles.{key}: approval 'auto' cannot have a quorum")
        problems.extend(_self_extension_problems(f"{name}: roles.{key}", policy))
        lookup = key.lower() if _GUID.match(key) else key.casefold()
        roles[lookup] = policy
    problems[:0] = _self_extension_problems(f"{name}: defaults", defaults)
    if problems:
        raise ConfigurationError(problems)
    return PolicyFile(defaults=defaults, roles=roles, source=source)


def _self_extension_problems(where: str, policy: RolePolicy) -> list[str]:
    up_to = policy.self_extension_up_to
    if up_to is None:
        return []
    if policy.extension_requires_approval:
        return [
            f"{where}: self_extension contradicts extension_requires_approval: true "
            "(remove one of them)"
        ]
    if policy.max_duration is not None and up_to > policy.max_duration:
        return [
            f"{where}: self_extension.up_to ({up_to}) is longer than max_duration "
            f"({policy.max_duration}); it can never be reached"
        ]
    return []


def _explain(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (typo?)"
    return str(error["msg"]).removeprefix("Value error, ")


def _merge(base: RolePolicy, rules: _RoleRules) -> RolePolicy:
    given = rules.model_dump(exclude_none=True)
    approvers = (
        tuple(a.to_spec() for a in rules.approvers)
        if rules.approvers is not None
        else base.approvers
    )
    return RolePolicy(
        approvers=approvers,
        approval=given.get("approval", base.approval),
        approvals_channel=given.get("approvals_channel", base.approvals_channel),
        quorum=given.get("quorum", base.quorum),
        max_duration=given.get("max_duration", base.max_duration),
        ticket_required=given.get("ticket_required", base.ticket_required),
        ticket_pattern=given.get("ticket_pattern", base.ticket_pattern),
        reminder_lead=given.get("reminder_lead", base.reminder_lead),
        extension_requires_approval=given.get(
            "extension_requires_approval", base.extension_requires_approval
        ),
        break_glass_requesters=tuple(given.get("break_glass", base.break_glass_requesters)),
        break_glass_overrides_pim_approval=given.get(
            "break_glass_overrides_pim_approval", base.break_glass_overrides_pim_approval
        ),
        security_channel=given.get("security_channel", base.security_channel),
        self_extension_up_to=(
            rules.self_extension.up_to
            if rules.self_extension is not None
            else base.self_extension_up_to
        ),
        approver_link=given.get("approver_link", base.approver_link),
        mode=given.get("mode", base.mode),
    )

"""The emulated tenant: users, groups, roles with their PIM settings, one app, from a YAML file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stand_ins.graph_emulator.isotime import parse_duration


class TenantFileError(ValueError):
    """The tenant fixture cannot be used; the message lists every problem found."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a GUID") from None


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


class App(_Strict):
    """The one app registration pimbot signs in as, with its granted application permissions."""

    client_id: str
    service_principal_id: str
    display_name: str = "pimbot"
    client_secret: str | None = Field(default=None, repr=False)
    certificate_pem: str | None = None
    permissions: tuple[str, ...] = ()  # application permissions (app roles), admin-consented
    # Delegated permissions (Graph scopes) the tenant consented to for every user; a
    # ``.default`` request at the authorize endpoint gets all of them.
    delegated_permissions: tuple[str, ...] = ()
    # Web redirect URIs registered on the app. Entra ignores the port of loopback URIs only.
    redirect_uris: tuple[str, ...] = ()
    # The emulator's app refuses an authorization request without S256 PKCE (Entra makes PKCE
    # optional for confidential clients; this app opts in to requiring it).
    require_pkce: bool = True

    _guids = field_validator("client_id", "service_principal_id")(_check_guid)

    @field_validator("certificate_pem")
    @classmethod
    def _parse_certificate(cls, value: str | None) -> str | None:
        if value is not None:
            x509.load_pem_x509_certificate(value.encode())
        return value

    def certificate(self) -> x509.Certificate | None:
        if self.certificate_pem is None:
            return None
        return x509.load_pem_x509_certificate(self.certificate_pem.encode())


class User(_Strict):
    id: str
    user_principal_name: str
    display_name: str
    given_name: str | None = None
    surname: str | None = None
    mail: str | None = None
    job_title: str | None = None
    user_type: Literal["Member", "Guest"] = "Member"
    account_enabled: bool = True
    # Sign-in credentials of the emulated user: no password means no sign-in at all; no
    # mfa_code means no MFA method registered (the MFA step is skipped).
    password: str | None = Field(default=None, repr=False)
    mfa_code: str | None = Field(default=None, repr=False)

    _guid = field_validator("id")(_check_guid)


class Group(_Strict):
    id: str
    display_name: str
    description: str | None = None
    is_assignable_to_role: bool = True
    members: tuple[str, ...] = ()  # user ids or UPNs; resolved by Tenant

    _guid = field_validator("id")(_check_guid)


class Approver(_Strict):
    """A PIM approver: exactly one of a user or the members of a group."""

    user: str | None = None
    group: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Approver:
        if (self.user is None) == (self.group is None):
            raise ValueError("an approver names exactly one of 'user' or 'group'")
        return self


class ApprovalStageSettings(_Strict):
    """One stage of a role's approval (``approvalStages`` of ``Approval_EndUser_Assignment``)."""

    approvers: tuple[Approver, ...]
    timeout_days: int = Field(default=1, ge=1)  # approvalStageTimeOutInDays
    approver_justification_required: bool = True
    escalation_enabled: bool = False
    escalation_minutes: int = Field(default=0, ge=0)
    escalation_approvers: tuple[Approver, ...] = ()


class ActivationSettings(_Strict):
    """The end-user (activation) rules of a role's PIM policy."""

    maximum_duration: str = "PT8H"
    require_justification: bool = True
    require_ticket: bool = False
    require_mfa: bool = False
    authentication_context: str | None = None
    approval_required: bool = False
    approval_required_for_extension: bool = False
    # A single stage: ``approvers`` with PIM's defaults. Several stages (``approval_mode:
    # Serial``): ``approval_stages``, which then replaces ``approvers``.
    approvers: tuple[Approver, ...] = ()
    approval_mode: Literal["SingleStage", "Serial"] = "SingleStage"
    approval_stages: tuple[ApprovalStageSettings, ...] = ()

    _duration = field_validator("maximum_duration")(_check_duration)

    @model_validator(mode="after")
    def _stages_fit_the_mode(self) -> ActivationSettings:
        if self.approval_stages and self.approvers:
            raise ValueError("give either 'approvers' or 'approval_stages', not both")
        if self.approval_mode == "Serial" and len(self.approval_stages) < 2:
            raise ValueError("approval_mode Serial needs at least two approval_stages")
        if self.approval_mode == "SingleStage" and len(self.approval_stages) > 1:
            raise ValueError("approval_mode SingleStage allows one approval stage")
        return self

    @property
    def maximum(self) -> timedelta:
        return parse_duration(self.maximum_duration)

    @property
    def stages(self) -> tuple[ApprovalStageSettings, ...]:
        """The approval stages in order; ``approvers`` alone is one stage with defaults."""
        return self.approval_stages or (ApprovalStageSettings(approvers=self.approvers),)


class AdminAssignmentSettings(_Strict):
    """The admin (active assignment) rules, which govern ``adminAssign`` by an app."""

    maximum_duration: str = "P180D"
    expiration_required: bool = False
    require_justification: bool = True

    _duration = field_validator("maximum_duration")(_check_duration)

    @property
    def maximum(self) -> timedelta:
        return parse_duration(self.maximum_duration)


class Role(_Strict):
    id: str
    display_name: str
    description: str = ""
    activation: ActivationSettings = ActivationSettings()
    admin_assignment: AdminAssignmentSettings = AdminAssignmentSettings()

    _guid = field_validator("id")(_check_guid)


class Grant(_Strict):
    """An eligibility or a standing assignment of a role to a user or a group."""

    principal: str
    role: str
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class SignInSettings(_Strict):
    """Tenant-wide sign-in behaviour (what Conditional Access and security defaults decide)."""

    require_mfa: bool = True  # every interactive sign-in asks for the second factor
    block_device_code: bool = False  # a Conditional Access policy blocks device-code flow
    device_code_poll_interval: int = Field(default=5, ge=1)
    device_code_lifetime: int = Field(default=900, ge=1)  # seconds; Entra's default is 15 min


class ConditionalAccessPolicy(_Strict):
    """A Conditional Access policy, as much of it as the emulator serves on Graph."""

    id: str
    display_name: str
    state: Literal["enabled", "disabled", "enabledForReportingButNotEnforced"] = "enabled"
    include_roles: tuple[str, ...] = ()  # role ids or names of the tenant's roles
    include_users: tuple[str, ...] = ()  # "All", user ids or UPNs
    include_authentication_contexts: tuple[str, ...] = ()
    built_in_controls: tuple[str, ...] = ("mfa",)
    operator: Literal["AND", "OR"] = "OR"
    created: datetime = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

    _guid = field_validator("id")(_check_guid)


class Tenant(_Strict):
    """A whole emulated tenant; every cross-reference is checked when it is built."""

    tenant_id: str
    display_name: str = "Contoso (emulated)"
    default_domain: str = "contoso.example"
    page_size: int = Field(default=100, ge=1, le=999)
    app: App
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    roles: tuple[Role, ...] = ()
    eligibilities: tuple[Grant, ...] = ()
    assignments: tuple[Grant, ...] = ()
    sign_in: SignInSettings = SignInSettings()
    # Authentication context ids (c1..c99) and the names the admin gave them.
    authentication_contexts: dict[str, str] = Field(default_factory=dict)
    conditional_access_policies: tuple[ConditionalAccessPolicy, ...] = ()

    _guid = field_validator("tenant_id")(_check_guid)

    @model_validator(mode="after")
    def _check_references(self) -> Tenant:
        problems = [*self._duplicate_ids(), *self._dangling_references()]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _duplicate_ids(self) -> list[str]:
        seen: set[str] = set()
        problems = []
        for kind, ids in (
            ("user", [u.id for u in self.users]),
            ("group", [g.id for g in self.groups]),
            ("role", [r.id for r in self.roles]),
        ):
            for object_id in ids:
                if object_id in seen:
                    problems.append(f"{kind} id {object_id} is used twice")
                seen.add(object_id)
        return problems

    def _dangling_references(self) -> list[str]:
        problems = []
        for group in self.groups:
            problems += [
                f"group {group.display_name!r}: member {m!r} is not a user of the tenant"
                for m in group.members
                if self.find_user(m) is None
            ]
        for role in self.roles:
            every_approver = [
                approver
                for stage in role.activation.stages
                for approver in (*stage.approvers, *stage.escalation_approvers)
            ]
            for approver in every_approver:
                if approver.user is not None and self.find_user(approver.user) is None:
                    problems.append(f"role {role.display_name!r}: no user {approver.user!r}")
                if approver.group is not None and self.find_group(approver.group) is None:
                    problems.append(f"role {role.display_name!r}: no group {approver.group!r}")
        for section, grants in (
            ("eligibilities", self.eligibilities),
            ("assignments", self.assignments),
        ):
            for index, grant in enumerate(grants):
                where = f"{section}[{index}]"
                if self.principal_id(grant.principal) is None:
                    problems.append(f"{where}: no user or group {grant.principal!r}")
                grantee = self.find_group(grant.principal)
                if grantee is not None and not grantee.is_assignable_to_role:
                    problems.append(
                        f"{where}: group {grantee.display_name!r} is not role-assignable"
                    )
                if self.find_role(grant.role) is None:
                    problems.append(f"{where}: no role {grant.role!r}")
        for policy in self.conditional_access_policies:
            where = f"conditional access policy {policy.display_name!r}"
            problems += [
                f"{where}: no role {r!r}" for r in policy.include_roles if self.find_role(r) is None
            ]
            problems += [
                f"{where}: no user {u!r}"
                for u in policy.include_users
                if u != "All" and self.find_user(u) is None
            ]
        return problems

    # --- lookups (by id, or by the human name a fixture author writes) ------------------------

    def find_user(self, ref: str) -> User | None:
        lowered = ref.lower()
        return next(
            (u for u in self.users if u.id == lowered or u.user_principal_name.lower() == lowered),
            None,
        )

    def find_group(self, ref: str) -> Group | None:
        return next((g for g in self.groups if ref in (g.id, g.display_name)), None)

    def find_role(self, ref: str) -> Role | None:
        return next((r for r in self.roles if ref in (r.id, r.display_name)), None)

    def principal_id(self, ref: str) -> str | None:
        user, group = self.find_user(ref), self.find_group(ref)
        return user.id if user else group.id if group else None

    def member_ids(self, group: Group) -> list[str]:
        return [user.id for m in group.members if (user := self.find_user(m)) is not None]

    def groups_of(self, user_id: str) -> list[Group]:
        return [g for g in self.groups if user_id in self.member_ids(g)]

    def approver_user_ids(self, approvers: tuple[Approver, ...]) -> set[str]:
        """The users an approver list names: single users and members of groups."""
        ids: set[str] = set()
        for approver in approvers:
            if approver.user is not None and (user := self.find_user(approver.user)):
                ids.add(user.id)
            if approver.group is not None and (group := self.find_group(approver.group)):
                ids.update(self.member_ids(group))
        return ids


def parse_tenant(data: Any, *, source: str = "tenant fixture") -> Tenant:
    """Build a Tenant from already-parsed YAML/JSON; TenantFileError names every problem."""
    try:
        return Tenant.model_validate(data)
    except ValidationError as error:
        lines = [
            f"  {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in error.errors()
        ]
        raise TenantFileError(f"{source} is not a valid tenant:\n" + "\n".join(lines)) from None


def load_tenant(path: Path) -> Tenant:
    """Read and validate a tenant fixture YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise TenantFileError(f"cannot read tenant file {path}: {error}") from None
    return parse_tenant(data, source=str(path))


def default_tenant() -> Tenant:
    """The built-in demo tenant shipped as stand_ins/demo_tenant.yaml."""
    text = resources.files("stand_ins").joinpath("demo_tenant.yaml").read_text("utf-8")
    return parse_tenant(yaml.safe_load(text), source="demo_tenant.yaml")

"""Effective rules per role: PIM's settings (cached briefly) combined with the policy file."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from bot.app.policy_file import PolicyFile
from bot.domain.elevation import RoleRef, Ticket
from bot.domain.errors import PimError, PimRejected
from bot.domain.ports import (
    AccessPolicy,
    ActivationRequest,
    ActivationResult,
    ActiveAssignment,
    Clock,
    DirectoryUser,
    EligibleRole,
    PimClient,
)
from bot.domain.rules import EffectiveRules, RoleSettings, effective_rules

# Role settings change rarely and every modal, click and sweep needs them: a short cache saves
# Graph calls without letting a tightened PIM setting go unnoticed for long.
SETTINGS_TTL = timedelta(minutes=5)
T = TypeVar("T")
log = logging.getLogger(__name__)


class CachedRulesSource:
    def __init__(
        self,
        *,
        pim: PimClient,
        policy: PolicyFile,
        clock: Clock,
        default_channel: str | None = None,
        ttl: timedelta = SETTINGS_TTL,
        default_security_channel: str | None = None,
    ) -> None:
        self._pim = pim
        self._policy = policy
        self._clock = clock
        self._default_channel = default_channel
        self._default_security_channel = default_security_channel
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, RoleSettings]] = {}
        self._lock = threading.Lock()

    def rules_for(self, role: RoleRef) -> EffectiveRules:
        settings = self._settings(role)
        return effective_rules(
            role,
            settings,
            self._policy.policy_for(role),
            default_channel=self._default_channel,
            default_security_channel=self._default_security_channel,
        )

    def _settings(self, role: RoleRef) -> RoleSettings:
        now = self._clock.now()
        with self._lock:
            cached = self._cache.get(role.role_definition_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        settings = self._pim.get_role_settings(role)
        with self._lock:
            self._cache[role.role_definition_id] = (now, settings)
        return settings


# What a person can activate and what they hold is read on every modal, submission and Home
# tab; a short cache keeps the submit path inside Slack's 3-second acknowledgement. Writes made
# through pimbot drop the person's entries at once; changes made elsewhere show within the TTL.
ASSIGNMENT_TTL = timedelta(seconds=60)


class ReadCachingPimClient:
    """A PimClient that remembers eligibility and active assignments per principal briefly."""

    def __init__(self, pim: PimClient, *, clock: Clock, ttl: timedelta = ASSIGNMENT_TTL):
        self._pim = pim
        self._clock = clock
        self._ttl = ttl
        self._eligible: dict[str, tuple[datetime, list[EligibleRole]]] = {}
        self._active: dict[str, tuple[datetime, list[ActiveAssignment]]] = {}
        self._lock = threading.Lock()

    def list_eligible_roles(self, principal_id: str) -> list[EligibleRole]:
        return self._read(self._eligible, principal_id, self._pim.list_eligible_roles)

    def list_active_assignments(self, principal_id: str) -> list[ActiveAssignment]:
        return self._read(self._active, principal_id, self._pim.list_active_assignments)

    def forget(self, principal_id: str) -> None:
        with self._lock:
            self._eligible.pop(principal_id, None)
            self._active.pop(principal_id, None)

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        return self._pim.resolve_user(ref)

    def users_by_email(self, email: str) -> list[DirectoryUser]:
        return self._pim.users_by_email(email)

    def list_group_members(self, group_id: str) -> list[DirectoryUser]:
        return self._pim.list_group_members(group_id)

    def get_role_settings(self, role: RoleRef) -> RoleSettings:
        return self._pim.get_role_settings(role)

    def activate(self, request: ActivationRequest) -> ActivationResult:
        self.forget(request.principal_id)
        try:
            return self._pim.activate(request)
        finally:
            self.forget(request.principal_id)

    def deactivate(self, principal_id: str, role: RoleRef) -> ActivationResult:
        try:
            return self._pim.deactivate(principal_id, role)
        finally:
            self.forget(principal_id)

    def extend(
        self,
        principal_id: str,
        role: RoleRef,
        *,
        new_end: datetime,
        justification: str,
        ticket: Ticket | None = None,
    ) -> ActivationResult:
        try:
            return self._pim.extend(
                principal_id, role, new_end=new_end, justification=justification, ticket=ticket
            )
        finally:
            self.forget(principal_id)

    def get_request(self, graph_request_id: str) -> ActivationResult:
        return self._pim.get_request(graph_request_id)

    def _read(
        self,
        cache: dict[str, tuple[datetime, list[T]]],
        principal_id: str,
        load: Callable[[str], list[T]],
    ) -> list[T]:
        now = self._clock.now()
        with self._lock:
            hit = cache.get(principal_id)
        if hit is not None and now - hit[0] < self._ttl:
            return list(hit[1])
        value = load(principal_id)
        with self._lock:
            cache[principal_id] = (now, value)
        return list(value)

    def fresh(self) -> PimClient:
        """The same client without the read cache, for timers that must see PIM as it is."""
        return _FreshReads(self)


class _FreshReads(ReadCachingPimClient):
    def __init__(self, cached: ReadCachingPimClient) -> None:
        super().__init__(cached._pim, clock=cached._clock, ttl=timedelta(0))
        self._cached = cached

    def forget(self, principal_id: str) -> None:
        self._cached.forget(principal_id)


# Conditional Access policies change rarely; reading them once per activation would cost a
# Graph call each time for the same answer.
ACCESS_POLICIES_TTL = timedelta(minutes=15)


class CachedAccessPolicies:
    """``AccessPolicies`` from one listing of the tenant's policies, kept ``ttl``. Without
    permission (Policy.Read.All) it answers None and stops asking: ``pimbot doctor`` says so."""

    def __init__(
        self,
        load: Callable[[], list[AccessPolicy]],
        *,
        clock: Clock,
        ttl: timedelta = ACCESS_POLICIES_TTL,
    ) -> None:
        self._load, self._clock, self._ttl = load, clock, ttl
        self._lock = threading.Lock()
        self._cached: tuple[datetime, list[AccessPolicy]] | None = None
        self._forbidden = False

    def for_role(self, role_definition_id: str) -> list[AccessPolicy] | None:
        policies = self._policies()
        if policies is None:
            return None
        wanted = role_definition_id.lower()
        return [p for p in policies if wanted in p.include_roles]

    def _policies(self) -> list[AccessPolicy] | None:
        now = self._clock.now()
        with self._lock:
            if self._forbidden:
                return None
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
        try:
            policies = self._load()
        except PimRejected as exc:
            if exc.status == 403:
                log.info("no permission to read Conditional Access policies (Policy.Read.All)")
                with self._lock:
                    self._forbidden = True
            return None
        except PimError:
            return None  # an activation's DM must not wait for, or fail on, this extra
        with self._lock:
            self._cached = (now, policies)
        return policies

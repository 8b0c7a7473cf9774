"""Effective rules per role: PIM's settings (cached briefly) combined with the policy file."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from bot.elevation import RoleRef
from bot.policy_file import PolicyFile
from bot.ports import Clock, PimClient
from bot.rules import EffectiveRules, RoleSettings, effective_rules

# Role settings change rarely and every modal, click and sweep needs them: a short cache saves
# Graph calls without letting a tightened PIM setting go unnoticed for long.
SETTINGS_TTL = timedelta(minutes=5)


class CachedRulesSource:
    def __init__(
        self,
        *,
        pim: PimClient,
        policy: PolicyFile,
        clock: Clock,
        default_channel: str | None = None,
        ttl: timedelta = SETTINGS_TTL,
    ) -> None:
        self._pim = pim
        self._policy = policy
        self._clock = clock
        self._default_channel = default_channel
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, RoleSettings]] = {}
        self._lock = threading.Lock()

    def rules_for(self, role: RoleRef) -> EffectiveRules:
        settings = self._settings(role)
        return effective_rules(
            role, settings, self._policy.policy_for(role), default_channel=self._default_channel
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

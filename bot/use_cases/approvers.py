"""Resolve approver specs (Slack users, Slack user groups, Entra groups, PIM's approvers) to
the people they name right now. Membership is cached briefly: authority is re-checked on every
click, so a stale minute is the worst case, never a stale day."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

from bot.domain.authority import ApproverSet
from bot.domain.ports import Clock, DirectoryUser, PimClient, SlackDirectory
from bot.domain.rules import ApproverKind, ApproverLink, ApproverSpec, EffectiveRules

MEMBERSHIP_TTL = timedelta(seconds=60)


class DirectoryApproverResolver:
    def __init__(
        self,
        *,
        directory: SlackDirectory,
        pim: PimClient,
        clock: Clock,
        ttl: timedelta = MEMBERSHIP_TTL,
    ) -> None:
        self._directory = directory
        self._pim = pim
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, list[str]]] = {}
        self._lock = threading.Lock()

    def resolve(self, specs: Sequence[ApproverSpec], rules: EffectiveRules) -> ApproverSet:
        result = ApproverSet(
            strong_link_required=rules.approver_link is ApproverLink.OPERATOR_OR_SIGN_IN
        )
        for spec in specs:
            result = result.union(self._resolve_one(spec, rules))
        return result

    def slack_ids(self, specs: Sequence[ApproverSpec], rules: EffectiveRules) -> list[str]:
        """Slack ids of everyone the specs name, for DMs when there is no approvals channel."""
        approvers = self.resolve(specs, rules)
        ids = set(approvers.slack_users)
        for entra_id in approvers.entra_users:
            ids.update(self._cached(f"slack-of:{entra_id}", partial(self._slack_of, entra_id)))
        return sorted(ids)

    def _resolve_one(self, spec: ApproverSpec, rules: EffectiveRules) -> ApproverSet:
        if spec.kind is ApproverKind.SLACK_USER:
            return ApproverSet(slack_users=frozenset({spec.value}), named=frozenset({spec.value}))
        if spec.kind is ApproverKind.ENTRA_USER:
            return ApproverSet(entra_users=frozenset({spec.value}), named=frozenset({spec.value}))
        if spec.kind is ApproverKind.SLACK_USERGROUP:
            members = self._cached(
                spec.as_text(), lambda: self._directory.usergroup_members(spec.value)
            )
            return ApproverSet(slack_users=frozenset(members))
        if spec.kind is ApproverKind.ENTRA_GROUP:
            return ApproverSet(entra_users=frozenset(self._group(spec.value)))
        entra: set[str] = set()
        for approver in rules.pim_approvers:
            entra.update(
                self._group(approver.id) if approver.kind == "group" else self._user(approver.id)
            )
        return ApproverSet(entra_users=frozenset(entra))

    def _group(self, group_id: str) -> list[str]:
        """Members who may approve: disabled accounts and guests are skipped."""
        return self._cached(
            f"group:{group_id}",
            lambda: [u.id for u in self._pim.list_group_members(group_id) if _may_approve(u)],
        )

    def _user(self, entra_id: str) -> list[str]:
        """A user PIM lists as approver, unless disabled or a guest (the policy file did not
        name them)."""

        def load() -> list[str]:
            user = self._pim.resolve_user(entra_id)
            return [user.id] if user is not None and _may_approve(user) else []

        return self._cached(f"user:{entra_id}", load)

    def _slack_of(self, entra_id: str) -> list[str]:
        user = self._pim.resolve_user(entra_id)
        if user is None or not user.account_enabled:
            return []
        for email in filter(None, (user.mail, user.user_principal_name)):
            profile = self._directory.user_by_email(email)
            if profile is not None:
                return [profile.user_id]
        return []

    def _cached(self, key: str, load: Callable[[], list[str]]) -> list[str]:
        now = self._clock.now()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return list(hit[1])
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
        return value


def _may_approve(user: DirectoryUser) -> bool:
    return user.account_enabled and not user.is_guest

"""The world the use-case tests share: real storage, fake PIM and Slack, a frozen clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app.policy_file import PolicyFile
from bot.domain.rules import RoleSettings
from bot.use_cases.catalog import CachedRulesSource
from bot.use_cases.services import Ports
from tests.fakes import (
    ADA,
    ALAN,
    APPROVERS,
    GLOBAL_ADMIN,
    GRACE,
    SECURITY_READER,
    FakeApproverResolver,
    FakeClock,
    FakeNotifier,
    FakePimClient,
)

NO_POLICY = PolicyFile()


@pytest.fixture
def world(uow_factory):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    pim = FakePimClient(clock=clock)
    pim.eligible[ADA.entra_id or ""] = [GLOBAL_ADMIN, SECURITY_READER]
    pim.settings[GLOBAL_ADMIN.role_definition_id] = RoleSettings(
        GLOBAL_ADMIN.role_definition_id, max_duration=timedelta(hours=8), approval_required=True
    )
    pim.settings[SECURITY_READER.role_definition_id] = RoleSettings(
        SECURITY_READER.role_definition_id, approval_required=False
    )
    resolver = FakeApproverResolver(group_members={"pim": [GRACE, ALAN, *APPROVERS]})
    notifier = FakeNotifier()

    def build(policy: PolicyFile = NO_POLICY) -> Ports:
        rules = CachedRulesSource(pim=pim, policy=policy, clock=clock)
        return Ports(
            uow=uow_factory,
            pim=pim,
            notifier=notifier,
            clock=clock,
            approvers=resolver,
            rules=rules,
        )

    class World:
        pass

    w = World()
    w.clock, w.pim, w.notifier, w.ports, w.build = clock, pim, notifier, build(), build  # type: ignore[attr-defined]
    return w

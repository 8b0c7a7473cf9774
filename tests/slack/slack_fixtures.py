"""Memorable test data for the Slack-facing tests: people, roles, requests and rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.elevation import ElevationRequest, Person, RoleRef, Ticket
from bot.domain.rules import PIM_APPROVERS, EffectiveRules

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
ADA = Person("T0PIMBOT", "U0ADA", entra_id="ada-entra-id", display_name="Ada Lovelace")
GRACE = Person("T0PIMBOT", "U0GRACE", entra_id="grace-entra-id", display_name="Grace Hopper")
ALAN = Person("T0PIMBOT", "U0ALAN", entra_id="alan-entra-id", display_name="Alan Turing")
GLOBAL_ADMIN = RoleRef("62e90394-69f5-4237-9190-012177145e10", "Global Administrator")
EXCHANGE_ADMIN = RoleRef("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator")


def make_request(**overrides: Any) -> ElevationRequest:
    fields: dict[str, Any] = {
        "requester": ADA,
        "role": GLOBAL_ADMIN,
        "duration": timedelta(hours=2),
        "reason": "Rotate the break-glass account's password after the audit.",
        "at": NOW,
        "ticket": Ticket("INC0012345", "ServiceNow"),
        "quorum": 1,
    }
    fields.update(overrides)
    return ElevationRequest.submit(**fields).snapshot()


def make_rules(role: RoleRef = GLOBAL_ADMIN, **overrides: Any) -> EffectiveRules:
    rules = EffectiveRules(
        role=role,
        max_duration=timedelta(hours=8),
        max_duration_source="PIM",
        justification_required=True,
        ticket_required=False,
        ticket_pattern=None,
        mfa_required=False,
        authentication_context=None,
        approval_required=True,
        approval_required_for_extension=False,
        approvers=(PIM_APPROVERS,),
        pim_approvers=(),
        quorum=1,
        approvals_channel="C0APPROVALS",
        reminder_lead=timedelta(minutes=10),
        break_glass_requesters=(),
    )
    return replace(rules, **overrides)

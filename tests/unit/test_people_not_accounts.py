"""Issue 9, pure parts: quorum counts Entra users, guests and link strength in authority,
the partial index's statuses, the policy keys, the account-state cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.authority import ApproverSet, check_may_decide
from bot.domain.elevation import LIVE_STATUSES, ElevationRequest, Person
from bot.domain.errors import AlreadyDecided, ConfigurationError, NotAuthorized
from bot.domain.ports import DirectoryUser
from bot.domain.rules import ApproverKind, ApproverLink, ApproverSpec
from bot.use_cases.identity import EntraAccounts, account_problem
from storage.tables import LIVE_STATUS_VALUES
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, T0, FakeClock, FakePimClient

GRACE_AGAIN = Person("T0PIMBOT", "U0GRACE2", GRACE.entra_id, "Grace (second account)")


def _request(quorum: int = 2) -> ElevationRequest:
    return ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason="incident 42",
        at=T0,
        quorum=quorum,
    )


def test_two_slack_accounts_of_one_entra_user_approve_once() -> None:
    request = _request()
    assert request.approve(GRACE, at=T0) is False
    with pytest.raises(AlreadyDecided):
        request.approve(GRACE_AGAIN, at=T0)
    assert request.approvals_needed() == 1
    assert request.approve(ALAN, at=T0) is True


def test_quorum_counts_distinct_entra_ids_even_from_stored_decisions() -> None:
    request = _request()
    request.approve(GRACE, at=T0)
    # A decision already stored from another account of the same person (before the fix).
    request.decisions.append(replace(request.decisions[0], approver=GRACE_AGAIN))
    assert request.approvals_needed() == 1


def test_the_partial_index_covers_exactly_the_live_statuses() -> None:
    assert set(LIVE_STATUS_VALUES) == {s.value for s in LIVE_STATUSES}


def test_guests_decide_only_when_named_and_email_links_only_when_allowed() -> None:
    request = _request(quorum=1)
    guest = replace(GRACE, guest=True)
    in_group = ApproverSet(entra_users=frozenset({GRACE.entra_id or ""}))
    with pytest.raises(NotAuthorized, match="guest"):
        check_may_decide(request, guest, in_group)
    named = ApproverSet(
        entra_users=frozenset({GRACE.entra_id or ""}), named=frozenset({GRACE.entra_id or ""})
    )
    check_may_decide(request, guest, named)
    strict = replace(in_group, strong_link_required=True)
    with pytest.raises(NotAuthorized, match="pimbot link"):
        check_may_decide(request, replace(GRACE, linked_by="email"), strict)
    check_may_decide(request, replace(GRACE, linked_by="operator"), strict)


def test_the_policy_file_takes_approver_link_and_entra_user() -> None:
    policy = parse_policy(
        {
            "defaults": {"approver_link": "operator_or_sign_in"},
            "roles": {
                "Global Administrator": {
                    "approver_link": "any",
                    "approvers": [{"entra_user": "9C5F11B1-0383-44F6-A4A6-EB0691C3125F"}],
                }
            },
        }
    )
    assert policy.defaults.approver_link is ApproverLink.OPERATOR_OR_SIGN_IN
    role = policy.policy_for(GLOBAL_ADMIN)
    assert role.approver_link is ApproverLink.ANY
    assert role.approvers == (
        ApproverSpec(ApproverKind.ENTRA_USER, "9c5f11b1-0383-44f6-a4a6-eb0691c3125f"),
    )
    with pytest.raises(ConfigurationError, match="approver_link"):
        parse_policy({"defaults": {"approver_link": "email"}})
    with pytest.raises(ConfigurationError, match="not a user object ID"):
        parse_policy({"defaults": {"approvers": [{"entra_user": "grace"}]}})


class _CountingPim(FakePimClient):
    enabled: bool = True
    lookups: int = 0

    def resolve_user(self, ref: str) -> DirectoryUser | None:
        self.lookups += 1
        return DirectoryUser(ref, "Grace", "grace@contoso.example", account_enabled=self.enabled)


def test_account_state_is_cached_briefly_then_read_again() -> None:
    clock = FakeClock()
    pim = _CountingPim(clock=clock)
    accounts = EntraAccounts(pim, clock=clock, ttl=timedelta(seconds=60))
    assert account_problem(accounts.get("entra-grace")) is None
    pim.enabled = False
    assert account_problem(accounts.get("entra-grace")) is None  # within the TTL
    clock.advance(timedelta(seconds=61))
    assert "disabled" in (account_problem(accounts.get("entra-grace")) or "")
    assert pim.lookups == 2


def test_a_user_graph_did_not_say_is_enabled_counts_as_disabled() -> None:
    from bot.adapters.graph.parsing import directory_user

    stated = directory_user({"id": "u1", "accountEnabled": True, "userType": "Guest"})
    unstated = directory_user({"id": "u2"})
    assert stated is not None and stated.account_enabled and stated.is_guest
    assert unstated is not None and not unstated.account_enabled and not unstated.is_guest

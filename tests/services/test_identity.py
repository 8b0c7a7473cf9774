"""Identity: full members only, linked by operator or by Slack email looked up in Graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.app.policy_file import parse_policy
from bot.domain.errors import IdentityError
from bot.domain.ports import DirectoryUser, IdentityLink, SlackProfile
from bot.domain.rules import PimApprover, RoleSettings
from bot.use_cases.approvers import DirectoryApproverResolver
from bot.use_cases.catalog import CachedRulesSource
from bot.use_cases.identity import Installation, identify, membership_problem
from tests.fakes import GLOBAL_ADMIN, T0, FakeClock, FakePimClient

HOME = Installation("T0PIMBOT")
ADA_PROFILE = SlackProfile("U0ADA", "T0PIMBOT", email="ada@contoso.example", real_name="Ada")


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (None, "could not tell"),
        (SlackProfile("U1", "T0PIMBOT", deleted=True), "deactivated"),
        (SlackProfile("U1", "T0PIMBOT", is_bot=True), "Bots"),
        (SlackProfile("U1", "T0PIMBOT", is_restricted=True), "Guests"),
        (SlackProfile("U1", "T0PIMBOT", is_ultra_restricted=True), "Guests"),
        (SlackProfile("U1", "T0OTHERORG"), "Slack Connect"),
        (SlackProfile("U1", "T0PIMBOT", is_stranger=True), "Slack Connect"),
    ],
)
def test_only_full_members_may_act(profile: SlackProfile | None, words: str) -> None:
    problem = membership_problem(profile, HOME)
    assert problem is not None and words in problem


def test_grid_members_of_another_workspace_in_the_same_org_are_members() -> None:
    grid = Installation("T0PIMBOT", enterprise_id="E0CONTOSO")
    assert (
        membership_problem(SlackProfile("W1", "T0OTHER", enterprise_id="E0CONTOSO"), grid) is None
    )
    assert membership_problem(SlackProfile("W1", "T0OTHER", enterprise_id="E0EVIL"), grid)


@dataclass
class FakeDirectory:
    profiles: dict[str, SlackProfile] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def user_profile(self, user_id: str) -> SlackProfile | None:
        return self.profiles.get(user_id)

    def user_by_email(self, email: str) -> SlackProfile | None:
        return next((p for p in self.profiles.values() if p.email == email), None)

    def usergroup_members(self, handle: str) -> list[str]:
        return self.groups.get(handle, [])


class DirectoryPim(FakePimClient):
    def resolve_user(self, ref: str) -> DirectoryUser | None:
        users = {
            "ada@contoso.example": DirectoryUser(
                "entra-ada", "Ada", "ada@contoso.example", "ada@contoso.example"
            ),
            "entra-grace": DirectoryUser(
                "entra-grace", "Grace", "grace@contoso.example", "grace@contoso.example"
            ),
            "entra-other": DirectoryUser("entra-other", "Ada (other)", "ada2@contoso.example"),
            "entra-alan": DirectoryUser("entra-alan", "Alan", "alan@contoso.example"),
            "entra-off": DirectoryUser(
                "entra-off", "Off", "off@contoso.example", account_enabled=False
            ),
            "entra-guest": DirectoryUser(
                "entra-guest", "Guest", "g#EXT#@contoso.example", user_type="Guest"
            ),
        }
        return users.get(ref)

    def list_group_members(self, group_id: str) -> list[DirectoryUser]:
        return (
            [
                DirectoryUser("entra-grace", "Grace", "grace@contoso.example"),
                DirectoryUser("entra-off", "Off", "off@contoso.example", account_enabled=False),
                DirectoryUser("entra-guest", "Guest", "g#EXT#@contoso.example", user_type="Guest"),
            ]
            if group_id == "group-1"
            else []
        )


def test_first_contact_links_by_email_and_audits(uow_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    directory = FakeDirectory({"U0ADA": ADA_PROFILE})
    person = identify(
        "U0ADA",
        installation=HOME,
        directory=directory,
        pim=DirectoryPim(clock=clock),
        uow=uow_factory,
        clock=clock,
    )
    assert (person.key, person.entra_id) == ("T0PIMBOT/U0ADA", "entra-ada")
    with uow_factory() as uow:
        link = uow.identities.get("T0PIMBOT", "U0ADA")
        actions = [e.action for e in uow.audit.list_recent()]
    assert link is not None and link.source == "email"
    assert actions == ["identity_linked"]


def test_operator_links_win_over_email(uow_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    with uow_factory() as uow:
        uow.identities.link(IdentityLink("T0PIMBOT", "U0ADA", "entra-other", "operator", T0))
        uow.commit()
    person = identify(
        "U0ADA",
        installation=HOME,
        directory=FakeDirectory({"U0ADA": ADA_PROFILE}),
        pim=DirectoryPim(clock=clock),
        uow=uow_factory,
        clock=clock,
    )
    assert person.entra_id == "entra-other"


def test_refusals_are_audited_and_explained(uow_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    directory = FakeDirectory(
        {
            "U0GUEST": SlackProfile("U0GUEST", "T0PIMBOT", is_restricted=True, email="g@x.example"),
            "U0NOMAIL": SlackProfile("U0NOMAIL", "T0PIMBOT"),
            "U0UNKNOWN": SlackProfile("U0UNKNOWN", "T0PIMBOT", email="nobody@contoso.example"),
        }
    )
    for user, words in (
        ("U0GUEST", "Guests"),
        ("U0NOMAIL", "no email"),
        ("U0UNKNOWN", "No Microsoft Entra user"),
    ):
        with pytest.raises(IdentityError, match=words):
            identify(
                user,
                installation=HOME,
                directory=directory,
                pim=DirectoryPim(clock=clock),
                uow=uow_factory,
                clock=clock,
            )
    with uow_factory() as uow:
        assert [e.action for e in uow.audit.list_recent()] == ["identity_refused"] * 3


def test_approver_specs_resolve_to_people() -> None:
    clock = FakeClock()
    pim = DirectoryPim(clock=clock)
    pim.settings[GLOBAL_ADMIN.role_definition_id] = RoleSettings(
        GLOBAL_ADMIN.role_definition_id,
        approval_required=True,
        approvers=(PimApprover("group", "group-1"), PimApprover("user", "entra-alan")),
    )
    directory = FakeDirectory(
        {"U0GRACE": SlackProfile("U0GRACE", "T0PIMBOT", email="grace@contoso.example")},
        {"pim-approvers": ["U0GRACE", "U0ALAN"]},
    )
    resolver = DirectoryApproverResolver(directory=directory, pim=pim, clock=clock)
    policy = parse_policy(
        {
            "roles": {
                "Global Administrator": {
                    "approvers": [
                        {"slack_usergroup": "@pim-approvers"},
                        {"slack_user": "U0BOSS"},
                        {"pim": True},
                    ]
                }
            }
        }
    )
    rules = CachedRulesSource(pim=pim, policy=policy, clock=clock).rules_for(GLOBAL_ADMIN)
    approvers = resolver.resolve(rules.approvers, rules)
    assert approvers.slack_users == {"U0GRACE", "U0ALAN", "U0BOSS"}
    assert approvers.entra_users == {"entra-grace", "entra-alan"}
    assert "U0GRACE" in resolver.slack_ids(rules.approvers, rules)


def test_group_and_pim_approvers_skip_disabled_accounts_and_guests() -> None:
    clock = FakeClock()
    pim = DirectoryPim(clock=clock)
    pim.settings[GLOBAL_ADMIN.role_definition_id] = RoleSettings(
        GLOBAL_ADMIN.role_definition_id,
        approval_required=True,
        approvers=(
            PimApprover("group", "group-1"),
            PimApprover("user", "entra-off"),
            PimApprover("user", "entra-guest"),
        ),
    )
    resolver = DirectoryApproverResolver(directory=FakeDirectory(), pim=pim, clock=clock)
    policy = parse_policy({"roles": {"Global Administrator": {"approvers": [{"pim": True}]}}})
    rules = CachedRulesSource(pim=pim, policy=policy, clock=clock).rules_for(GLOBAL_ADMIN)
    assert resolver.resolve(rules.approvers, rules).entra_users == {"entra-grace"}
    # Named one by one in the policy file, a guest may approve.
    named = parse_policy(
        {"roles": {"Global Administrator": {"approvers": [{"entra_user": _GUEST_GUID}]}}}
    )
    rules = CachedRulesSource(pim=pim, policy=named, clock=clock).rules_for(GLOBAL_ADMIN)
    approvers = resolver.resolve(rules.approvers, rules)
    assert _GUEST_GUID in approvers.entra_users and _GUEST_GUID in approvers.named


_GUEST_GUID = "9c5f11b1-0383-44f6-a4a6-eb0691c3125f"

"""Who is clicking: map a Slack user to a Person with an Entra id, and refuse non-members.

Only full members of the installing organisation may request or approve: not guests, not
Slack Connect externals, not bots, not deactivated accounts. Every refusal is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.elevation import AuditEntry, Person
from bot.errors import IdentityError
from bot.ports import Clock, IdentityLink, PimClient, SlackDirectory, SlackProfile, UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Installation:
    """The Slack organisation pimbot is installed in."""

    team_id: str
    enterprise_id: str | None = None

    def key_for(self, profile: SlackProfile) -> str:
        # Enterprise Grid users keep their W… id across workspaces: key them by the org.
        return self.enterprise_id or profile.team_id


def membership_problem(profile: SlackProfile | None, installation: Installation) -> str | None:
    """Why this person may not use pimbot, in words for them; None for a full member."""
    if profile is None:
        return "Slack could not tell pimbot who you are."
    if profile.deleted:
        return "This Slack account is deactivated."
    if profile.is_bot:
        return "Bots and apps cannot request or approve privileged access."
    if profile.is_restricted or profile.is_ultra_restricted:
        return "Guests cannot request or approve privileged access."
    foreign = profile.is_stranger or (
        profile.enterprise_id != installation.enterprise_id
        if installation.enterprise_id
        else profile.team_id != installation.team_id
    )
    if foreign:
        return "Only members of this organisation can use pimbot (Slack Connect users cannot)."
    return None


def identify(
    user_id: str,
    *,
    installation: Installation,
    directory: SlackDirectory,
    pim: PimClient,
    uow: Callable[[], UnitOfWork],
    clock: Clock,
) -> Person:
    """The Person behind a Slack user id, linked to Entra; IdentityError (audited) otherwise.

    Slack and Graph are asked outside any transaction.
    """
    profile = directory.user_profile(user_id)
    problem = membership_problem(profile, installation)
    if problem is not None:
        _refuse(uow, clock, f"{installation.team_id}/{user_id}", problem)
    assert profile is not None
    team = installation.key_for(profile)
    with uow() as work:
        link = work.identities.get(team, user_id)
    if link is not None:
        return Person(team, user_id, link.entra_id, profile.real_name)
    if not profile.email:
        _refuse(
            uow,
            clock,
            f"{team}/{user_id}",
            "Your Slack profile has no email, so pimbot cannot find your Entra account. "
            "Ask an admin to link you (`pimbot link`).",
        )
    assert profile.email is not None
    user = pim.resolve_user(profile.email)
    if user is None:
        _refuse(
            uow,
            clock,
            f"{team}/{user_id}",
            f"No Microsoft Entra user has the email {profile.email}. Ask an admin to link "
            "your account (`pimbot link`).",
        )
    assert user is not None
    now = clock.now()
    with uow() as work:
        work.identities.link(IdentityLink(team, user_id, user.id, "email", now))
        work.audit.add(
            AuditEntry(
                None,
                f"{team}/{user_id}",
                "identity_linked",
                None,
                None,
                now,
                f"by Slack email -> {user.id}",
            )
        )
        work.commit()
    return Person(team, user_id, user.id, profile.real_name or user.display_name)


def _refuse(uow: Callable[[], UnitOfWork], clock: Clock, actor: str, why: str) -> None:
    log.warning("identity refused", extra={"actor": actor, "why": why})
    with uow() as work:
        work.audit.add(AuditEntry(None, actor, "identity_refused", None, None, clock.now(), why))
        work.commit()
    raise IdentityError(why)

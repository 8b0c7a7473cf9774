"""Who is clicking: map a Slack user to a Person with an Entra id, and refuse non-members.

Only full members of the installing organisation may request or approve: not guests, not
Slack Connect externals, not bots, not deactivated accounts. Every refusal is audited.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from bot.domain.elevation import AuditEntry, Person
from bot.domain.errors import IdentityError, LinkConflict
from bot.domain.ports import (
    Clock,
    DirectoryUser,
    IdentityLink,
    PimClient,
    SlackDirectory,
    SlackProfile,
    UnitOfWork,
)

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


ACCOUNT_TTL = timedelta(seconds=60)


class EntraAccounts:
    """Each Entra user's state (enabled? guest?) as Graph said it within the last minute.

    Read on every click, so disabling an account in Entra stops it within ``ttl``; a user
    Graph no longer knows is None (and refused).
    """

    def __init__(self, pim: PimClient, *, clock: Clock, ttl: timedelta = ACCOUNT_TTL) -> None:
        self._pim, self._clock, self._ttl = pim, clock, ttl
        self._cache: dict[str, tuple[datetime, DirectoryUser | None]] = {}
        self._lock = threading.Lock()

    def get(self, entra_id: str) -> DirectoryUser | None:
        now = self._clock.now()
        with self._lock:
            hit = self._cache.get(entra_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        user = self._pim.resolve_user(entra_id)
        self.remember(entra_id, user, at=now)
        return user

    def remember(self, entra_id: str, user: DirectoryUser | None, *, at: datetime) -> None:
        """What Graph just said of this user (say, while linking by email), for ``get``."""
        with self._lock:
            self._cache[entra_id] = (at, user)


def account_problem(user: DirectoryUser | None) -> str | None:
    """Why this Entra account may not act, in words for its owner; None when it may."""
    if user is None:
        return (
            "Your Slack account is linked to a Microsoft Entra account that no longer exists. "
            "Ask an admin to link you again (`pimbot link`)."
        )
    if not user.account_enabled:
        return "Your Microsoft Entra account is disabled, so you cannot request or approve."
    return None


def identify(
    user_id: str,
    *,
    installation: Installation,
    directory: SlackDirectory,
    pim: PimClient,
    uow: Callable[[], UnitOfWork],
    clock: Clock,
    accounts: EntraAccounts | None = None,
) -> Person:
    """The Person behind a Slack user id, linked to Entra; IdentityError (audited) otherwise.

    Every call checks the Entra account too (``accounts``, cached briefly): a disabled one
    is refused. A first contact links by Slack email only when exactly one Entra user has it
    as mail or UPN, and only if no other Slack account holds that Entra user already.
    Slack and Graph are asked outside any transaction.
    """
    accounts = accounts or EntraAccounts(pim, clock=clock, ttl=timedelta(0))
    profile = directory.user_profile(user_id)
    problem = membership_problem(profile, installation)
    if problem is not None:
        _refuse(uow, clock, f"{installation.team_id}/{user_id}", problem)
    assert profile is not None
    team = installation.key_for(profile)
    actor = f"{team}/{user_id}"
    with uow() as work:
        link = work.identities.get(team, user_id)
    if link is not None:
        return _person(uow, clock, actor, profile, link, accounts.get(link.entra_id))
    if not profile.email:
        _refuse(
            uow,
            clock,
            actor,
            "Your Slack profile has no email, so pimbot cannot find your Entra account. "
            "Ask an admin to link you (`pimbot link`).",
        )
    assert profile.email is not None
    matches = pim.users_by_email(profile.email)
    if not matches:
        _refuse(
            uow,
            clock,
            actor,
            f"No Microsoft Entra user has the email {profile.email}. Ask an admin to link "
            "your account (`pimbot link`).",
        )
    if len(matches) > 1:
        _refuse(
            uow,
            clock,
            actor,
            f"More than one Microsoft Entra user has the email {profile.email}, so pimbot "
            "cannot tell which one is you. Ask an admin to link your account (`pimbot link`).",
        )
    [user] = matches
    accounts.remember(user.id, user, at=clock.now())  # the next click needs no second read
    problem = account_problem(user)
    if problem is not None:
        _refuse(uow, clock, actor, problem)
    now = clock.now()
    made = IdentityLink(team, user_id, user.id, "email", now)
    try:
        with uow() as work:
            # A racing first contact of this same account may have linked it meanwhile.
            raced = work.identities.get(team, user_id)
            if raced is None:
                work.identities.link(made, replace=False)
                work.audit.add(
                    AuditEntry(
                        None,
                        actor,
                        "identity_linked",
                        None,
                        None,
                        now,
                        f"by Slack email -> {user.id}",
                    )
                )
                work.commit()
    except LinkConflict as conflict:
        with uow() as work:
            raced = work.identities.get(team, user_id)
        if raced is None:
            # Another Slack account holds this Entra user: one person, one link.
            _refuse(uow, clock, actor, conflict.user_message, detail=f"claimed {user.id}")
    if raced is not None:
        return _person(uow, clock, actor, profile, raced, accounts.get(raced.entra_id))
    return _person(uow, clock, actor, profile, made, user)


def _person(
    uow: Callable[[], UnitOfWork],
    clock: Clock,
    actor: str,
    profile: SlackProfile,
    link: IdentityLink,
    user: DirectoryUser | None,
) -> Person:
    problem = account_problem(user)
    if problem is not None:
        _refuse(uow, clock, actor, problem)
    assert user is not None
    return Person(
        link.slack_team,
        link.slack_user,
        link.entra_id,
        profile.real_name or user.display_name,
        guest=user.is_guest,
        linked_by=link.source,
    )


def _refuse(
    uow: Callable[[], UnitOfWork], clock: Clock, actor: str, why: str, *, detail: str = ""
) -> NoReturn:
    log.warning("identity refused", extra={"actor": actor, "why": why})
    audited = f"{why} ({detail})" if detail else why
    with uow() as work:
        work.audit.add(
            AuditEntry(None, actor, "identity_refused", None, None, clock.now(), audited)
        )
        work.commit()
    raise IdentityError(why)

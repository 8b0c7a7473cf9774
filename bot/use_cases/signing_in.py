"""Sign-in links and people's tokens, the parts of delegated mode the other use cases build on.

A sign-in link is made for one Slack user and one Entra account: the account it must come back
as is sealed with the flow (``expect``), so a link forwarded to a colleague ("click this to
approve my access") never hands the colleague's tokens, MFA included, to the sender.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.domain.elevation import AuditEntry, Person
from bot.domain.errors import PimbotError, SealBroken, SignInRequired
from bot.domain.ports import (
    Clock,
    PimApprovals,
    PimClient,
    Sealer,
    SignInLink,
    SignInMessages,
    SignInPrompt,
    SignInService,
    StoredSignIn,
    TokenSource,
    UnitOfWork,
)

log = logging.getLogger(__name__)

# Why a sign-in link was made: to connect, to step up for an activation, or to let an
# approver decide PIM's approval as themselves.
CONNECT, STEP_UP, PIM_DECISION = "connect", "step_up", "pim_decision"
DEFAULT_LINK_TTL = timedelta(minutes=10)
# Device-code sign-ins are told apart by their state; Microsoft's codes last about 15 minutes.
DEVICE_STATE = "device-"
DEVICE_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class Delegation:
    """What delegated mode needs; present in ``Ports`` only when it is configured."""

    sign_in: SignInService
    sealer: Sealer
    messages: SignInMessages
    # The Graph PIM client acting as whoever the token source signs in as (selfActivate),
    # and PIM's approvals as that person (an approver deciding).
    pim_as: Callable[[TokenSource], PimClient]
    approvals_as: Callable[[TokenSource], PimApprovals]
    home_tenant: str
    allowed_tenants: frozenset[str] = frozenset()
    link_ttl: timedelta = DEFAULT_LINK_TTL
    # True (PIMBOT_MODE=auto): only roles that need the person's own proof go delegated.
    auto: bool = True

    def tenant_for(self, wanted: str | None) -> str:
        """The tenant a person may sign in to; PimbotError naming the allowed ones otherwise."""
        if not wanted or wanted.casefold() == self.home_tenant.casefold():
            return self.home_tenant
        allowed = {t.casefold(): t for t in self.allowed_tenants}
        if wanted.casefold() in allowed:
            return allowed[wanted.casefold()]
        others = ", ".join(sorted(self.allowed_tenants)) or "none"
        raise PimbotError(
            f"pimbot is not set up for the tenant “{wanted}”. Tenants allowed besides the home "
            f"tenant: {others} (an operator adds them to PIMBOT_TENANTS)."
        )


def make_sign_in_link(
    delegation: Delegation,
    uow: Callable[[], UnitOfWork],
    clock: Clock,
    person: Person,
    *,
    tenant: str,
    purpose: str,
    expect: dict[str, str],
    request_id: str | None = None,
    claims: str | None = None,
    login_hint: str | None = None,
) -> SignInPrompt:
    """Store a single-use sign-in for ``person`` and return what to send them: a link, or
    (no public URL) a device code.

    ``expect`` names the Entra account the sign-in must come back as (``entra_id`` or
    ``username``); it is sealed with msal's flow, so nothing in the URL can change it."""
    now = clock.now()
    prompt: SignInPrompt
    if delegation.sign_in.redirect_uri is None:
        device = delegation.sign_in.begin_device(tenant, claims=claims)
        flow, state = device.flow, DEVICE_STATE + secrets.token_urlsafe(24)
        expires_at = min(device.expires_at, now + delegation.link_ttl + DEVICE_GRACE)
        prompt = SignInPrompt(
            expires_at, user_code=device.user_code, verification_uri=device.verification_uri
        )
    else:
        start = delegation.sign_in.begin(tenant, claims=claims, login_hint=login_hint)
        flow, state = start.flow, str(start.flow["state"])
        expires_at = now + delegation.link_ttl
        prompt = SignInPrompt(expires_at, url=start.auth_uri)
    sealed = delegation.sealer.seal(json.dumps({"flow": flow, "expect": expect}))
    link = SignInLink(
        state=state,
        slack_team=person.slack_team,
        slack_user=person.slack_user,
        tenant=tenant,
        purpose=purpose,
        created_at=now,
        expires_at=expires_at,
        sealed_flow=sealed,
        claims=claims,
        request_id=request_id,
    )
    with uow() as work:
        work.signin_links.add(link)
        work.audit.add(
            AuditEntry(
                request_id=request_id,
                actor=person.key,
                action="sign_in_link_made",
                from_status=None,
                to_status=None,
                at=now,
                detail=f"{purpose} to {tenant}" + (" with a claims challenge" if claims else ""),
            )
        )
        work.commit()
    return prompt


def open_link(delegation: Delegation, link: SignInLink) -> tuple[dict[str, Any], dict[str, str]]:
    """The msal flow and the expected account sealed in a link (SealBroken if tampered)."""
    payload = json.loads(delegation.sealer.open(link.sealed_flow))
    return dict(payload["flow"]), {str(k): str(v) for k, v in payload["expect"].items()}


class PersonToken:
    """Graph tokens as one signed-in person, from their sealed cache; a refreshed cache is
    sealed and stored back (with the newest key, so a key rotation re-seals as people work)."""

    def __init__(
        self,
        delegation: Delegation,
        uow: Callable[[], UnitOfWork],
        clock: Clock,
        person: Person,
        tenant: str,
    ) -> None:
        self._delegation, self._uow, self._clock = delegation, uow, clock
        self._person, self._tenant = person, tenant

    def __repr__(self) -> str:
        return f"PersonToken({self._person.key!r}, tenant={self._tenant!r})"

    def token(self, claims_challenge: str | None = None) -> str:
        stored = stored_sign_in(self._uow, self._person, self._tenant)
        if stored is None:
            raise SignInRequired("You are not signed in to pimbot yet.", claims_challenge)
        try:
            cache = self._delegation.sealer.open(stored.sealed_cache)
        except SealBroken:
            log.warning("a stored sign-in no longer opens (token key rotated away?)")
            raise SignInRequired(
                "Your stored sign-in can no longer be read; sign in again.", claims_challenge
            ) from None
        token, changed = self._delegation.sign_in.access_token(
            self._tenant, cache, entra_id=stored.entra_id, claims=claims_challenge
        )
        if changed is not None:
            now = self._clock.now()
            with self._uow() as work:
                work.sign_ins.put(
                    replace(
                        stored,
                        sealed_cache=self._delegation.sealer.seal(changed),
                        updated_at=now,
                    )
                )
                work.commit()
        return token


def audit_event(
    uow: Callable[[], UnitOfWork],
    clock: Clock,
    *,
    request_id: str | None,
    actor: str,
    action: str,
    detail: str,
) -> None:
    """One audit line of its own (sign-ins and refusals that change no request)."""
    with uow() as work:
        work.audit.add(AuditEntry(request_id, actor, action, None, None, clock.now(), detail))
        work.commit()


def stored_sign_in(
    uow: Callable[[], UnitOfWork], person: Person, tenant: str
) -> StoredSignIn | None:
    with uow() as work:
        return work.sign_ins.get(person.slack_team, person.slack_user, tenant)

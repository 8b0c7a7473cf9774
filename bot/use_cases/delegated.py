"""Delegated mode, as people meet it: `/pim connect`, the sign-in callback, `/pim whoami`,
`/pim disconnect`. Activation as the person lives with the other activations
(``services.activate_request``); the pieces both use are in ``signing_in``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from bot.domain.elevation import AuditEntry, ElevationRequest, Person, RequestStatus
from bot.domain.errors import (
    IdentityError,
    PimbotError,
    PimUnavailable,
    SealBroken,
    SignInFailed,
)
from bot.domain.ports import (
    CompletedSignIn,
    IdentityLink,
    SignInLink,
    SignInPrompt,
    StoredSignIn,
)
from bot.use_cases.pim_approvals import decide_after_sign_in
from bot.use_cases.services import Ports, list_eligible_roles, mode_for, resume_after_sign_in
from bot.use_cases.signing_in import (
    CONNECT,
    PIM_DECISION,
    STEP_UP,
    Delegation,
    audit_event,
    make_sign_in_link,
    open_link,
)

log = logging.getLogger(__name__)


def delegation_of(ports: Ports) -> Delegation:
    if ports.delegation is None:
        raise PimbotError(
            "Signing in is not available: this pimbot runs in broker mode, where pimbot's app "
            "activates roles and no sign-in is needed."
        )
    return ports.delegation


def begin_connect(person: Person, tenant_ref: str | None, *, ports: Ports) -> SignInPrompt:
    """DM ``person`` a single-use sign-in link (or device code); returns what was sent."""
    delegation = delegation_of(ports)
    tenant = delegation.tenant_for(tenant_ref)
    if person.entra_id is None:
        raise IdentityError("pimbot does not know your Microsoft Entra account yet.")
    user = ports.pim.resolve_user(person.entra_id)
    if user is None:
        raise IdentityError("Your Microsoft Entra account no longer exists.")
    # The home tenant knows the person by object id; in another tenant they are a guest
    # there, with an object of that tenant, signing in with their own (home) user name.
    expect = (
        {"entra_id": person.entra_id}
        if tenant == delegation.home_tenant
        else {"username": user.user_principal_name}
    )
    prompt = make_sign_in_link(
        delegation,
        ports.uow,
        ports.clock,
        person,
        tenant=tenant,
        purpose=CONNECT,
        expect=expect,
        login_hint=user.user_principal_name,
    )
    delegation.messages.sign_in_link(
        person,
        prompt,
        why=f"Sign in as {user.user_principal_name} to connect pimbot"
        + (f" to the tenant {tenant}" if tenant != delegation.home_tenant else "")
        + ": roles that need your own MFA are then activated as you.",
    )
    return prompt


@dataclass(frozen=True)
class SignInOutcome:
    """What the callback page says: ``ok`` and words for the person (never a traceback)."""

    ok: bool
    title: str
    message: str
    username: str | None = None


def complete_sign_in(state: str, params: dict[str, str], *, ports: Ports) -> SignInOutcome:
    """The browser came back to ``/auth/callback``: redeem the code, check it is the account
    the link was made for, store the sealed token cache, and resume a held activation."""
    delegation = ports.delegation
    if delegation is None or not state:
        return _refused("This is not a pimbot sign-in link.", "There is nothing to finish here.")
    now = ports.clock.now()
    with ports.uow() as uow:
        link = uow.signin_links.take(state, at=now)
        uow.commit()
    if link is None:
        _audit(ports, None, "sign_in_refused", "unknown or already used state")
        return _refused(
            "This sign-in link was already used",
            "Each link works once. Run `/pim connect` in Slack for a new one.",
        )
    actor = f"{link.slack_team}/{link.slack_user}"
    if now > link.expires_at:
        _audit(ports, link.request_id, "sign_in_refused", "link expired", actor=actor)
        return _refused(
            "This sign-in link has expired",
            "Links work for a few minutes only. Run `/pim connect` in Slack for a new one.",
        )
    try:
        flow, expect = open_link(delegation, link)
    except (SealBroken, ValueError, KeyError):
        _audit(ports, link.request_id, "sign_in_refused", "link unreadable", actor=actor)
        return _refused("This sign-in link cannot be read", "Run `/pim connect` again.")
    try:
        done = delegation.sign_in.complete(link.tenant, flow, params)
    except SignInFailed as exc:
        _audit(ports, link.request_id, "sign_in_failed", exc.code, actor=actor)
        return _refused("The sign-in did not complete", exc.user_message)
    except PimUnavailable as exc:
        return _refused("Microsoft Entra ID could not be reached", exc.user_message)
    return _finish(link, done, expect, ports)


def _finish(
    link: SignInLink, done: CompletedSignIn, expect: dict[str, str], ports: Ports
) -> SignInOutcome:
    """A sign-in came back (by the callback or a device-code poll): check it is the account
    the link was made for, store the sealed cache, and do what the link was made for."""
    delegation = delegation_of(ports)
    actor = f"{link.slack_team}/{link.slack_user}"
    if not _is_expected(done, expect):
        # A link forwarded to someone else, or the wrong account picked: their tokens must
        # never be stored for this Slack user.
        _audit(
            ports,
            link.request_id,
            "sign_in_refused",
            f"signed in as {done.entra_id} ({done.username}), link was for {_expected(expect)}",
            actor=actor,
        )
        return _refused(
            "Signed in with the wrong account",
            f"You signed in as {done.username}, but this link was made for another Microsoft "
            "Entra account. Nothing was stored. If the link was sent to you by someone else, "
            "do not use it; otherwise sign out of Microsoft and run `/pim connect` again.",
        )
    stored = _store(link, done, ports)
    _audit(
        ports,
        link.request_id,
        "signed_in",
        f"{done.username} to {done.tenant_id}"
        + (", MFA" if done.mfa else ", no MFA")
        + (f", acrs {','.join(done.acrs)}" if done.acrs else ""),
        actor=actor,
    )
    person = Person(link.slack_team, link.slack_user, done.entra_id, done.display_name)
    if link.purpose == PIM_DECISION and link.request_id is not None:
        decided = decide_after_sign_in(link.request_id, person, expect, ports=ports)
        words = (
            "Your decision is recorded in PIM."
            if decided is not None
            else "PIM had already moved on; see Slack for where the request stands."
        )
        return SignInOutcome(
            True, f"Connected as {done.username}", f"{words} You can close this tab.", done.username
        )
    resumed = _resume(link, person, ports)
    try:
        delegation.messages.signed_in(person, stored, resumed=resumed)
    except Exception:  # noqa: BLE001 - the sign-in is stored; a lost DM must not undo it
        log.warning("could not DM the signed-in person", exc_info=True)
    message = "You can close this tab and go back to Slack."
    if resumed is not None:
        message = f"{resumed.role.display_name}: {_resumed_words(resumed)} {message}"
    return SignInOutcome(True, f"Connected as {done.username}", message, done.username)


def _store(link: SignInLink, done: CompletedSignIn, ports: Ports) -> StoredSignIn:
    delegation = delegation_of(ports)
    now = ports.clock.now()
    stored = StoredSignIn(
        slack_team=link.slack_team,
        slack_user=link.slack_user,
        tenant=link.tenant,
        entra_id=done.entra_id,
        username=done.username,
        sealed_cache=delegation.sealer.seal(done.cache),
        signed_in_at=now,
        mfa=done.mfa,
        acrs=done.acrs,
        usable_until=None,  # refresh tokens live until revoked; PIM says when it is not enough
        updated_at=now,
    )
    with ports.uow() as uow:
        uow.sign_ins.put(stored)
        existing = uow.identities.get(link.slack_team, link.slack_user)
        if (
            link.tenant == delegation.home_tenant
            and existing is not None
            and (existing.source == "email" and existing.entra_id == done.entra_id)
        ):
            # The sign-in proves what the email match only guessed (approver_link rules).
            uow.identities.link(replace(existing, source="signin", linked_at=now))
        uow.commit()
    return stored


def _resume(link: SignInLink, person: Person, ports: Ports) -> ElevationRequest | None:
    if link.purpose != STEP_UP or link.request_id is None:
        return None
    try:
        return resume_after_sign_in(link.request_id, person, ports=ports)
    except PimbotError as exc:
        log.warning("resuming after sign-in failed: %s", exc.user_message)
        return None


def _resumed_words(request: ElevationRequest) -> str:
    match request.status:
        case RequestStatus.ACTIVE:
            return "active now."
        case RequestStatus.AWAITING_PIM:
            return "waiting for approval in PIM."
        case RequestStatus.AWAITING_SIGN_IN:
            return "PIM asks for more; a new link is in Slack."
        case RequestStatus.FAILED:
            return "could not be activated (details in Slack)."
        case _:
            return "see Slack for where it stands."


def _is_expected(done: CompletedSignIn, expect: dict[str, str]) -> bool:
    if "entra_id" in expect:
        return done.entra_id == expect["entra_id"]
    return bool(done.username) and done.username.casefold() == expect.get("username", "").casefold()


def _expected(expect: dict[str, str]) -> str:
    return expect.get("entra_id") or expect.get("username") or "?"


def _refused(title: str, message: str) -> SignInOutcome:
    return SignInOutcome(False, title, message)


def _audit(
    ports: Ports, request_id: str | None, action: str, detail: str, *, actor: str = "anonymous"
) -> None:
    audit_event(
        ports.uow, ports.clock, request_id=request_id, actor=actor, action=action, detail=detail
    )


@dataclass(frozen=True)
class WhoAmI:
    link: IdentityLink | None
    sign_ins: list[StoredSignIn]
    role_modes: list[tuple[str, str]]  # (role name, "broker" | "delegated")


def who_am_i(person: Person, *, ports: Ports) -> WhoAmI:
    with ports.uow() as uow:
        link = uow.identities.get(person.slack_team, person.slack_user)
        sign_ins = uow.sign_ins.list_for(person.slack_team, person.slack_user)
    role_modes: list[tuple[str, str]] = []
    if person.entra_id is not None:
        for eligible in list_eligible_roles(person, ports=ports):
            rules = ports.rules.rules_for(eligible.role)
            role_modes.append((eligible.role.display_name, mode_for(rules, ports).value))
    return WhoAmI(link, sign_ins, role_modes)


@dataclass(frozen=True)
class Disconnected:
    sign_ins: int
    links: int
    downgraded: bool  # the identity link made by signing in is back to the email match


def disconnect(person: Person, *, ports: Ports) -> Disconnected:
    """Forget every stored sign-in (tokens) and sign-in link of this person."""
    now = ports.clock.now()
    with ports.uow() as uow:
        sign_ins = uow.sign_ins.delete_for(person.slack_team, person.slack_user)
        links = uow.signin_links.delete_for(person.slack_team, person.slack_user)
        existing = uow.identities.get(person.slack_team, person.slack_user)
        downgraded = existing is not None and existing.source == "signin"
        if existing is not None and downgraded:
            uow.identities.link(replace(existing, source="email", linked_at=now))
        uow.audit.add(
            AuditEntry(
                None,
                person.key,
                "disconnected",
                None,
                None,
                now,
                f"{sign_ins} stored sign-in(s), {links} link(s) removed",
            )
        )
        uow.commit()
    return Disconnected(sign_ins, links, downgraded)


def poll_device_sign_ins(*, ports: Ports) -> int:
    """Device-code sign-ins (no public URL): poll each pending one once; finish those the
    person completed, and tell them about those declined, refused or expired. Of two
    replicas polling the same code, only the one whose ``take`` wins stores anything."""
    delegation = ports.delegation
    if delegation is None:
        return 0
    now = ports.clock.now()
    with ports.uow() as uow:
        pending = uow.signin_links.pending_device()
    finished = 0
    for link in pending:
        try:
            flow, expect = open_link(delegation, link)
            done = (
                None if now > link.expires_at else delegation.sign_in.poll_device(link.tenant, flow)
            )
        except PimUnavailable:
            continue  # Entra ID unreachable: poll again next sweep
        except (SignInFailed, SealBroken, ValueError, KeyError) as exc:
            _end_device_sign_in(link, getattr(exc, "user_message", "It could not be read."), ports)
            continue
        if done is None and now > link.expires_at:
            _end_device_sign_in(link, "The code expired before it was used.", ports)
            continue
        if done is None:
            continue
        with ports.uow() as uow:
            taken = uow.signin_links.take(link.state, at=now)
            uow.commit()
        if taken is None:
            continue  # another replica finished it
        outcome = _finish(taken, done, expect, ports)
        if not outcome.ok:
            _tell(link, f"{outcome.title}. {outcome.message}", ports)
        finished += 1
    return finished


def _end_device_sign_in(link: SignInLink, why: str, ports: Ports) -> None:
    with ports.uow() as uow:
        taken = uow.signin_links.take(link.state, at=ports.clock.now())
        uow.commit()
    if taken is None:
        return
    _audit(
        ports, link.request_id, "sign_in_failed", why, actor=f"{link.slack_team}/{link.slack_user}"
    )
    _tell(link, f"Your sign-in did not complete: {why} Run `/pim connect` for a new code.", ports)


def _tell(link: SignInLink, words: str, ports: Ports) -> None:
    delegation = delegation_of(ports)
    try:
        delegation.messages.notice(Person(link.slack_team, link.slack_user), words)
    except Exception:  # noqa: BLE001 - a lost DM must not stop the other sign-ins
        log.warning("could not DM a sign-in's outcome", exc_info=True)

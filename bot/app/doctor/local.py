"""Doctor's local checks: required settings, delegated mode's token key and redirect URI, the
policy file, break-glass, the database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import SQLAlchemyError

from bot.adapters.sealing import FernetSealer
from bot.app.doctor.report import Finding, failed, note, passed
from bot.app.policy_file import PolicyFile, load_policy_file
from bot.app.settings import Settings, is_loopback, redact_url
from bot.domain.errors import ConfigurationError, SealBroken
from storage.database import current_revision, head_revision, make_engine


def check_required_settings(settings: Settings) -> Iterator[Finding]:
    problems = settings.problems_for_run()
    for problem in problems:
        yield failed(problem.removeprefix("environment: "), "set it in pimbot's environment")
    if not problems:
        mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
        yield passed(f"settings: everything `pimbot run` needs is set ({mode})")


# What the token-key check seals and opens: recognisable, and no secret of anybody's.
_SEAL_PROBE = "pimbot doctor: token key round trip"


def check_delegated_mode(settings: Settings) -> Iterator[Finding]:
    """With delegated (or auto) mode on: the token key works, and the redirect URI to register.

    Nothing when the deployment is broker-only: there is no key or sign-in to check."""
    if not settings.delegated_enabled:
        return
    yield _check_token_key(settings)
    yield _check_public_url(settings)
    if settings.redirect_uri is not None:
        yield _check_callback_reachable(settings.redirect_uri)


def _check_token_key(settings: Settings) -> Finding:
    keys = settings.token_keys()
    if not keys:
        return failed(
            "token key: PIMBOT_TOKEN_KEY is not set", "`pimbot token-key` prints one to set"
        )
    sealer = FernetSealer(keys)
    # Each key must open what it sealed, through the sealer as pimbot builds it: the first
    # key seals new values, the others must still open values sealed before a rotation.
    for position, key in enumerate(keys, start=1):
        try:
            opened = sealer.open(FernetSealer([key]).seal(_SEAL_PROBE))
        except SealBroken:
            opened = None
        if opened != _SEAL_PROBE:
            return failed(
                f"token key: key {position} of {len(keys)} does not open what it seals",
                "replace it with one `pimbot token-key` prints",
            )
    count = f"{len(keys)} key{'s' if len(keys) != 1 else ''} configured"
    rotation = "; the first seals, the others still open what they sealed" if len(keys) > 1 else ""
    return passed(f"token key: {count}, each opens what it seals{rotation}")


def _check_public_url(settings: Settings) -> Finding:
    if settings.public_url is None or settings.redirect_uri is None:
        return note(
            "public URL: PIMBOT_PUBLIC_URL is not set, so people sign in by device code",
            "some tenants block device code by Conditional Access; set PIMBOT_PUBLIC_URL to "
            "the https:// address where browsers reach pimbot for the usual sign-in, and "
            "enable 'Allow public client flows' on the app registration for device code",
        )
    parts = urlsplit(settings.public_url)
    if parts.scheme == "https":
        where = ""
    elif parts.scheme == "http" and is_loopback(parts.hostname or ""):
        where = " (http on loopback: only a browser on this machine can finish a sign-in)"
    else:
        return failed(
            f"public URL {settings.public_url}: not https",
            "sign-in codes travel on it: use an https:// address (http only for loopback)",
        )
    return passed(
        f"public URL {settings.public_url}{where}: register the redirect URI "
        f"{settings.redirect_uri} (platform Web) on the app registration"
    )


def _check_callback_reachable(redirect_uri: str) -> Finding:
    """The callback answers as pimbot's, from here. A browser elsewhere may still not reach it
    (a firewall, a proxy that does not forward /auth/callback): that is the operator's to see."""
    try:
        answer = httpx.post(redirect_uri, data={"state": ""}, timeout=5, follow_redirects=False)
    except httpx.HTTPError as exc:
        return note(
            f"redirect URI {redirect_uri}: nothing answers there now ({type(exc).__name__})",
            "fine while pimbot is not running; once it runs, people's browsers must reach it",
        )
    if answer.status_code == 400 and "pimbot" in answer.text:
        return passed(f"redirect URI {redirect_uri}: answers as pimbot's sign-in callback")
    return failed(
        f"redirect URI {redirect_uri}: answered HTTP {answer.status_code}, not as pimbot",
        "point PIMBOT_PUBLIC_URL (and its reverse proxy) at pimbot, forwarding /auth/callback",
    )


def check_policy_file(settings: Settings) -> tuple[PolicyFile | None, Finding]:
    try:
        policy = load_policy_file(settings.policy_file)
    except ConfigurationError as exc:
        fix = "correct it (policy.example.yaml explains every key)"
        return None, failed("policy file: " + "; ".join(exc.problems), fix)
    if policy.source is None:
        return policy, passed("policy file: none set (pimbot follows PIM for every role)")
    named = ", ".join(policy.named_roles()) or "none"
    return policy, passed(f"policy file {policy.source}: valid; roles named: {named}")


def check_break_glass(policy: PolicyFile) -> Iterator[Finding]:
    """Which roles allow break glass, and on which it may bypass PIM's own approval.

    Informational (a ✓ line): an operator should see these every time doctor runs.
    """
    allowed = {
        role: rules for role, rules in sorted(policy.roles.items()) if rules.break_glass_requesters
    }
    if policy.defaults.break_glass_requesters:
        allowed = {"(defaults: every role not named)": policy.defaults, **allowed}
    if not allowed:
        return
    listed = "; ".join(
        f"{role} by {', '.join(rules.break_glass_requesters)}" for role, rules in allowed.items()
    )
    bypass = [role for role, rules in allowed.items() if rules.break_glass_overrides_pim_approval]
    yield passed(
        f"break glass allowed on: {listed}. It may bypass PIM's own approval on: "
        + (", ".join(bypass) if bypass else "no role")
    )


def check_database(settings: Settings) -> Finding:
    url = settings.effective_database_url()
    shown = redact_url(url)
    default = settings.database_url is None
    if default and not (settings.data_dir / "pimbot.db").exists():
        # Do not create it here: `pimbot run` creates and migrates the default SQLite file.
        if settings.data_dir.is_dir() and os.access(settings.data_dir, os.W_OK):
            return passed(f"database {shown}: not created yet; `pimbot run` creates it")
        return failed(
            f"database {shown}: {settings.data_dir} is not a writable directory",
            "point PIMBOT_DATA_DIR at a directory pimbot's user can write to",
        )
    try:
        engine = make_engine(url)
    except SQLAlchemyError as exc:  # an unknown scheme or driver
        return failed(
            f"database {shown}: not a database URL pimbot can use ({type(exc).__name__})",
            "PIMBOT_DATABASE_URL takes postgresql://user:password@host:5432/database",
        )
    try:
        current, head = current_revision(engine), head_revision(engine)
    except SQLAlchemyError as exc:
        return failed(
            f"database {shown}: cannot connect ({type(exc.__cause__ or exc).__name__})",
            "check PIMBOT_DATABASE_URL (host, port, database, user, password) and that the "
            "server accepts connections from here",
        )
    finally:
        engine.dispose()
    if current == head:
        return passed(f"database {shown}: reachable, schema at {current}")
    if default:
        return passed(f"database {shown}: schema at {current}; `pimbot run` migrates it to {head}")
    return failed(
        f"database {shown}: schema at {current or 'nothing (empty)'}, pimbot needs {head}",
        "run `pimbot db upgrade` once with this PIMBOT_DATABASE_URL, then start pimbot",
    )

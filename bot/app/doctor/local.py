"""Doctor's local checks: required settings, the policy file, break-glass, the database."""

from __future__ import annotations

import os
from collections.abc import Iterator

from sqlalchemy.exc import SQLAlchemyError

from bot.app.doctor.report import Finding, failed, passed
from bot.app.policy_file import PolicyFile, load_policy_file
from bot.app.settings import Settings, redact_url
from bot.domain.errors import ConfigurationError
from storage.database import current_revision, head_revision, make_engine


def check_required_settings(settings: Settings) -> Iterator[Finding]:
    problems = settings.problems_for_run()
    for problem in problems:
        yield failed(problem.removeprefix("environment: "), "set it in pimbot's environment")
    if not problems:
        mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
        yield passed(f"settings: everything `pimbot run` needs is set ({mode})")


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

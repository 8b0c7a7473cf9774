"""The ``pimbot`` command line. Each command builds what it needs through ``bot.runtime``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from bot.errors import ConfigurationError, PimbotError
from bot.settings import Settings, redact_url

P = ParamSpec("P")
R = TypeVar("R")
EXIT_CONFIG = 2


def _explain_errors(command: Callable[P, R]) -> Callable[P, R]:
    """People get the message, not a stack trace, for every error pimbot can explain."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ConfigurationError as exc:
            click.echo(exc.user_message, err=True)
            sys.exit(EXIT_CONFIG)
        except PimbotError as exc:
            click.echo(f"pimbot: {exc.user_message}", err=True)
            sys.exit(1)

    return wrapper


def load_settings() -> Settings:
    return Settings.from_env(os.environ)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pimbot")
def main() -> None:
    """pimbot: request, approve and activate Entra PIM roles from Slack."""


@main.command()
@click.option("--port", type=int, default=None, help="HTTP port (default PIMBOT_PORT or 3000).")
@_explain_errors
def run(port: int | None) -> None:
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP) until SIGTERM."""
    from bot.logs import configure_logging
    from bot.runtime import build_slack_runtime, run_until_stopped

    settings = load_settings()
    problems = settings.problems_for_run()
    if problems:
        raise ConfigurationError(problems)
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
    )
    runtime = build_slack_runtime(settings)
    code = run_until_stopped(
        runtime, settings, port=port, announce=lambda line: click.echo(line, err=True)
    )
    logging.shutdown()
    if code != 0:
        # Work still running after the grace: do not wait for it at interpreter exit.
        os._exit(code)
    sys.exit(0)


@main.command()
@_explain_errors
def demo() -> None:
    """Show pimbot's whole job against local stand-ins (no Slack or Azure account needed)."""
    from bot.demo import run_demo

    sys.exit(run_demo())


@main.command()
@_explain_errors
def doctor() -> None:
    """Check a real configuration and say exactly what to fix."""
    from bot.doctor import diagnose, summary

    settings = load_settings()  # invalid settings: every problem listed, exit 2
    findings = []
    # Each finding already says what a library's warning would (a refused token, a retry);
    # those log lines would only interleave with the report.
    logging.disable(logging.WARNING)
    try:
        for finding in diagnose(settings):
            click.echo(finding.line())
            findings.append(finding)
    finally:
        logging.disable(logging.NOTSET)
    all_passed, closing = summary(findings)
    click.echo(closing)
    sys.exit(0 if all_passed else 1)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@_explain_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from bot.runtime import upgrade_database

    settings = load_settings()
    revision = upgrade_database(settings)
    url = redact_url(settings.effective_database_url())
    click.echo(f"database {url} is at revision {revision}")


@main.command()
@click.option(
    "--tenant",
    "tenant_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tenant fixture (YAML); default: the built-in demo tenant.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8443, show_default=True)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the throwaway CA certificate to trust.",
)
@_explain_errors
def emulator(tenant_file: Path | None, host: str, port: int, ca_file: Path | None) -> None:
    """Run the local Microsoft Graph PIM + Entra token emulator over HTTPS."""
    from bot.stand_ins.graph_emulator import run_emulator

    run_emulator(tenant_file=tenant_file, host=host, port=port, ca_path=ca_file)


@main.command()
@click.argument("request_id", required=False)
@click.option("--limit", default=50, show_default=True)
@_explain_errors
def audit(request_id: str | None, limit: int) -> None:
    """Print the audit trail (of one request, or the latest entries)."""
    from bot.runtime import read_audit

    for entry in read_audit(load_settings(), request_id=request_id, limit=limit):
        moved = f"{entry.from_status or '-'} → {entry.to_status or '-'}"
        click.echo(
            f"{entry.at.isoformat()}  {entry.request_id or '-':36}  {entry.actor:24}  "
            f"{entry.action:18} {moved:32} {entry.detail or ''}"
        )


@main.command()
@click.argument("slack_team")
@click.argument("slack_user")
@click.argument("entra_object_id")
@_explain_errors
def link(slack_team: str, slack_user: str, entra_object_id: str) -> None:
    """Link a Slack user (team or enterprise ID, user ID) to an Entra object ID."""
    from bot.runtime import link_identity

    link_identity(load_settings(), slack_team, slack_user, entra_object_id)
    click.echo(f"linked {slack_team}/{slack_user} → {entra_object_id}")

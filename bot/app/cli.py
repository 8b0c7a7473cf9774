"""The ``pimbot`` command line. Each command builds what it needs through ``bot.app.runtime``."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from bot.app.settings import Settings, redact_url
from bot.domain.errors import ConfigurationError, PimbotError

if TYPE_CHECKING:
    from storage.repository import AuditRecord

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


# What `pimbot demo` and `pimbot emulator` need that a production install leaves out.
STAND_IN_MODULES = frozenset({"stand_ins", "trustme", "werkzeug"})


def _require_stand_ins(command: str) -> None:
    """Exit 2 with what to install when the local stand-ins (or their extra) are missing."""
    try:
        import stand_ins.fake_slack  # noqa: F401
        import stand_ins.graph_emulator  # noqa: F401
        import stand_ins.slack_signing  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in STAND_IN_MODULES:
            raise
        click.echo(
            f"pimbot {command} needs the local stand-ins, which a production install leaves "
            f"out ({exc.name} is missing): from a pimbot checkout, `make demo` installs them, "
            "or pip install -e '.[emulator]' --config-settings editable_mode=compat",
            err=True,
        )
        sys.exit(EXIT_CONFIG)


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
    from bot.app.logs import configure_logging
    from bot.app.runtime import build_slack_runtime, run_until_stopped

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
    _require_stand_ins("demo")
    from bot.app.demo import run_demo

    sys.exit(run_demo())


@main.command()
@_explain_errors
def doctor() -> None:
    """Check a real configuration and say exactly what to fix."""
    from bot.app.doctor import diagnose, summary

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


@main.command("token-key")
def token_key() -> None:
    """Print a new key for PIMBOT_TOKEN_KEY (and how to rotate to it)."""
    from bot.adapters.sealing import generate_token_key

    # The key alone on stdout, so that `pimbot token-key > key.txt` or $(pimbot token-key)
    # takes it as it is; the advice goes to stderr.
    click.echo(generate_token_key())
    click.echo(
        "To rotate: put the new key first in PIMBOT_TOKEN_KEY, keep the old one after it "
        "(comma separated) until every stored sign-in was re-sealed with the new key (pimbot "
        "does so whenever it writes a person's sign-in back) or the person signed in again; "
        "a value only a removed key opens means signing in again.",
        err=True,
    )


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@_explain_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from bot.app.runtime import upgrade_database

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
    _require_stand_ins("emulator")
    from stand_ins.graph_emulator import run_emulator

    run_emulator(tenant_file=tenant_file, host=host, port=port, ca_path=ca_file)


class _AuditGroup(click.Group):
    """``pimbot audit [ID] [filters]`` shows entries; ``pimbot audit verify`` checks the chain."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["show", *args]
        return super().parse_args(ctx, args)


class _When(click.ParamType[datetime]):
    """An ISO-8601 date or time (UTC unless it says otherwise), or an age like ``24h``, ``7d``."""

    name = "when"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        from datetime import UTC

        from bot.domain.durations import parse_duration

        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            age = parse_duration(text)
        except ValueError:
            pass
        else:
            if not text.isdigit():
                return datetime.now(UTC) - age
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a date or time (2026-12-01, 2026-12-01T09:30Z) nor an "
                "age (24h, 7d, 90m)",
                param,
                ctx,
            )
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when


_EXPORT_FIELDS = (
    "id",
    "at",
    "request_id",
    "action",
    "from_status",
    "to_status",
    "actor",
    "actor_name",
    "actor_entra_id",
    "requester",
    "requester_name",
    "requester_entra_id",
    "role_name",
    "role_definition_id",
    "reason",
    "ticket_number",
    "ticket_system",
    "detail",
    "prev_hash",
    "hash",
)


@main.group(cls=_AuditGroup)
def audit() -> None:
    """The audit trail: show it (the default), or verify its hash chain."""


@audit.command("show")
@click.argument("request_id", required=False)
@click.option("--request", "request_option", metavar="ID", help="One request (id or its start).")
@click.option("--person", help="A Slack user id (U…, or TEAM/U…) or an Entra object id.")
@click.option("--role", help="A role's display name or role definition id.")
@click.option("--since", type=_When(), help="From this time on: ISO-8601 or an age (24h, 7d).")
@click.option("--until", type=_When(), help="Before this time: ISO-8601 or an age.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="The newest N matching entries (default 50, or all of one request; 0: all).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "jsonl", "csv"]),
    default="text",
    show_default=True,
    help="jsonl and csv carry names next to ids, reason, ticket and the chain hashes.",
)
@_explain_errors
def audit_show(
    request_id: str | None,
    request_option: str | None,
    person: str | None,
    role: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    fmt: str,
) -> None:
    """Print audit entries, oldest first (of one request, or the latest entries).

    In CSV, a cell that a spreadsheet would run as a formula (starting with = + - @) is
    prefixed with a single quote.
    """
    from bot.app.runtime import read_audit
    from storage.repository import AuditQuery

    if request_id and request_option and request_id != request_option:
        raise click.UsageError("give the request id once (argument or --request)")
    wanted = request_id or request_option
    if limit is None:
        limit = 0 if wanted else 50
    query = AuditQuery(
        person=person,
        role=role,
        request_id=wanted,
        since=since,
        until=until,
        limit=limit or None,
    )
    records = read_audit(load_settings(), query)
    if fmt == "jsonl":
        for record in records:
            click.echo(json.dumps(_export_row(record), ensure_ascii=False))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(_EXPORT_FIELDS)
        for record in records:
            row = _export_row(record)
            writer.writerow([_csv_cell(row[name]) for name in _EXPORT_FIELDS])
    else:
        for record in records:
            moved = f"{record.from_status or '-'} → {record.to_status or '-'}"
            actor = f"{record.actor} ({record.actor_name})" if record.actor_name else record.actor
            click.echo(
                f"#{record.id:<6} {record.at.isoformat()}  {record.request_id or '-':36}  "
                f"{actor:24}  {record.action:18} {moved:32} {record.detail or ''}"
            )


def _export_row(record: AuditRecord) -> dict[str, object]:
    row = {name: getattr(record, name) for name in _EXPORT_FIELDS}
    row["at"] = record.at.isoformat()
    return row


def _csv_cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@audit.command("verify")
@_explain_errors
def audit_verify() -> None:
    """Check the audit trail's hash chain: exit 0 if intact, 1 naming the first bad entry."""
    from bot.app.runtime import verify_audit

    report = verify_audit(load_settings())
    if report.intact:
        click.echo(report.line())
        return
    click.echo(report.line(), err=True)
    sys.exit(1)


@main.command()
@click.argument("slack_team")
@click.argument("slack_user")
@click.argument("entra_object_id")
@_explain_errors
def link(slack_team: str, slack_user: str, entra_object_id: str) -> None:
    """Link a Slack user (team or enterprise ID, user ID) to an Entra object ID."""
    from bot.app.runtime import link_identity

    link_identity(load_settings(), slack_team, slack_user, entra_object_id)
    click.echo(f"linked {slack_team}/{slack_user} → {entra_object_id}")

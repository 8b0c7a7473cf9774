"""``pimbot doctor`` with delegated mode on: the token key's round trip, how many keys, and the
redirect URI operators must register; never a key in the output."""

from __future__ import annotations

from bot.adapters.sealing import generate_token_key
from tests.doctor.conftest import Doctor

PUBLIC = "https://pimbot.contoso.com"


def test_delegated_mode_reports_the_keys_and_the_redirect_uri(
    doctor: Doctor, database_url: str
) -> None:
    new, old = generate_token_key(), generate_token_key()
    outcome = doctor.run(
        PIMBOT_DATABASE_URL=database_url,
        PIMBOT_TOKEN_KEY=f"{new},{old}",
        PIMBOT_PUBLIC_URL=PUBLIC + "/",
    )

    assert outcome.exit_code == 0, outcome.output
    assert outcome.line("✓ token key:") == (
        "✓ token key: 2 keys configured, each opens what it seals; the first seals, "
        "the others still open what they sealed"
    )
    assert outcome.line("✓ public URL") == (
        f"✓ public URL {PUBLIC}/: register the redirect URI {PUBLIC}/auth/callback "
        "(platform Web) on the app registration"
    )
    assert new not in outcome.output and old not in outcome.output
    assert new[:12] not in outcome.output and old[:12] not in outcome.output


def test_one_key_and_a_loopback_public_url_are_reported_as_such(doctor: Doctor) -> None:
    outcome = doctor.run(
        PIMBOT_MODE="delegated",
        PIMBOT_TOKEN_KEY=generate_token_key(),
        PIMBOT_PUBLIC_URL="http://127.0.0.1:3000",
    )

    assert outcome.exit_code == 0, outcome.output
    assert outcome.line("✓ token key:") == "✓ token key: 1 key configured, each opens what it seals"
    line = outcome.line("✓ public URL http://127.0.0.1:3000")
    assert "only a browser on this machine can finish a sign-in" in line
    assert "http://127.0.0.1:3000/auth/callback" in line


def test_broker_mode_has_no_delegated_checks(doctor: Doctor) -> None:
    outcome = doctor.run(PIMBOT_MODE="broker", PIMBOT_TOKEN_KEY=generate_token_key())

    assert outcome.exit_code == 0, outcome.output
    assert not [line for line in outcome.lines if "token key" in line or "public URL" in line]


def test_delegated_mode_without_its_key_exits_2_naming_it(doctor: Doctor) -> None:
    # Refused before any check runs (as `pimbot run` refuses to start): MFA roles must never
    # fall back to the app's token because the delegated path is half configured.
    outcome = doctor.run(PIMBOT_MODE="delegated")

    assert outcome.exit_code == 2
    assert "PIMBOT_MODE=delegated needs PIMBOT_TOKEN_KEY" in outcome.output
    # No public URL is no error: people then sign in by device code.
    assert "needs PIMBOT_PUBLIC_URL" not in outcome.output


def test_a_malformed_key_exits_2_naming_its_position_only(doctor: Doctor) -> None:
    good = generate_token_key()
    broken = good[:40] + "$$$$"
    outcome = doctor.run(PIMBOT_TOKEN_KEY=f"{good} {broken}", PIMBOT_PUBLIC_URL=PUBLIC)

    assert outcome.exit_code == 2
    assert "PIMBOT_TOKEN_KEY: key 2 of 2 is not a Fernet key" in outcome.output
    assert good[:40] not in outcome.output


def test_the_checks_themselves_fail_on_a_missing_key_or_url() -> None:
    # from_env refuses these before doctor runs; the checks still say it when built otherwise.
    from bot.app.doctor.local import check_delegated_mode
    from bot.app.doctor.report import Status
    from bot.app.settings import Settings

    findings = list(check_delegated_mode(Settings(deployment_mode="delegated")))  # type: ignore[arg-type]
    assert [f.status for f in findings] == [Status.FAILED, Status.NOTE]
    assert findings[0].line() == (
        "✗ token key: PIMBOT_TOKEN_KEY is not set — `pimbot token-key` prints one to set"
    )
    assert findings[1].line().startswith(
        "i public URL: PIMBOT_PUBLIC_URL is not set, so people sign in by device code"
    )
    assert "Conditional Access" in findings[1].line()

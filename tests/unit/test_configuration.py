"""Settings from the environment and the policy file: every problem named at once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.app.policy_file import load_policy_file, parse_policy
from bot.app.settings import Settings, redact_url
from bot.domain.durations import humanize, parse_duration, to_iso8601
from bot.domain.errors import ConfigurationError
from tests.fakes import GLOBAL_ADMIN

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("45", timedelta(minutes=45)),
        ("PT2.5H", timedelta(hours=2.5)),
        ("1d 2h", timedelta(hours=26)),
    ],
)
def test_durations_parse_in_human_and_iso_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1x",
        "PT",
        "h",
        # Absurd or not numbers at all: refused, never an OverflowError somewhere later.
        "99999999999999",
        "P9999999999D",
        "PT99999999999999H",
        "99999999999d",
        "inf",
        "nan",
        "-5",
        "PT-5M",
        "\u0663\u0660",  # Arabic-Indic digits are not a duration
        "1" * 50,
    ],
)
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_render_for_graph_and_people() -> None:
    assert to_iso8601(timedelta(minutes=90)) == "PT1H30M"
    assert to_iso8601(timedelta(hours=26)) == "PT26H"
    assert humanize(timedelta(minutes=90)) == "1h 30m"


def test_empty_environment_gives_working_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.effective_database_url() == "sqlite:///pimbot.db"
    assert settings.port == 3000
    assert settings.socket_mode is False


def test_every_problem_is_listed_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {
                "PIMBOT_REMINDER_LEAD": "soon",
                "PIMBOT_PORTT": "3000",
                "PIMBOT_PORT": "99999",
                "PIMBOT_POLICY_FILE": "/nonexistent/policy.yaml",
                "AZURE_AUTHORITY_HOST": "http://login.example",
                "PIMBOT_TEST_DATABASE_URL": "ignored: reserved for the test suite",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 4, problems
    text = str(caught.value)
    for words in ("PIMBOT_REMINDER_LEAD", "PIMBOT_PORTT", "PIMBOT_PORT", "https"):
        assert words in text
    # The unreadable policy file is reported once the rest is valid.
    with pytest.raises(ConfigurationError, match="PIMBOT_POLICY_FILE=/nonexistent"):
        Settings.from_env({"PIMBOT_POLICY_FILE": "/nonexistent/policy.yaml"})


def test_missing_secrets_are_named_for_run() -> None:
    problems = Settings.from_env({"AZURE_TENANT_ID": "t"}).problems_for_run()
    text = "\n".join(problems)
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ):
        assert name in text


def test_secrets_never_show_in_repr_or_errors() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-very-secret",
        "AZURE_CLIENT_SECRET": "s3cr3t-value",
        "PIMBOT_DATABASE_URL": "postgresql://u:dbpass@h/db",
        "PIMBOT_PORT": "nope",
    }
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    del env["PIMBOT_PORT"]
    settings = Settings.from_env(env)
    for shown in (repr(settings), str(settings), str(caught.value)):
        for secret in ("xoxb-very-secret", "s3cr3t-value", "dbpass"):
            assert secret not in shown
    assert redact_url(settings.effective_database_url()) == "postgresql+psycopg://u:***@h/db"


def test_the_example_policy_file_is_valid() -> None:
    policy = load_policy_file(REPO / "policy.example.yaml")
    rules = policy.policy_for(GLOBAL_ADMIN)
    assert rules.quorum == 2
    assert rules.max_duration == timedelta(hours=1)
    assert policy.policy_for(GLOBAL_ADMIN.__class__("x", "Unlisted Role")).quorum == 1


def test_policy_problems_name_file_key_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "roles:\n  Global Administrator:\n    quorum: 0\n    max_duratoin: 2h\n"
        "    max_duration: 5\n    approvers: [{slack_user: nobody}]\n"
    )
    with pytest.raises(ConfigurationError) as caught:
        load_policy_file(path)
    problems = caught.value.problems
    assert len(problems) == 4
    assert all(p.startswith(str(path)) for p in problems)
    joined = "\n".join(problems)
    assert "roles.Global Administrator.max_duratoin: unknown key" in joined
    assert "quorum" in joined and "unit" in joined and "not a Slack user ID" in joined


def test_unreadable_or_broken_policy_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("roles: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_policy_file(broken)


def test_auto_approval_with_a_quorum_is_contradictory() -> None:
    with pytest.raises(ConfigurationError, match="auto"):
        parse_policy({"roles": {"Security Reader": {"approval": "auto", "quorum": 2}}})


def test_break_glass_may_bypass_pim_only_where_a_role_says_so() -> None:
    policy = parse_policy(
        {
            "defaults": {"break_glass": ["U0ADA"], "security_channel": "C0SECURITY"},
            "roles": {"Global Administrator": {"break_glass_overrides_pim_approval": True}},
        }
    )
    named = policy.roles["global administrator"]
    assert named.break_glass_requesters == ("U0ADA",)
    assert named.break_glass_overrides_pim_approval and named.security_channel == "C0SECURITY"
    assert not policy.defaults.break_glass_overrides_pim_approval
    with pytest.raises(ConfigurationError, match="set it per role"):
        parse_policy({"defaults": {"break_glass_overrides_pim_approval": True}})
    with pytest.raises(ConfigurationError, match="not a Slack channel ID"):
        parse_policy({"roles": {"Global Administrator": {"security_channel": "#security"}}})


def test_the_security_channel_setting() -> None:
    assert Settings.from_env({"PIMBOT_SECURITY_CHANNEL": "C0SEC"}).security_channel == "C0SEC"

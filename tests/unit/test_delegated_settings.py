"""Delegated mode's settings: the mode's default follows the token key, and every setting it
needs is named when missing or malformed (never echoing a key)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.adapters.sealing import generate_token_key
from bot.app.settings import ENV_NAMES, Settings
from bot.domain.errors import ConfigurationError
from bot.domain.rules import DeploymentMode

KEY = generate_token_key()
PUBLIC = "https://pimbot.contoso.com"
HOME = "aaaaaaaa-0000-4000-8000-000000000001"


def _problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_broker_is_the_default_without_a_token_key() -> None:
    settings = Settings.from_env({})
    assert settings.deployment_mode is DeploymentMode.BROKER
    assert not settings.delegated_enabled
    assert settings.token_keys() == [] and settings.redirect_uri is None


def test_auto_is_the_default_once_a_token_key_is_set() -> None:
    settings = Settings.from_env({"PIMBOT_TOKEN_KEY": KEY, "PIMBOT_PUBLIC_URL": PUBLIC})
    assert settings.deployment_mode is DeploymentMode.AUTO
    assert settings.delegated_enabled
    assert settings.token_keys() == [KEY.encode()]
    assert settings.redirect_uri == "https://pimbot.contoso.com/auth/callback"


@pytest.mark.parametrize("mode", list(DeploymentMode))
def test_every_mode_is_accepted_by_name(mode: DeploymentMode) -> None:
    env = {"PIMBOT_MODE": mode.value, "PIMBOT_TOKEN_KEY": KEY, "PIMBOT_PUBLIC_URL": PUBLIC}
    settings = Settings.from_env(env)
    assert settings.deployment_mode is mode
    assert settings.delegated_enabled is (mode is not DeploymentMode.BROKER)


def test_an_explicit_broker_mode_wins_over_a_token_key() -> None:
    settings = Settings.from_env({"PIMBOT_MODE": "broker", "PIMBOT_TOKEN_KEY": KEY})
    assert settings.deployment_mode is DeploymentMode.BROKER  # and no public URL is needed


def test_an_unknown_mode_lists_the_three() -> None:
    (problem,) = _problems({"PIMBOT_MODE": "sideways"})
    assert problem.startswith("environment: PIMBOT_MODE:")
    assert "'broker', 'delegated' or 'auto'" in problem


def test_delegated_mode_without_a_key_names_it() -> None:
    (problem,) = _problems({"PIMBOT_MODE": "delegated"})
    assert problem.startswith("environment: PIMBOT_MODE=delegated needs PIMBOT_TOKEN_KEY")
    assert "`pimbot token-key` prints one" in problem


def test_without_a_public_url_people_sign_in_by_device_code() -> None:
    settings = Settings.from_env({"PIMBOT_TOKEN_KEY": KEY})
    assert settings.delegated_enabled and settings.redirect_uri is None


def test_explicit_auto_without_a_key_needs_the_key() -> None:
    (problem,) = _problems({"PIMBOT_MODE": "auto", "PIMBOT_PUBLIC_URL": PUBLIC})
    assert problem.startswith("environment: PIMBOT_MODE=auto needs PIMBOT_TOKEN_KEY")


@pytest.mark.parametrize("url", ["http://pimbot.contoso.com", "ftp://pimbot.contoso.com"])
def test_the_public_url_is_https_unless_loopback(url: str) -> None:
    (problem,) = _problems({"PIMBOT_TOKEN_KEY": KEY, "PIMBOT_PUBLIC_URL": url})
    assert problem.startswith("environment: PIMBOT_PUBLIC_URL:")
    local = Settings.from_env(
        {"PIMBOT_TOKEN_KEY": KEY, "PIMBOT_PUBLIC_URL": "http://127.0.0.1:3000/"}
    )
    assert local.redirect_uri == "http://127.0.0.1:3000/auth/callback"


def test_a_malformed_token_key_is_one_line_naming_its_position_not_its_value() -> None:
    broken = KEY[:-6] + "!!!!!="
    problems = _problems({"PIMBOT_TOKEN_KEY": f"{KEY}, {broken}", "PIMBOT_PUBLIC_URL": PUBLIC})
    assert len(problems) == 1
    assert problems[0].startswith("environment: PIMBOT_TOKEN_KEY: key 2 of 2 is not a Fernet key")
    assert KEY not in problems[0] and broken not in problems[0]
    assert KEY[:20] not in problems[0]


def test_token_keys_are_secrets_masked_everywhere() -> None:
    old = generate_token_key()
    settings = Settings.from_env({"PIMBOT_TOKEN_KEY": f"{KEY},{old}", "PIMBOT_PUBLIC_URL": PUBLIC})
    assert KEY not in repr(settings) and old not in repr(settings)
    assert KEY not in str(settings.model_dump())
    assert {KEY, old} <= set(settings.secret_values())  # the log filter masks them
    assert settings.token_keys() == [KEY.encode(), old.encode()]


def test_tenants_are_ids_or_domains_normalised_and_listed_after_the_home_tenant() -> None:
    settings = Settings.from_env(
        {
            "AZURE_TENANT_ID": HOME,
            "PIMBOT_TENANTS": "Fabrikam.onmicrosoft.com, bbbbbbbb-0000-4000-8000-000000000002 "
            f"fabrikam.onmicrosoft.com,{HOME.upper()}",
        }
    )
    assert settings.tenants == (
        "fabrikam.onmicrosoft.com",
        "bbbbbbbb-0000-4000-8000-000000000002",
        HOME,
    )
    assert settings.connectable_tenants == (
        HOME,
        "fabrikam.onmicrosoft.com",
        "bbbbbbbb-0000-4000-8000-000000000002",
    )
    assert Settings.from_env({}).tenants == ()


@pytest.mark.parametrize(
    ("tenant", "says"),
    [
        ("common", "a sign-in audience, not a tenant"),
        ("organizations", "a sign-in audience, not a tenant"),
        ("https://login.microsoftonline.com/contoso", "neither a tenant id"),
        ("contoso", "neither a tenant id"),
        ("aaaaaaaa-0000-4000-8000", "neither a tenant id"),
    ],
)
def test_a_bad_tenant_is_named(tenant: str, says: str) -> None:
    (problem,) = _problems({"PIMBOT_TENANTS": f"contoso.com,{tenant}"})
    assert problem.startswith("environment: PIMBOT_TENANTS:")
    assert says in problem and repr(tenant) in problem


def test_the_sign_in_link_lifetime_defaults_to_ten_minutes_and_is_bounded() -> None:
    assert Settings.from_env({}).signin_link_ttl == timedelta(minutes=10)
    assert Settings.from_env({"PIMBOT_SIGNIN_LINK_TTL": "1h"}).signin_link_ttl == timedelta(hours=1)
    assert Settings.from_env({"PIMBOT_SIGNIN_LINK_TTL": "90s"}).signin_link_ttl == timedelta(
        seconds=90
    )
    (too_long,) = _problems({"PIMBOT_SIGNIN_LINK_TTL": "61m"})
    assert too_long.startswith("environment: PIMBOT_SIGNIN_LINK_TTL: must be at most 1 hour")
    (zero,) = _problems({"PIMBOT_SIGNIN_LINK_TTL": "0s"})
    assert "must be longer than zero" in zero
    (garbage,) = _problems({"PIMBOT_SIGNIN_LINK_TTL": "soon"})
    assert garbage.startswith("environment: PIMBOT_SIGNIN_LINK_TTL:")


def test_the_new_variables_are_pimbot_settings() -> None:
    for name in ("PIMBOT_TOKEN_KEY", "PIMBOT_TENANTS", "PIMBOT_SIGNIN_LINK_TTL", "PIMBOT_MODE"):
        assert name in ENV_NAMES

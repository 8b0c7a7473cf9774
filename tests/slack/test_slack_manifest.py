"""manifest.yml is a valid Slack app manifest with the minimum scopes, each explained."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.blocks import COMMAND, SUBCOMMANDS
from stand_ins.fake_slack import DEFAULT_SCOPES

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "manifest.yml"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST_PATH.read_text())
    assert isinstance(data, dict)
    return data


def test_display_information_fits_the_schema(manifest: dict[str, Any]) -> None:
    info = manifest["display_information"]
    assert info["name"] == "pimbot"
    assert 1 <= len(info["name"]) <= 35
    assert 1 <= len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{3,6}", info["background_color"])


def test_one_slash_command_matching_the_code(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["command"].startswith("/") and 2 <= len(command["command"]) <= 32
    assert 1 <= len(command["description"]) <= 2000
    assert 1 <= len(command["usage_hint"]) <= 1000
    assert command["should_escape"] is False
    for usage, _ in SUBCOMMANDS:
        assert usage in command["usage_hint"]


def test_bot_user_and_app_home(manifest: dict[str, Any]) -> None:
    features = manifest["features"]
    assert 1 <= len(features["bot_user"]["display_name"]) <= 80
    home = features["app_home"]
    assert home["home_tab_enabled"] is True
    assert home["messages_tab_enabled"] is True  # DMs with Extend / Deactivate now


def test_socket_mode_by_default_with_no_request_urls(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["event_subscriptions"] == {"bot_events": ["app_home_opened"]}
    assert "url" not in manifest["features"]["slash_commands"][0]


def test_http_mode_lines_are_there_to_uncomment() -> None:
    text = MANIFEST_PATH.read_text()
    commented = re.findall(r"#\s*(url|request_url): https://<host>/slack/events", text)
    assert sorted(commented) == ["request_url", "request_url", "url"]


def test_bot_scopes_are_the_minimum_and_each_says_why(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert scopes == list(DEFAULT_SCOPES)  # the fake Slack grants exactly these
    assert len(scopes) == len(set(scopes))
    assert all(len(s) <= 50 for s in scopes)
    assert "im:write" not in scopes  # DMs go to the user id; no conversations.open
    lines = MANIFEST_PATH.read_text().splitlines()
    for scope in scopes:
        (i,) = [n for n, line in enumerate(lines) if line.split("#")[0].strip() == f"- {scope}"]
        explained = "#" in lines[i] or lines[i - 1].strip().startswith("#")
        assert explained, f"scope {scope} has no comment saying why"

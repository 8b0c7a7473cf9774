"""The manifest names every command, event and scope pimbot's code uses, and no more."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from handlers.blocks import COMMAND

REPO = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((REPO / "manifest.yml").read_text())
SOURCES = [
    p for d in ("bot", "handlers") for p in (REPO / d).rglob("*.py") if "stand_ins" not in p.parts
]
# Web API method (as slack_sdk names it) -> the bot scope Slack requires for it.
SCOPE_OF = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "users_info": "users:read",
    "users_lookupByEmail": "users:read.email",
    "usergroups_list": "usergroups:read",
    "usergroups_users_list": "usergroups:read",
    "conversations_info": "channels:read",
    "views_open": None,
    "views_update": None,
    "views_publish": None,
    "auth_test": None,
}


def _calls(attribute_owner: str) -> set[tuple[str, str]]:
    """(method, first string argument) for every ``<owner>.<method>(...)`` call in the code,
    and every listener binding ``(<owner>.<method>, key, listener)`` (``handlers.after_ack``)."""
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                method, args = node.func, node.args
            elif (
                isinstance(node, ast.Tuple)
                and len(node.elts) == 3
                and isinstance(node.elts[0], ast.Attribute)
            ):
                method, args = node.elts[0], node.elts[1:2]
            else:
                continue
            owner = method.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if name == attribute_owner:
                first = args[0] if args else None
                value = first.value if isinstance(first, ast.Constant) else ""
                found.add((method.attr, str(value)))
    return found


def test_the_events_the_code_listens_to_are_subscribed() -> None:
    listened = {arg for method, arg in _calls("app") if method == "event"}
    assert listened == set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])


def test_the_slash_command_the_code_registers_is_in_the_manifest() -> None:
    registered = {method for method, _ in _calls("app") if method == "command"}
    assert registered == {"command"}
    assert [c["command"] for c in MANIFEST["features"]["slash_commands"]] == [COMMAND]


def test_every_web_api_method_the_code_calls_has_its_scope() -> None:
    called = {
        method
        for owner in ("client", "_client", "web")
        for method, _ in _calls(owner)
        if re.match(r"^[a-z]+_[a-zA-Z_]+$", method)
    }
    unknown = called - set(SCOPE_OF)
    assert not unknown, f"add these Slack methods to SCOPE_OF: {sorted(unknown)}"
    needed = {SCOPE_OF[m] for m in called} - {None} | {"commands"}
    granted = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    assert needed <= granted, f"missing scopes: {sorted(needed - granted)}"
    unused = granted - needed - {"users:read.email", "channels:read", "groups:read"}
    assert not unused, f"scopes nothing uses: {sorted(unused)}"

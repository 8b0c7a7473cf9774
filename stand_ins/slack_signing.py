"""Realistic, correctly signed Slack payloads, POSTed to the bot's own HTTP endpoint.

The shapes follow Slack's documentation and bolt-python's scenario-test fixtures: slash
commands as a form body, interactivity as ``payload=<json>``, events as a JSON envelope. Each is
signed the way Slack signs (``v0:{timestamp}:{body}``, HMAC-SHA256) so the bot's signature check
runs for real. ``SlackSender`` takes trigger ids and response URLs from a ``FakeSlack`` so that
``views.open`` and ``respond()`` behave as they do against Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from stand_ins.fake_slack import APP_ID, TEAM_ID, FakeSlack, SlackMessage

JSON = dict[str, Any]
STALE_AFTER = 5 * 60  # Bolt refuses timestamps more than five minutes off


def signature(signing_secret: str, timestamp: int, body: str) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    signing_secret: str, body: str, content_type: str, *, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(signing_secret, ts, body),
    }


@dataclass(frozen=True)
class SignedRequest:
    """A body and headers ready to POST, or to hand to ``BoltRequest(body=..., headers=...)``."""

    body: str
    headers: dict[str, str]


FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


def interactivity_body(payload: Mapping[str, Any]) -> str:
    """Interactivity arrives form-encoded: a single ``payload`` field holding JSON."""
    return urlencode({"payload": json.dumps(payload)})


# --- payload shapes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who is clicking: the fields Slack puts in ``user`` / ``user_id``."""

    id: str
    team_id: str = TEAM_ID
    username: str = "someone"
    enterprise_id: str | None = None


def command_form(
    command: str,
    text: str,
    actor: Actor,
    *,
    trigger_id: str,
    response_url: str,
    channel_id: str,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
) -> dict[str, str]:
    form = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",  # legacy verification token; Bolt ignores it
        "team_id": team_id,
        "team_domain": "contoso",
        "channel_id": channel_id,
        "channel_name": "directmessage" if channel_id.startswith("D") else "pim-approvals",
        "user_id": actor.id,
        "user_name": actor.username,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    if actor.enterprise_id:
        form["enterprise_id"] = actor.enterprise_id
        form["enterprise_name"] = "Contoso Grid"
    return form


def _user(actor: Actor) -> JSON:
    user: JSON = {
        "id": actor.id,
        "username": actor.username,
        "name": actor.username,
        "team_id": actor.team_id,
    }
    return user


def _team(team_id: str, enterprise_id: str | None) -> JSON:
    team: JSON = {"id": team_id, "domain": "contoso"}
    if enterprise_id:
        team["enterprise_id"] = enterprise_id
    return team


def block_actions_payload(
    actor: Actor,
    action: JSON,
    *,
    trigger_id: str,
    response_url: str | None,
    message: JSON | None = None,
    channel_id: str | None = None,
    view: JSON | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
) -> JSON:
    payload: JSON = {
        "type": "block_actions",
        "user": _user(actor),
        "api_app_id": api_app_id,
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "trigger_id": trigger_id,
        "team": _team(team_id, actor.enterprise_id),
        "enterprise": {"id": actor.enterprise_id} if actor.enterprise_id else None,
        "is_enterprise_install": False,
        "actions": [action],
        "state": {"values": {}},
    }
    if message is not None:
        payload["container"] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel_id, "name": "pim-approvals"}
        payload["message"] = message
        payload["response_url"] = response_url
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
    return payload


def view_submission_payload(
    actor: Actor,
    view: JSON,
    state_values: JSON,
    *,
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
) -> JSON:
    submitted = {**view, "state": {"values": state_values}}
    if trigger_id is None:
        trigger_id = f"{int(time.time())}.{abs(hash(view['id'])) % 10**10}.submit"
    return {
        "type": "view_submission",
        "team": _team(team_id, actor.enterprise_id),
        "user": _user(actor),
        "api_app_id": view.get("app_id", APP_ID),
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "trigger_id": trigger_id,
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": {"id": actor.enterprise_id} if actor.enterprise_id else None,
    }


def app_home_opened_envelope(
    user_id: str,
    *,
    channel_id: str,
    event_id: str,
    view: JSON | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    bot_user_id: str = "U0PIMBOT",
) -> JSON:
    now = time.time()
    event: JSON = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel_id,
        "tab": "home",
        "event_ts": f"{now:.6f}",
    }
    if view is not None:
        event["view"] = view
    return {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(now),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event_id}",
    }


# --- turning simple values into view state ----------------------------------------------------


def state_values(view: JSON, values: Mapping[str, Any]) -> JSON:
    """``view.state.values`` as Slack sends it, from ``{block_id: simple value}``.

    Every input block appears, as in Slack, with ``None`` where nothing was chosen. Values:
    select → the option value, text/number → str, datetimepicker → epoch seconds or an aware
    datetime, checkboxes → list of option values (or bool for a single checkbox).
    """
    unknown = set(values) - {b.get("block_id") for b in view.get("blocks", [])}
    if unknown:
        raise ValueError(f"no input block(s) {sorted(unknown)} in view {view.get('callback_id')}")
    state: JSON = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        state[block["block_id"]] = {
            element["action_id"]: _element_state(element, values.get(block["block_id"]))
        }
    return state


def _element_state(element: JSON, value: Any) -> JSON:
    kind = element["type"]
    if kind in ("static_select", "radio_buttons"):
        option = _find_option(element, value) if value is not None else None
        return {"type": kind, "selected_option": option}
    if kind == "checkboxes":
        wanted = _checkbox_values(element, value)
        options = [o for o in _options(element) if o["value"] in wanted]
        return {"type": kind, "selected_options": options}
    if kind == "datetimepicker":
        if isinstance(value, datetime):
            value = int(value.timestamp())
        return {"type": kind, "selected_date_time": value}
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        return {"type": kind, "value": None if value is None else str(value)}
    if kind == "users_select":
        return {"type": kind, "selected_user": value}
    raise ValueError(f"state for {kind} elements is not supported")


def _options(element: JSON) -> Iterator[JSON]:
    yield from element.get("options", [])
    for group in element.get("option_groups", []):
        yield from group["options"]


def _find_option(element: JSON, value: Any) -> JSON:
    for option in _options(element):
        if option["value"] == value:
            return dict(option)
    raise ValueError(f"no option {value!r} in {element['action_id']}")


def _checkbox_values(element: JSON, value: Any) -> set[str]:
    if value is True:
        return {o["value"] for o in _options(element)}
    if value in (None, False):
        return set()
    return {str(v) for v in value}


def _find_input(view: JSON, action_id: str) -> tuple[str, JSON]:
    for block in view.get("blocks", []):
        element = block.get("element") or block.get("accessory") or {}
        if element.get("action_id") == action_id:
            return block.get("block_id", ""), element
    raise ValueError(f"no element with action_id {action_id!r} in view {view.get('id')}")


def find_button(blocks: list[JSON], action_id: str) -> tuple[str, JSON]:
    """(block_id, element) of the button with ``action_id``; ValueError if it is not shown."""
    for block in blocks:
        candidates = list(block.get("elements", []))
        if "accessory" in block:
            candidates.append(block["accessory"])
        for element in candidates:
            if element.get("action_id") == action_id:
                return block.get("block_id", ""), element
    raise ValueError(f"no element with action_id {action_id!r} in these blocks")


# --- the sender --------------------------------------------------------------------------------


class SlackSender:
    """Sends what Slack would send when a person uses the app, signed, to ``events_url``."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        fake_slack: FakeSlack | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.fake = fake_slack
        self.http = httpx.Client(timeout=timeout)
        self._event_ids = itertools.count(1)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SlackSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what people do ------------------------------------------------------------------------

    def command(
        self,
        command: str,
        text: str = "",
        *,
        user: str,
        channel_id: str | None = None,
        bad_signature: bool = False,
        stale: bool = False,
    ) -> httpx.Response:
        """A slash command, e.g. ``sender.command("/pim", "request", user="U0ADA")``."""
        request = self.build_command(command, text, user=user, channel_id=channel_id)
        return self.post(request, bad_signature=bad_signature, stale=stale)

    def click(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user: str,
        message: SlackMessage | JSON | None = None,
        view: JSON | None = None,
        block_id: str | None = None,
        bad_signature: bool = False,
        stale: bool = False,
    ) -> httpx.Response:
        """Click a button. Given a ``message`` or ``view``, the button must be on it."""
        request = self.build_click(
            action_id, value, user=user, message=message, view=view, block_id=block_id
        )
        return self.post(request, bad_signature=bad_signature, stale=stale)

    def select(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        view: JSON | str,
        values: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Pick ``value`` in a select that has ``dispatch_action`` (e.g. the role in a modal)."""
        request = self.build_select(action_id, value, user=user, view=view, values=values)
        return self.post(request)

    def submit_view(
        self,
        view: JSON | str,
        values: Mapping[str, Any],
        *,
        user: str,
        bad_signature: bool = False,
        stale: bool = False,
    ) -> httpx.Response:
        """Submit a modal (a view dict as views.open returned it, or its id in the fake)."""
        request = self.build_view_submission(view, values, user=user)
        return self.post(request, bad_signature=bad_signature, stale=stale)

    def open_home(
        self, user: str, *, bad_signature: bool = False, stale: bool = False
    ) -> httpx.Response:
        return self.post(self.build_home_opened(user), bad_signature=bad_signature, stale=stale)

    # --- building ------------------------------------------------------------------------------

    def actor(self, user_id: str) -> Actor:
        if self.fake is not None and user_id in self.fake.workspace.users:
            person = self.fake.user(user_id)
            return Actor(person.id, person.team_id, person.name, person.enterprise_id)
        return Actor(user_id)

    def build_command(
        self, command: str, text: str = "", *, user: str, channel_id: str | None = None
    ) -> SignedRequest:
        channel = channel_id or (self.fake.dm_channel(user) if self.fake else "D0" + user[1:])
        form = command_form(
            command,
            text,
            self.actor(user),
            trigger_id=self._trigger(user),
            response_url=self._response_url(),
            channel_id=channel,
            team_id=self._team_id(),
        )
        return self.sign(urlencode(form), FORM)

    def build_click(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user: str,
        message: SlackMessage | JSON | None = None,
        view: JSON | None = None,
        block_id: str | None = None,
    ) -> SignedRequest:
        message_json, channel_id = _message_json(message)
        blocks = (message_json or view or {}).get("blocks")
        element: JSON = {"type": "button", "text": {"type": "plain_text", "text": action_id}}
        if blocks is not None:
            found_block, element = find_button(blocks, action_id)
            block_id = block_id or found_block
        action: JSON = {
            "action_id": action_id,
            "block_id": block_id or "b",
            "text": element.get("text"),
            "value": value if value is not None else element.get("value"),
            "type": element.get("type", "button"),
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("style"):
            action["style"] = element["style"]
        payload = block_actions_payload(
            self.actor(user),
            action,
            trigger_id=self._trigger(user),
            response_url=self._response_url() if message_json is not None else None,
            message=message_json,
            channel_id=channel_id,
            view=view,
            team_id=self._team_id(),
        )
        return self.sign(interactivity_body(payload), FORM)

    def build_select(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        view: JSON | str,
        values: Mapping[str, Any] | None = None,
    ) -> SignedRequest:
        view = self._view(view)
        block_id, element = _find_input(view, action_id)
        option = _find_option(element, value)
        action: JSON = {
            "type": element["type"],
            "action_id": action_id,
            "block_id": block_id,
            "selected_option": option,
            "action_ts": f"{time.time():.6f}",
        }
        if element.get("placeholder"):
            action["placeholder"] = element["placeholder"]
        current = {
            **view,
            "state": {"values": state_values(view, {block_id: value, **(values or {})})},
        }
        payload = block_actions_payload(
            self.actor(user),
            action,
            trigger_id=self._trigger(user),
            response_url=None,
            view=current,
            team_id=self._team_id(),
        )
        return self.sign(interactivity_body(payload), FORM)

    def _view(self, view: JSON | str) -> JSON:
        if isinstance(view, str):
            if self.fake is None:
                raise ValueError("a view id needs a FakeSlack to look it up")
            return self.fake.view(view)
        return view

    def build_view_submission(
        self, view: JSON | str, values: Mapping[str, Any], *, user: str
    ) -> SignedRequest:
        view = self._view(view)
        # Slack gives every submission its own trigger id: two submissions of the same form
        # with the same values are two requests, never one replayed (pimbot refuses replays).
        payload = view_submission_payload(
            self.actor(user),
            view,
            state_values(view, values),
            team_id=self._team_id(),
            trigger_id=self._trigger(user),
        )
        return self.sign(interactivity_body(payload), FORM)

    def build_home_opened(self, user: str) -> SignedRequest:
        channel = self.fake.dm_channel(user) if self.fake else "D0" + user[1:]
        view = self.fake.home_view(user) if self.fake else None
        envelope = app_home_opened_envelope(
            user,
            channel_id=channel,
            event_id=f"Ev0{next(self._event_ids):08d}",
            view=view,
            team_id=self._team_id(),
        )
        return self.sign(json.dumps(envelope), JSON_TYPE)

    def sign(self, body: str, content_type: str, *, timestamp: int | None = None) -> SignedRequest:
        return SignedRequest(
            body, signed_headers(self.signing_secret, body, content_type, timestamp=timestamp)
        )

    # --- sending -------------------------------------------------------------------------------

    def post(
        self, request: SignedRequest, *, bad_signature: bool = False, stale: bool = False
    ) -> httpx.Response:
        headers = dict(request.headers)
        if stale:
            old = int(time.time()) - STALE_AFTER - 60
            headers.update(signed_headers(self.signing_secret, request.body, "", timestamp=old))
            headers["Content-Type"] = request.headers["Content-Type"]
        if bad_signature:
            headers["X-Slack-Signature"] = signature(
                "not-the-signing-secret", int(headers["X-Slack-Request-Timestamp"]), request.body
            )
        return self.http.post(self.events_url, content=request.body.encode(), headers=headers)

    def _trigger(self, user: str) -> str:
        if self.fake is not None:
            return self.fake.new_trigger_id(user)
        return f"{int(time.time())}.0.{hashlib.sha1(user.encode()).hexdigest()[:21]}"

    def _response_url(self) -> str:
        if self.fake is not None:
            return self.fake.new_response_url()
        return "https://hooks.slack.com/actions/T0PIMBOT/0/unused"

    def _team_id(self) -> str:
        return self.fake.team_id if self.fake is not None else TEAM_ID


def _message_json(message: SlackMessage | JSON | None) -> tuple[JSON | None, str | None]:
    if message is None:
        return None, None
    if isinstance(message, SlackMessage):
        return message.to_api(), message.channel
    return dict(message), message.get("channel")

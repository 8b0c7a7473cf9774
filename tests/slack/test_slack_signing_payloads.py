"""Signed payloads from SlackSender reach a real Bolt app over HTTP and parse as Slack's do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltContext, BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from werkzeug.serving import BaseWSGIServer, make_server

from bot.domain.ports import EligibleRole
from bot.domain.rules import RequestForm
from handlers.blocks import loading_modal, request_card, request_modal
from handlers.forms import parse_request_form
from handlers.ids import ActionId, BlockId, CallbackId
from stand_ins.fake_slack import APPROVALS_CHANNEL, FakeSlack
from stand_ins.slack_signing import SlackSender, signature, state_values
from tests.slack.slack_fixtures import ADA, EXCHANGE_ADMIN, GLOBAL_ADMIN, make_request, make_rules

ELIGIBLE = [EligibleRole(GLOBAL_ADMIN), EligibleRole(EXCHANGE_ADMIN)]
RULES = {r.role_definition_id: make_rules(r) for r in (GLOBAL_ADMIN, EXCHANGE_ADMIN)}


class BoltOverHttp:
    """A minimal Bolt app behind a real HTTP server, recording what its listeners saw."""

    def __init__(self, fake: FakeSlack) -> None:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        self.app = App(client=client, signing_secret=fake.signing_secret)
        self.seen: dict[str, Any] = {}
        self.arrived = threading.Event()
        self._register()
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/slack/events"

    def _register(self) -> None:
        app = self.app

        @app.command("/pim")
        def handle_pim_command(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            self.seen["command"] = body
            client.views_open(trigger_id=body["trigger_id"], view=loading_modal())

        @app.action(ActionId.APPROVE.value)
        def handle_approve_button(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
            ack()
            self.seen["approve"] = (body, context.user_id, context.team_id)
            self.arrived.set()

        @app.action(ActionId.ROLE_SELECT.value)
        def handle_role_select(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            view = body["view"]
            role_id = body["actions"][0]["selected_option"]["value"]
            self.seen["selected"] = (role_id, view["state"]["values"])
            form = request_modal(ELIGIBLE, [], RULES, role_id)
            client.views_update(view_id=view["id"], hash=view["hash"], view=form)

        @app.view(CallbackId.REQUEST_MODAL.value)
        def handle_request_modal_submission(ack: Ack, view: dict[str, Any]) -> None:
            parsed = parse_request_form(view["state"]["values"])
            if isinstance(parsed, dict):
                ack(response_action="errors", errors=parsed)
                return
            self.seen["form"] = parsed  # before ack(): the test reads it once the HTTP reply is in
            ack()

        @app.event("app_home_opened")
        def handle_home_opened(event: dict[str, Any], client: WebClient) -> None:
            client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode()
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        response = self.app.dispatch(BoltRequest(body=body, headers=headers))
        start_response(
            f"{response.status} -",
            [(k, v) for k, values in response.headers.items() for v in values],
        )
        return [response.body.encode()]

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def bolt(fake_slack: FakeSlack) -> Iterator[BoltOverHttp]:
    server = BoltOverHttp(fake_slack)
    yield server
    server.close()


@pytest.fixture
def sender(bolt: BoltOverHttp, fake_slack: FakeSlack) -> Iterator[SlackSender]:
    with SlackSender(bolt.url, fake_slack.signing_secret, fake_slack) as s:
        yield s


def test_signature_is_the_one_slack_sdk_verifies() -> None:
    verifier = SignatureVerifier("s3cret")
    ts = int(datetime.now(UTC).timestamp())
    body = "token=x&command=%2Fpim"
    assert verifier.is_valid(body, str(ts), signature("s3cret", ts, body))
    assert not verifier.is_valid(body, str(ts), signature("other", ts, body))


def test_slash_command_reaches_bolt_and_its_trigger_id_opens_a_modal(
    sender: SlackSender, bolt: BoltOverHttp, fake_slack: FakeSlack
) -> None:
    response = sender.command("/pim", "request", user="U0ADA")
    assert response.status_code == 200
    (opened,) = fake_slack.wait_for("views.open")
    assert opened.ok, opened.response
    body = bolt.seen["command"]
    assert (body["user_id"], body["team_id"], body["text"]) == ("U0ADA", "T0PIMBOT", "request")
    assert body["response_url"].startswith(fake_slack.url)


def test_bad_signature_and_stale_timestamp_are_refused(sender: SlackSender) -> None:
    assert sender.command("/pim", user="U0ADA", bad_signature=True).status_code == 401
    assert sender.command("/pim", user="U0ADA", stale=True).status_code == 401


def test_clicking_a_button_on_a_posted_card_sends_its_value_and_the_clicker(
    sender: SlackSender, bolt: BoltOverHttp, fake_slack: FakeSlack, client: WebClient
) -> None:
    request = make_request()
    card = request_card(request, approver_names=["Grace Hopper"])
    client.chat_postMessage(channel=APPROVALS_CHANNEL, text=card.text, blocks=card.blocks)
    (message,) = fake_slack.messages(APPROVALS_CHANNEL)

    response = sender.click(ActionId.APPROVE.value, user="U0GRACE", message=message)

    assert response.status_code == 200
    assert bolt.arrived.wait(5)
    body, user_id, team_id = bolt.seen["approve"]
    assert (user_id, team_id) == ("U0GRACE", "T0PIMBOT")
    action = body["actions"][0]
    assert action["value"] == request.id
    assert action["block_id"] == BlockId.DECISION_ACTIONS.value
    assert body["container"] == {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": APPROVALS_CHANNEL,
        "is_ephemeral": False,
    }
    assert body["user"]["team_id"] == "T0PIMBOT"


def test_a_button_that_is_not_on_the_message_cannot_be_clicked(
    sender: SlackSender, fake_slack: FakeSlack, client: WebClient
) -> None:
    request = make_request()
    request.cancel(ADA, at=request.created_at)
    card = request_card(request)
    client.chat_postMessage(channel=APPROVALS_CHANNEL, text=card.text, blocks=card.blocks)
    (message,) = fake_slack.messages(APPROVALS_CHANNEL)
    with pytest.raises(ValueError, match="pim-approve"):
        sender.click(ActionId.APPROVE.value, user="U0GRACE", message=message)


def open_request_modal(fake_slack: FakeSlack, client: WebClient) -> dict[str, Any]:
    view = request_modal(ELIGIBLE, [], RULES)
    opened = client.views_open(trigger_id=fake_slack.new_trigger_id("U0ADA"), view=view)
    return dict(opened["view"])


def test_submitting_the_request_modal_delivers_a_parsed_form(
    sender: SlackSender, bolt: BoltOverHttp, fake_slack: FakeSlack, client: WebClient
) -> None:
    view = open_request_modal(fake_slack, client)
    start = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    response = sender.submit_view(
        view["id"],
        {
            BlockId.ROLE: GLOBAL_ADMIN.role_definition_id,
            BlockId.DURATION: "PT2H",
            BlockId.REASON: "Rotate the keys",
            BlockId.START: start,
        },
        user="U0ADA",
    )
    assert response.status_code == 200
    assert response.text == ""
    assert bolt.seen["form"] == RequestForm(
        role_definition_id=GLOBAL_ADMIN.role_definition_id,
        duration=timedelta(hours=2),
        reason="Rotate the keys",
        start=start,
    )


def test_an_unparseable_submission_answers_with_field_errors(
    sender: SlackSender, fake_slack: FakeSlack, client: WebClient
) -> None:
    view = open_request_modal(fake_slack, client)
    response = sender.submit_view(view, {BlockId.REASON: "no role chosen"}, user="U0ADA")
    assert response.status_code == 200
    assert response.json() == {
        "response_action": "errors",
        "errors": {BlockId.ROLE.value: "Choose a role."},
    }


def test_state_values_names_every_input_block_like_slack(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    view = open_request_modal(fake_slack, client)
    state = state_values(view, {})
    assert set(state) == {
        BlockId.ROLE,
        BlockId.DURATION,
        BlockId.REASON,
        BlockId.TICKET_NUMBER,
        BlockId.TICKET_SYSTEM,
        BlockId.START,
    }
    assert state[BlockId.ROLE][ActionId.ROLE_SELECT] == {
        "type": "static_select",
        "selected_option": None,
    }
    with pytest.raises(ValueError, match="no option"):
        state_values(view, {BlockId.ROLE: "not-a-role"})


def test_opening_the_home_tab_sends_an_app_home_opened_event(
    sender: SlackSender, fake_slack: FakeSlack
) -> None:
    response = sender.open_home("U0ADA")
    assert response.status_code == 200
    (published,) = fake_slack.wait_for("views.publish")
    assert published.args["user_id"] == "U0ADA"


def test_choosing_a_role_in_the_modal_sends_block_actions_with_the_view_state(
    sender: SlackSender, bolt: BoltOverHttp, fake_slack: FakeSlack, client: WebClient
) -> None:
    open_request_modal(fake_slack, client)
    view = fake_slack.latest_view("U0ADA")
    response = sender.select(
        ActionId.ROLE_SELECT.value,
        EXCHANGE_ADMIN.role_definition_id,
        user="U0ADA",
        view=view,
        values={BlockId.REASON: "typed before choosing"},
    )
    assert response.status_code == 200
    (updated,) = fake_slack.wait_for("views.update")
    assert updated.ok, updated.response
    role_id, state = bolt.seen["selected"]
    assert role_id == EXCHANGE_ADMIN.role_definition_id
    assert state[BlockId.REASON][ActionId.REASON_INPUT]["value"] == "typed before choosing"
    role_block = fake_slack.latest_view("U0ADA")["blocks"][0]
    assert role_block["element"]["initial_option"]["value"] == EXCHANGE_ADMIN.role_definition_id

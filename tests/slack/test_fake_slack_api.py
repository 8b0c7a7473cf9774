"""The fake Slack Web API, driven by the real slack_sdk WebClient, answers like Slack."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from stand_ins.fake_slack import (
    APPROVALS_CHANNEL,
    APPROVERS_GROUP,
    DEFAULT_SCOPES,
    FakeSlack,
    Workspace,
    default_workspace,
)

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}


def modal(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Request a PIM role"},
        "blocks": [SECTION],
    }
    view.update(overrides)
    return view


def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return str(caught.value.response["error"])


# --- auth ----------------------------------------------------------------------------------------


def test_auth_test_names_the_bot_and_lists_granted_scopes(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    response = client.auth_test()
    assert response["ok"] is True
    assert response["team_id"] == "T0PIMBOT"
    assert response["user_id"] == "U0PIMBOT"
    assert response["bot_id"] == "B0PIMBOT"
    assert response["url"] == "https://contoso.slack.com/"
    assert response.headers["x-oauth-scopes"].split(",") == list(DEFAULT_SCOPES)


def test_scopes_are_configurable_for_doctor_checks() -> None:
    workspace = default_workspace()
    workspace.scopes = ("commands", "chat:write")
    with FakeSlack(workspace) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        assert client.auth_test().headers["x-oauth-scopes"] == "commands,chat:write"
        with pytest.raises(SlackApiError) as caught:
            client.users_info(user="U0ADA")
        assert caught.value.response["error"] == "missing_scope"
        assert caught.value.response["needed"] == "users:read"


def test_wrong_token_is_invalid_auth_and_no_token_is_not_authed(fake_slack: FakeSlack) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    assert error_of(wrong.auth_test) == "invalid_auth"
    anonymous = WebClient(base_url=fake_slack.api_url)
    assert error_of(anonymous.auth_test) == "not_authed"


def test_bolt_app_starts_against_the_fake(fake_slack: FakeSlack) -> None:
    client = WebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url)
    App(signing_secret=fake_slack.signing_secret, client=client)
    assert len(fake_slack.calls("auth.test")) == 1


# --- chat ----------------------------------------------------------------------------------------


def test_post_message_returns_unique_increasing_ts_and_stores_the_message(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel=APPROVALS_CHANNEL, text="one", blocks=[SECTION])
    second = client.chat_postMessage(channel=APPROVALS_CHANNEL, text="two")
    assert first["channel"] == APPROVALS_CHANNEL
    assert float(second["ts"]) > float(first["ts"])
    assert len(first["ts"].split(".")[1]) == 6
    stored = fake_slack.messages(APPROVALS_CHANNEL)
    assert [m.text for m in stored] == ["one", "two"]
    assert stored[0].blocks == [SECTION]
    assert first["message"]["bot_id"] == "B0PIMBOT"


def test_calls_record_parsed_arguments_including_decoded_blocks(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    client.chat_postMessage(channel=APPROVALS_CHANNEL, text="card", blocks=[SECTION])
    (call,) = fake_slack.calls("chat.postMessage")
    assert call.args["blocks"] == [SECTION]
    assert call.token == fake_slack.bot_token
    assert call.ok


def test_posting_to_a_user_id_delivers_to_their_dm_channel(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    response = client.chat_postMessage(channel="U0ADA", text="Your role is active")
    assert response["channel"].startswith("D")
    assert response["channel"] == fake_slack.dm_channel("U0ADA")
    assert fake_slack.messages(response["channel"])[0].text == "Your role is active"


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("C0NOWHERE", "channel_not_found"),
        ("C0GENERAL", "not_in_channel"),  # exists, but pimbot was never invited
        ("U0NOBODY", "channel_not_found"),
        ("U0DEPLOYBOT", "cannot_dm_bot"),
    ],
)
def test_post_message_refuses_channels_like_slack(
    client: WebClient, channel: str, error: str
) -> None:
    assert error_of(lambda: client.chat_postMessage(channel=channel, text="x")) == error


def test_post_message_without_text_or_blocks_is_no_text(client: WebClient) -> None:
    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns before sending
        assert error_of(lambda: client.chat_postMessage(channel=APPROVALS_CHANNEL)) == "no_text"


def test_more_than_fifty_blocks_in_a_message_is_invalid_blocks(client: WebClient) -> None:
    blocks = [dict(SECTION, block_id=f"b{i}") for i in range(51)]
    call = lambda: client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x", blocks=blocks)  # noqa: E731
    assert error_of(call) == "invalid_blocks"
    fifty = blocks[:50]
    assert client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x", blocks=fifty)["ok"]


def test_duplicate_block_ids_are_invalid_blocks(client: WebClient) -> None:
    blocks = [dict(SECTION, block_id="same"), dict(SECTION, block_id="same")]
    call = lambda: client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x", blocks=blocks)  # noqa: E731
    assert error_of(call) == "invalid_blocks"


def test_chat_update_replaces_the_bots_own_message(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel=APPROVALS_CHANNEL, text="pending")
    updated = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="approved")
    assert updated["ts"] == posted["ts"]
    message = fake_slack.message(APPROVALS_CHANNEL, posted["ts"])
    assert (message.text, message.edits) == ("approved", 1)


def test_chat_update_refuses_unknown_and_foreign_messages(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    assert (
        error_of(lambda: client.chat_update(channel=APPROVALS_CHANNEL, ts="1.000001", text="x"))
        == "message_not_found"
    )
    theirs = fake_slack.add_message(APPROVALS_CHANNEL, "hello from grace", user="U0GRACE")
    assert (
        error_of(lambda: client.chat_update(channel=APPROVALS_CHANNEL, ts=theirs.ts, text="x"))
        == "cant_update_message"
    )


def test_post_ephemeral_needs_the_user_in_the_channel(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    ok = client.chat_postEphemeral(channel=APPROVALS_CHANNEL, user="U0GRACE", text="only you")
    assert ok["message_ts"]
    assert fake_slack.ephemeral_messages()[0]["user"] == "U0GRACE"
    call = lambda: client.chat_postEphemeral(channel=APPROVALS_CHANNEL, user="U0ADA", text="x")  # noqa: E731
    assert error_of(call) == "user_not_in_channel"


# --- views ---------------------------------------------------------------------------------------


def test_views_open_needs_a_fresh_single_use_trigger_id(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    trigger = fake_slack.new_trigger_id("U0ADA")
    opened = client.views_open(trigger_id=trigger, view=modal(callback_id="pim-request-modal"))
    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["hash"]
    assert view["callback_id"] == "pim-request-modal"
    assert view["state"] == {"values": {}}
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=modal())) == (
        "expired_trigger_id"
    )
    assert error_of(lambda: client.views_open(trigger_id="12.34.never-issued", view=modal())) == (
        "expired_trigger_id"
    )


def test_trigger_ids_expire_after_three_seconds() -> None:
    now = [1_700_000_000.0]
    with FakeSlack(clock=lambda: now[0]) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        trigger = fake.new_trigger_id("U0ADA")
        now[0] += 3.5
        assert error_of(lambda: client.views_open(trigger_id=trigger, view=modal())) == (
            "expired_trigger_id"
        )


@pytest.mark.parametrize(
    "bad_view",
    [
        modal(title={"type": "plain_text", "text": "A title longer than 24 chars"}),
        modal(blocks=[dict(SECTION, block_id=f"b{i}") for i in range(101)]),
        modal(
            blocks=[
                {
                    "type": "input",
                    "block_id": "reason",
                    "label": {"type": "plain_text", "text": "Reason"},
                    "element": {"type": "plain_text_input", "action_id": "r"},
                }
            ]
        ),  # input blocks without a submit button
        modal(private_metadata="x" * 3001),
        {"type": "dialog", "blocks": [SECTION]},
    ],
)
def test_views_open_rejects_invalid_views(
    fake_slack: FakeSlack, client: WebClient, bad_view: dict[str, Any]
) -> None:
    trigger = fake_slack.new_trigger_id("U0ADA")
    with pytest.raises(SlackApiError) as caught:
        client.views_open(trigger_id=trigger, view=bad_view)
    assert caught.value.response["error"] == "invalid_arguments"
    assert caught.value.response["response_metadata"]["messages"]


def test_views_update_checks_the_hash(fake_slack: FakeSlack, client: WebClient) -> None:
    opened = client.views_open(trigger_id=fake_slack.new_trigger_id("U0ADA"), view=modal())
    view_id, first_hash = opened["view"]["id"], opened["view"]["hash"]
    updated = client.views_update(view_id=view_id, hash=first_hash, view=modal())
    assert updated["view"]["id"] == view_id
    assert updated["view"]["hash"] != first_hash
    stale = lambda: client.views_update(view_id=view_id, hash=first_hash, view=modal())  # noqa: E731
    assert error_of(stale) == "hash_conflict"
    assert error_of(lambda: client.views_update(view_id="V0NOPE", view=modal())) == "not_found"
    assert fake_slack.view(view_id)["hash"] == updated["view"]["hash"]


def test_views_publish_sets_a_users_home_tab(fake_slack: FakeSlack, client: WebClient) -> None:
    home = {"type": "home", "blocks": [SECTION]}
    published = client.views_publish(user_id="U0ADA", view=home)
    assert published["view"]["type"] == "home"
    stored = fake_slack.home_view("U0ADA")
    assert stored is not None and stored["blocks"] == [SECTION]
    assert error_of(lambda: client.views_publish(user_id="U0ADA", view=modal())) == (
        "invalid_arguments"
    )
    assert error_of(lambda: client.views_publish(user_id="U0NOBODY", view=home)) == (
        "user_not_found"
    )


# --- directory -----------------------------------------------------------------------------------


def test_users_info_has_the_fields_an_identity_check_needs(client: WebClient) -> None:
    ada = client.users_info(user="U0ADA")["user"]
    assert ada["team_id"] == "T0PIMBOT"
    assert ada["profile"]["email"] == "ada@contoso.example"
    assert ada["profile"]["real_name"] == "Ada Lovelace"
    assert ada["tz"] == "Europe/London"
    assert isinstance(ada["tz_offset"], int)
    for flag in ("deleted", "is_bot", "is_app_user", "is_restricted", "is_ultra_restricted"):
        assert ada[flag] is False
    assert client.users_info(user="U0GUEST")["user"]["is_restricted"] is True
    assert client.users_info(user="U0EXTERNAL")["user"]["team_id"] != "T0PIMBOT"
    assert client.users_info(user="U0DEPLOYBOT")["user"]["is_bot"] is True
    assert client.users_info(user="U0GONE")["user"]["deleted"] is True
    assert error_of(lambda: client.users_info(user="U0NOBODY")) == "user_not_found"


def test_email_is_hidden_without_users_read_email() -> None:
    workspace = default_workspace()
    workspace.scopes = tuple(s for s in workspace.scopes if s != "users:read.email")
    with FakeSlack(workspace) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        assert "email" not in client.users_info(user="U0ADA")["user"]["profile"]


def test_enterprise_grid_users_carry_enterprise_user() -> None:
    workspace = Workspace(enterprise_id="E0CONTOSO")
    workspace.add_user("W0ADA", "ada", email="ada@contoso.example")
    with FakeSlack(workspace) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        user = client.users_info(user="W0ADA")["user"]
        assert user["enterprise_user"]["enterprise_id"] == "E0CONTOSO"


def test_users_lookup_by_email(client: WebClient) -> None:
    assert client.users_lookupByEmail(email="Grace@Contoso.example")["user"]["id"] == "U0GRACE"
    assert error_of(lambda: client.users_lookupByEmail(email="nobody@contoso.example")) == (
        "users_not_found"
    )


def test_usergroups(fake_slack: FakeSlack, client: WebClient) -> None:
    groups = client.usergroups_list(include_users=True)["usergroups"]
    assert [(g["handle"], g["users"]) for g in groups] == [("pim-approvers", ["U0GRACE", "U0ALAN"])]
    assert client.usergroups_users_list(usergroup=APPROVERS_GROUP)["users"] == [
        "U0GRACE",
        "U0ALAN",
    ]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S0NOPE")) == ("no_such_subteam")
    added = fake_slack.add_usergroup("sec-oncall", ["U0ALAN"])
    assert client.usergroups_users_list(usergroup=added.id)["users"] == ["U0ALAN"]


def test_conversations_info_reports_membership_and_sharing(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    approvals = client.conversations_info(channel=APPROVALS_CHANNEL)["channel"]
    assert (approvals["is_member"], approvals["is_ext_shared"]) == (True, False)
    assert client.conversations_info(channel="C0SHARED")["channel"]["is_ext_shared"] is True
    assert client.conversations_info(channel="C0GENERAL")["channel"]["is_member"] is False
    fake_slack.add_channel("G0SECRET", "secret", members=["U0ADA"], is_private=True)
    assert error_of(lambda: client.conversations_info(channel="G0SECRET")) == "channel_not_found"


def test_conversations_open_needs_im_write() -> None:
    workspace = default_workspace()
    with FakeSlack(workspace) as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        assert error_of(lambda: client.conversations_open(users="U0ADA")) == "missing_scope"
        workspace.scopes = (*workspace.scopes, "im:write")
        assert client.conversations_open(users="U0ADA")["channel"]["id"] == "D0ADA"


# --- rate limits, failures, webhooks, waiting ----------------------------------------------------


def test_rate_limited_call_is_429_with_retry_after(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    fake_slack.rate_limit_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x")["ok"]


def test_rate_limit_error_retry_handler_retries_after_429(fake_slack: FakeSlack) -> None:
    client = WebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake_slack.rate_limit_next("chat.postMessage", 1, retry_after=0)
    assert client.chat_postMessage(channel=APPROVALS_CHANNEL, text="x")["ok"]
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [429, 200]


def test_fail_next_answers_with_a_chosen_error(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.fail_next("views.publish", "fatal_error")
    home = {"type": "home", "blocks": [SECTION]}
    assert error_of(lambda: client.views_publish(user_id="U0ADA", view=home)) == "fatal_error"
    assert client.views_publish(user_id="U0ADA", view=home)["ok"]


def test_response_url_posts_are_recorded(fake_slack: FakeSlack) -> None:
    url = fake_slack.new_response_url()
    WebhookClient(url).send(text="Only you can see this", response_type="ephemeral")
    (call,) = fake_slack.calls("response_url")
    assert call.args["text"] == "Only you can see this"
    assert call.path.startswith("/webhook/")


def test_wait_for_sees_calls_made_from_other_threads(
    fake_slack: FakeSlack, client: WebClient
) -> None:
    def later() -> None:
        time.sleep(0.1)
        client.chat_postMessage(channel="U0ADA", text="done")

    threading.Thread(target=later).start()
    calls = fake_slack.wait_for("chat.postMessage", 1, timeout=5)
    assert calls[0].args["text"] == "done"


def test_wait_for_fails_clearly_when_nothing_comes(fake_slack: FakeSlack) -> None:
    with pytest.raises(AssertionError, match="expected 1 call"):
        fake_slack.wait_for("chat.update", 1, timeout=0.1)

"""The baseline for ack times: a bare Bolt app that only acks, on pimbot's server kind.

waitress with pimbot's 16 threads and the same server options, Bolt verifying the same
signing secret; one listener per payload kind that calls ``ack()`` and nothing else. What
pimbot adds on top of this, per request, is what the suite's ack rows show.

    SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=... PIMBOT_SLACK_API_URL=... \
        python -m benchmarks.bare_bolt --port 3999
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

import waitress
from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from handlers.http import waitress_options

MAX_BODY = 1024 * 1024


def make_app(signing_secret: str, token: str, api_url: str) -> Callable[..., Iterable[bytes]]:
    # The same Web API client set-up as pimbot's: Bolt's single-team authorization calls
    # auth.test once (the fake Slack answers) and caches it; no listener calls the Web API.
    app = App(
        client=WebClient(token=token, base_url=api_url),
        signing_secret=signing_secret,
        token_verification_enabled=False,
    )

    def just_ack(ack: Ack) -> None:
        ack()

    app.command(re.compile(".*"))(just_ack)
    app.action(re.compile(".*"))(just_ack)
    app.view(re.compile(".*"))(just_ack)
    slack = SlackRequestHandler(app)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"ok": true}']
        return slack(environ, start_response)

    return application


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    needed = ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "PIMBOT_SLACK_API_URL")
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        print(f"not set: {', '.join(missing)}", file=sys.stderr)
        return 2
    app = make_app(*(os.environ[name] for name in needed))
    server: Any = waitress.create_server(
        app, host="127.0.0.1", port=args.port, threads=16, **waitress_options(MAX_BODY)
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

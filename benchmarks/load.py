"""The load generator: POSTs pre-signed Slack payloads all at once, from its own process.

It runs apart from the suite (which hosts the fake Slack and the Graph emulator) so that the
stand-ins' work never delays the client's clock. Reads JSON from stdin::

    {"url": "http://127.0.0.1:N/slack/events", "requests": [{"body": "...", "headers": {...}}]}

opens one connection per request, releases every thread at once, and prints JSON::

    {"started_at": <epoch seconds at release>, "seconds": [...], "statuses": [...]}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import httpx


def fire(url: str, requests: list[dict[str, Any]]) -> dict[str, Any]:
    count = len(requests)
    barrier = threading.Barrier(count + 1)
    seconds: list[float] = [0.0] * count
    statuses: list[int] = [0] * count

    def send(index: int, request: dict[str, Any]) -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            started = time.perf_counter()
            try:
                response = client.post(
                    url, content=request["body"].encode(), headers=request["headers"]
                )
                statuses[index] = response.status_code
            except httpx.HTTPError:
                statuses[index] = -1
            seconds[index] = time.perf_counter() - started

    threads = [
        threading.Thread(target=send, args=(i, r), daemon=True) for i, r in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started_at = time.time()
    for thread in threads:
        thread.join()
    return {"started_at": started_at, "seconds": seconds, "statuses": statuses}


def main() -> int:
    job = json.load(sys.stdin)
    print(json.dumps(fire(job["url"], job["requests"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

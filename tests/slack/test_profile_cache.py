"""users.info answers are cached briefly, per person, bounded, one call in flight at a time."""

from __future__ import annotations

import threading
import time
from typing import Any

from bot.domain.ports import SlackProfile
from handlers.directory import CachedSlackDirectory


class CountingDirectory:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self._lock = threading.Lock()

    def user_profile(self, user_id: str) -> SlackProfile | None:
        with self._lock:
            self.calls.append(user_id)
        time.sleep(self.delay)
        return None if user_id == "U0GONE" else SlackProfile(user_id, "T0PIMBOT")

    def user_by_email(self, email: str) -> Any:
        raise AssertionError("not cached, not called here")

    def usergroup_members(self, handle: str) -> list[str]:
        return []


def test_a_profile_is_read_once_per_ttl_and_a_missing_user_too() -> None:
    now = [0.0]
    inner = CountingDirectory()
    cache = CachedSlackDirectory(inner, ttl=60, clock=lambda: now[0])  # type: ignore[arg-type]
    assert cache.user_profile("U0ADA") == SlackProfile("U0ADA", "T0PIMBOT")
    assert cache.user_profile("U0ADA") is not None
    assert cache.user_profile("U0GONE") is None and cache.user_profile("U0GONE") is None
    assert inner.calls == ["U0ADA", "U0GONE"]
    now[0] = 61.0  # a deactivation in Slack shows within the TTL
    cache.user_profile("U0ADA")
    assert inner.calls == ["U0ADA", "U0GONE", "U0ADA"]


def test_the_cache_is_bounded_oldest_out() -> None:
    inner = CountingDirectory()
    cache = CachedSlackDirectory(inner, ttl=60, size=2)  # type: ignore[arg-type]
    for user in ("U1", "U2", "U3"):
        cache.user_profile(user)
    cache.user_profile("U3")
    cache.user_profile("U1")  # fell out: read again
    assert inner.calls == ["U1", "U2", "U3", "U1"]


def test_concurrent_reads_of_one_person_make_one_call() -> None:
    inner = CountingDirectory(delay=0.2)
    cache = CachedSlackDirectory(inner, ttl=60)  # type: ignore[arg-type]
    threads = [threading.Thread(target=cache.user_profile, args=("U0ADA",)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert inner.calls == ["U0ADA"]

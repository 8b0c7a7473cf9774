"""Emulator time: a base clock plus an offset that tests and the demo can move forward."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _real_now() -> datetime:
    return datetime.now(UTC)


class EmulatorClock:
    """``now()`` is ``base() + offset``; PIM schedules (starts, ends, expiry) follow it."""

    def __init__(self, base: Callable[[], datetime] | None = None) -> None:
        self._base = base or _real_now
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        value = self._base() + offset
        if value.tzinfo is None:
            raise ValueError("the emulator clock must return timezone-aware datetimes")
        return value.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta():
            raise ValueError("emulator time only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()

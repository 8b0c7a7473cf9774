"""Two small pieces of concurrency used by Slack listeners and Graph reads alike."""

from __future__ import annotations

import contextvars
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ContextPreservingExecutor(ThreadPoolExecutor):
    """Runs each task in a copy of the submitting thread's ``contextvars`` context (the log
    lines of the task keep the interaction's correlation id)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def run() -> T:
            return context.run(fn, *args, **kwargs)

        return super().submit(run)


class SingleFlight(Generic[T]):
    """Per-key values kept ``ttl`` seconds, at most ``size`` keys (least recently used out).
    Of concurrent loads of one key only one runs; the others wait for its answer. A failed
    load is not kept."""

    def __init__(
        self, ttl: float, *, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._lock = threading.Lock()
        self._values: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._loading: dict[str, threading.Event] = {}

    def get(self, key: str, load: Callable[[str], T]) -> T:
        while True:
            with self._lock:
                hit = self._values.get(key)
                if hit is not None and self._clock() - hit[0] < self._ttl:
                    self._values.move_to_end(key)
                    return hit[1]
                waiting = self._loading.get(key)
                if waiting is None:
                    self._loading[key] = threading.Event()
                    break
            waiting.wait(timeout=30)
        try:
            value = load(key)
            with self._lock:
                self._values[key] = (self._clock(), value)
                self._values.move_to_end(key)
                while len(self._values) > self._size:
                    self._values.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._loading.pop(key).set()

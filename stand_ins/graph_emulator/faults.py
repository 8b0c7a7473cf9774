"""Run-time fault knobs: latency, throttling, failures, dropped connections, message format.

They apply to Graph requests (``/v1.0/...``) only; the token service and the ``/_emulator``
control endpoints are never slowed down or failed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

PolicyMessageFormat = Literal["bracketed", "described"]
_FORMATS = ("bracketed", "described")


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one Graph request before (or instead of) answering it."""

    latency: float = 0.0
    drop: bool = False
    fail_status: int | None = None
    throttle_retry_after: str | None = None


class Faults:
    """Thread-safe knobs. Counters (``*_next``) are consumed one per matching request."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        throttle_every: int = 0,
        retry_after: str = "1.5",
        policy_message_format: PolicyMessageFormat = "bracketed",
    ) -> None:
        self._lock = threading.Lock()
        self.latency = latency
        self.throttle_every = throttle_every
        self.retry_after = retry_after
        # "bracketed": The following policy rules failed: ["JustificationRule"] (documented);
        # "described": ... failed: JustificationRule - Justification is required (seen 2026).
        self.policy_message_format: PolicyMessageFormat = policy_message_format
        self._throttle_next: list[str] = []
        self._fail_next: list[int] = []
        self._drop_next = 0
        self._drop_create_responses = 0

    def throttle_next(self, n: int, retry_after: str = "1.5") -> None:
        with self._lock:
            self._throttle_next += [str(retry_after)] * n

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail_next += [status] * n

    def drop_next(self, n: int) -> None:
        """Close the connection of the next ``n`` Graph requests without answering."""
        with self._lock:
            self._drop_next += n

    def drop_response_of_next_create(self, n: int = 1) -> None:
        """Process the next ``n`` roleAssignmentScheduleRequests POSTs, then drop the answer."""
        with self._lock:
            self._drop_create_responses += n

    def reset(self) -> None:
        with self._lock:
            self.latency, self.throttle_every, self.retry_after = 0.0, 0, "1.5"
            self.policy_message_format = "bracketed"
            self._throttle_next, self._fail_next = [], []
            self._drop_next = self._drop_create_responses = 0

    def decide(self, request_number: int) -> FaultDecision:
        """Consume the knobs for the ``request_number``-th Graph request (1-based)."""
        with self._lock:
            latency = self.latency
            if self._drop_next:
                self._drop_next -= 1
                return FaultDecision(latency, drop=True)
            if self._fail_next:
                return FaultDecision(latency, fail_status=self._fail_next.pop(0))
            if self._throttle_next:
                return FaultDecision(latency, throttle_retry_after=self._throttle_next.pop(0))
            if self.throttle_every and request_number % self.throttle_every == 0:
                return FaultDecision(latency, throttle_retry_after=self.retry_after)
            return FaultDecision(latency)

    def take_create_drop(self) -> bool:
        with self._lock:
            if self._drop_create_responses:
                self._drop_create_responses -= 1
                return True
            return False

    def update(self, settings: Mapping[str, Any]) -> None:
        """Apply the JSON body of ``POST /_emulator/faults`` (see the package docstring)."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        if settings.get("policy_message_format", self.policy_message_format) not in _FORMATS:
            raise ValueError(f"policy_message_format must be one of {', '.join(_FORMATS)}")
        if settings.get("reset"):
            self.reset()
        if "latency" in settings:
            self.latency = float(settings["latency"])
        if "throttle_every" in settings:
            self.throttle_every = int(settings["throttle_every"])
        if "retry_after" in settings:
            self.retry_after = str(settings["retry_after"])
        if "policy_message_format" in settings:
            self.policy_message_format = settings["policy_message_format"]
        retry_after = str(settings.get("retry_after", self.retry_after))
        self.throttle_next(int(settings.get("throttle_next", 0)), retry_after)
        self.fail_next(int(settings.get("fail_next", 0)), int(settings.get("fail_status", 503)))
        self.drop_next(int(settings.get("drop_next", 0)))
        self.drop_response_of_next_create(int(settings.get("drop_response_of_next_create", 0)))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self.latency,
                "throttle_every": self.throttle_every,
                "retry_after": self.retry_after,
                "policy_message_format": self.policy_message_format,
                "throttle_next": len(self._throttle_next),
                "fail_next": len(self._fail_next),
                "drop_next": self._drop_next,
                "drop_response_of_next_create": self._drop_create_responses,
            }


_SETTINGS = frozenset(
    {
        "reset",
        "latency",
        "throttle_every",
        "retry_after",
        "policy_message_format",
        "throttle_next",
        "fail_next",
        "fail_status",
        "drop_next",
        "drop_response_of_next_create",
    }
)


def make_faults(value: Faults | Mapping[str, Any] | None) -> Faults:
    """Faults from a Faults, the same settings as ``POST /_emulator/faults``, or None."""
    if isinstance(value, Faults):
        return value
    faults = Faults()
    if value:
        faults.update(value)
    return faults

"""Prometheus metrics, on the one registry the composition root owns.

Nothing is created at import time: ``Metrics(registry)`` builds every instrument, and the
pieces below plug into the ports and hooks that already exist (the ``Notifier`` port, the
Graph transport's observer, the sweeper's observer, Slack's retry-handler chain), so no use
case knows it is being measured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from bot.app.logs import log_context
from bot.domain.elevation import ElevationRequest, RequestStatus
from bot.domain.ports import DueWork, Event, Notifier

log = logging.getLogger(__name__)

# Events that tell what became of a request; the others are notices about it.
OUTCOMES = frozenset(Event) - {
    Event.APPROVAL_RECORDED,
    Event.REMINDER,
    Event.NUDGE,
    Event.DEACTIVATION_SCHEDULED,
}
# Approval to active is a Graph call or two (seconds, a minute with throttling); a scheduled
# start is hours later. One set of buckets covers both.
APPROVAL_TO_ACTIVE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "pimbot_requests",
            "Elevation requests by what became of them (one count per committed change).",
            ["outcome"],
            registry=registry,
        )
        self.approval_to_active = Histogram(
            "pimbot_approval_to_active_seconds",
            "Time from the deciding approval to the role being active.",
            buckets=APPROVAL_TO_ACTIVE_BUCKETS,
            registry=registry,
        )
        for event in sorted(OUTCOMES):
            self.outcomes.labels(event.value)

    def changed(self, request: ElevationRequest, event: Event) -> None:
        if event in OUTCOMES:
            self.outcomes.labels(event.value).inc()
        if event is Event.ACTIVE and request.decided_at is not None:
            active_at = request.updated_at or request.starts_at
            if active_at is not None and active_at >= request.decided_at:
                self.approval_to_active.observe((active_at - request.decided_at).total_seconds())


class MetricsNotifier:
    """A ``Notifier`` that counts every committed change, then hands it to the real one.

    Notifications for a request log with its id (the Slack calls they make, their failures).
    """

    def __init__(self, inner: Notifier, metrics: RequestMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def request_changed(self, request: ElevationRequest, event: Event) -> None:
        # Counted first: the change is committed whether or not Slack hears about it.
        self._metrics.changed(request, event)
        with log_context(request_id=request.id):
            self._inner.request_changed(request, event)


class GraphMetrics:
    """``bot.adapters.graph.transport.GraphObserver``: every attempt, retry and throttle."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pimbot_graph_requests",
            "Microsoft Graph attempts by HTTP method and status (`error`: no response).",
            ["method", "status"],
            registry=registry,
        )
        self.retries = Counter(
            "pimbot_graph_retries",
            "Graph attempts that were retried, by reason (http_429, http_503, ConnectError...).",
            ["reason"],
            registry=registry,
        )
        self.throttled = Counter(
            "pimbot_graph_throttled", "Graph answers of HTTP 429 (throttled).", registry=registry
        )
        self.latency = Histogram(
            "pimbot_graph_request_duration_seconds",
            "Duration of one Graph attempt, token acquisition included.",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )

    def request_finished(self, method: str, status: int | None, seconds: float) -> None:
        self.requests.labels(method, str(status) if status is not None else "error").inc()
        self.latency.labels(method).observe(seconds)
        if status == 429:
            self.throttled.inc()

    def retrying(self, reason: str) -> None:
        self.retries.labels(reason).inc()


class SlackMetrics:
    """Fed by ``handlers.middleware.SlackCallObserver``: every Web API attempt."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pimbot_slack_requests",
            "Slack Web API attempts by method and outcome (ok: true, false or error).",
            ["method", "ok"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "pimbot_slack_rate_limited",
            "Slack answers of HTTP 429 (rate limited).",
            ["method"],
            registry=registry,
        )

    def call_finished(self, method: str, *, ok: bool | None, status: int | None) -> None:
        self.requests.labels(method, "error" if ok is None else str(ok).lower()).inc()
        if status == 429:
            self.rate_limited.labels(method).inc()


class SweepMetrics:
    """``bot.app.scheduler.SweepObserver``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "pimbot_scheduler_lag_seconds",
            "How late the most overdue timer handled by the last sweep was (0: none was due).",
            registry=registry,
        )
        self.duration = Histogram(
            "pimbot_sweep_duration_seconds",
            "Duration of one sweep over every kind of due work.",
            buckets=SWEEP_BUCKETS,
            registry=registry,
        )
        self.handled = Counter(
            "pimbot_timers_handled",
            "Timers handled by the sweep, by kind.",
            ["kind"],
            registry=registry,
        )
        for kind in DueWork:
            self.handled.labels(kind.value)

    def sweep_finished(
        self, *, seconds: float, lag: timedelta, handled: Mapping[DueWork, int]
    ) -> None:
        self.duration.observe(seconds)
        self.lag.set(lag.total_seconds())
        for kind, count in handled.items():
            self.handled.labels(kind.value).inc(count)


class PendingApprovalsCollector:
    """``pimbot_pending_approvals``, counted in the database at scrape time, so every replica
    reports the same figure. A database hiccup drops the figure, never the scrape."""

    def __init__(self, count_by_status: Callable[[], Mapping[str, int]]) -> None:
        self._count_by_status = count_by_status

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._count_by_status()
        except Exception:
            log.warning("pending approvals not counted: database unavailable", exc_info=True)
            return
        family = self._family()
        family.add_metric([], counts.get(RequestStatus.PENDING_APPROVAL.value, 0))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "pimbot_pending_approvals", "Elevation requests waiting for an approver's decision."
        )


class Metrics:
    """Every pimbot metric, registered on ``registry`` (never the global default one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = RequestMetrics(registry)
        self.graph = GraphMetrics(registry)
        self.slack = SlackMetrics(registry)
        self.sweeps = SweepMetrics(registry)

    def count_pending(self, count_by_status: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(PendingApprovalsCollector(count_by_status))

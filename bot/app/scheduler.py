"""The sweep: one short job that serves every timer from the database.

The database is the source of truth for timers (no pickled per-request jobs), so a restart
loses nothing. Each kind of due work is claimed row by row with a lease: of N replicas exactly
one handles a row, and a row claimed by a replica that died is taken over when its lease ends.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, assert_never

from apscheduler.schedulers.background import BackgroundScheduler

from bot.app.logs import log_context, new_correlation_id
from bot.domain.elevation import ElevationRequest
from bot.domain.ports import TIMERS, DueAfter, DueWork, timer_spec
from bot.use_cases.delegated import poll_device_sign_ins
from bot.use_cases.services import Ports, deliver, load_request, nudge_break_glass_review
from bot.use_cases.signing_in import DEFAULT_LINK_TTL
from bot.use_cases.timers import (
    follow_pim_approval,
    nudge_approvers,
    reconcile_approved,
    remind_before_expiry,
    run_scheduled_deactivation,
    start_scheduled,
    sync_expiry,
    time_out_pending,
    time_out_sign_in,
)

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "pimbot-sweep"
# Longer than any one handler takes (a few Graph and Slack calls with their retries), short
# enough that a crashed replica's work is picked up within minutes.
DEFAULT_LEASE = timedelta(minutes=2)
# A notification younger than this may still be on its way from the thread that queued it.
REDELIVER_AFTER = timedelta(minutes=1)
# An ``approved`` row younger than this is still inside its own activation call.
STUCK_AFTER = timedelta(minutes=2)

Handler = Callable[..., ElevationRequest]


def handler_for(kind: DueWork) -> Handler:
    """The use case serving ``kind``; mypy flags a kind left out, and an unknown one raises."""
    match kind:
        case DueWork.STUCK_APPROVED:
            return reconcile_approved
        case DueWork.SCHEDULED_START:
            return start_scheduled
        case DueWork.DEACTIVATION:
            return run_scheduled_deactivation
        case DueWork.EXPIRY:
            return sync_expiry
        case DueWork.REMINDER:
            return remind_before_expiry
        case DueWork.NUDGE:
            return nudge_approvers
        case DueWork.PENDING_TIMEOUT:
            return time_out_pending
        case DueWork.BREAK_GLASS_REVIEW:
            return nudge_break_glass_review
        case DueWork.FOLLOW_PIM:
            return follow_pim_approval
        case DueWork.SIGN_IN_TIMEOUT:
            return time_out_sign_in
        case _:
            assert_never(kind)


class SweepObserver(Protocol):
    """Told how each sweep went (metrics); must not raise or block."""

    def sweep_finished(
        self, *, seconds: float, lag: timedelta, handled: Mapping[DueWork, int]
    ) -> None:
        """``lag``: how late the most overdue row this sweep claimed was (zero if none)."""
        ...


def replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Sweeper:
    ports: Ports
    pending_timeout: timedelta
    nudge_after: timedelta
    owner: str = field(default_factory=replica_id)
    lease: timedelta = DEFAULT_LEASE
    batch: int = 200
    observer: SweepObserver | None = None
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _running: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def sweep(self) -> dict[DueWork, int]:
        """Serve everything due now; returns how many rows of each kind were handled."""
        started = time.perf_counter()
        with self._running, log_context(correlation_id=f"sweep-{new_correlation_id()}"):
            if self._stopping.is_set():
                return {}
            handled, lag = self._sweep()
        if self.observer is not None:
            self.observer.sweep_finished(
                seconds=time.perf_counter() - started, lag=lag, handled=handled
            )
        return handled

    def _sweep(self) -> tuple[dict[DueWork, int], timedelta]:
        handled: dict[DueWork, int] = {}
        lag = timedelta(0)
        for spec in TIMERS:
            kind, handler = spec.kind, handler_for(spec.kind)
            now = self.ports.clock.now()
            with self.ports.uow() as uow:
                claimed = uow.requests.claim_due(
                    kind,
                    now,
                    owner=self.owner,
                    lease=self.lease,
                    limit=self.batch,
                    age=self._age(kind),
                )
                if claimed and self.observer is not None:
                    lag = max(lag, self._lateness(uow.requests.get(claimed[0]), kind, now))
                uow.commit()
            handled[kind] = sum(self._handle(kind, handler, request_id) for request_id in claimed)
            if self._stopping.is_set():
                break
        if not self._stopping.is_set():
            self.redeliver()
        if not self._stopping.is_set() and self.ports.delegation is not None:
            self._poll_device_sign_ins()
        return handled, lag

    def _poll_device_sign_ins(self) -> None:
        """Device-code sign-ins (no public URL) complete in the person's browser: the sweep
        polls each once per round; its failure must not stop the timers."""
        try:
            poll_device_sign_ins(ports=self.ports)
        except Exception:
            log.exception("polling device-code sign-ins failed")

    # --- a clean shutdown ---------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the row in hand, claim nothing more; rows claimed but not started are let
        go at once (``release_leases``) so another replica serves them without waiting."""
        self._stopping.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait for a running sweep to end; False if it still runs after ``timeout`` seconds."""
        if not self._running.acquire(timeout=max(timeout, 0.0)):
            return False
        self._running.release()
        return True

    def release_leases(self) -> int:
        """Give up every lease this replica holds (rows and notifications)."""
        with self.ports.uow() as uow:
            released = uow.requests.release_all(owner=self.owner)
            released += uow.outbox.release_all(owner=self.owner)
            uow.commit()
        return released

    def redeliver(self) -> int:
        """Deliver outbox notifications whose first delivery failed or died with its replica."""
        now = self.ports.clock.now()
        with self.ports.uow() as uow:
            pending = uow.outbox.claim_undelivered(
                now,
                older_than=REDELIVER_AFTER,
                owner=self.owner,
                lease=self.lease,
                limit=self.batch,
            )
            uow.commit()
        delivered = 0
        for notification in pending:
            if self._stopping.is_set():
                break
            with log_context(request_id=notification.request_id):
                request = load_request(notification.request_id, self.ports)
                delivered += deliver(self.ports, request, notification.event, notification.id)
        return delivered

    def _handle(self, kind: DueWork, handler: Handler, request_id: str) -> int:
        if self._stopping.is_set():
            return 0  # shutting down: the lease is released with the others
        # A long batch can outlive the lease taken for it: renew it row by row, and skip a row
        # whose lease ran out (another replica may have taken it over).
        with self.ports.uow() as uow:
            held = uow.requests.renew_lease(
                request_id, self.ports.clock.now(), owner=self.owner, lease=self.lease
            )
            uow.commit()
        if not held:
            return 0
        with log_context(request_id=request_id):
            try:
                handler(request_id, ports=self.ports)
            except Exception:
                # Keep the lease: the row is retried when it runs out, which is our backoff.
                log.exception("timer failed", extra={"request_id": request_id, "timer": kind.value})
                return 0
        with self.ports.uow() as uow:
            uow.requests.release(request_id, owner=self.owner)
            uow.commit()
        return 1

    def _lateness(
        self, request: ElevationRequest | None, kind: DueWork, now: datetime
    ) -> timedelta:
        # Rows are claimed most overdue first, so the first one claimed tells the lag.
        due = timer_spec(kind).due_at(request, self._age(kind)) if request else None
        return max(timedelta(0), now - due) if due else timedelta(0)

    def _age(self, kind: DueWork) -> timedelta:
        """How long after its due column a row of ``kind`` becomes due (``TimerSpec.after``)."""
        after = timer_spec(kind).after
        match after:
            case DueAfter.AT_ONCE:
                return timedelta(0)
            case DueAfter.STUCK_AFTER:
                return STUCK_AFTER
            case DueAfter.NUDGE_AFTER:
                return self.nudge_after
            case DueAfter.PENDING_TIMEOUT:
                return self.pending_timeout
            case DueAfter.SIGN_IN_TTL:
                delegation = self.ports.delegation
                return delegation.link_ttl if delegation is not None else DEFAULT_LINK_TTL
            case _:
                assert_never(after)


def build_scheduler(sweeper: Sweeper, *, interval: timedelta) -> BackgroundScheduler:
    """One sweep job; only the composition root starts it."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        sweeper.sweep,
        "interval",
        seconds=interval.total_seconds(),
        id=SWEEP_JOB_ID,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    return scheduler

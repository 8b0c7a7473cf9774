"""The sweep: one short job that serves every timer from the database.

The database is the source of truth for timers (no pickled per-request jobs), so a restart
loses nothing. Each kind of due work is claimed row by row with a lease: of N replicas exactly
one handles a row, and a row claimed by a replica that died is taken over when its lease ends.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.elevation import ElevationRequest
from bot.ports import DueWork
from bot.services import Ports
from bot.timers import (
    nudge_approvers,
    reconcile_approved,
    remind_before_expiry,
    run_scheduled_deactivation,
    start_scheduled,
    sync_expiry,
    time_out_pending,
)

log = logging.getLogger(__name__)

SWEEP_JOB_ID = "pimbot-sweep"
# Longer than any one handler takes (a few Graph and Slack calls with their retries), short
# enough that a crashed replica's work is picked up within minutes.
DEFAULT_LEASE = timedelta(minutes=2)
# An ``approved`` row younger than this is still inside its own activation call.
STUCK_AFTER = timedelta(minutes=2)

Handler = Callable[..., ElevationRequest]
_HANDLERS: dict[DueWork, Handler] = {
    DueWork.STUCK_APPROVED: reconcile_approved,
    DueWork.SCHEDULED_START: start_scheduled,
    DueWork.DEACTIVATION: run_scheduled_deactivation,
    DueWork.EXPIRY: sync_expiry,
    DueWork.REMINDER: remind_before_expiry,
    DueWork.NUDGE: nudge_approvers,
    DueWork.PENDING_TIMEOUT: time_out_pending,
}


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

    def sweep(self) -> dict[DueWork, int]:
        """Serve everything due now; returns how many rows of each kind were handled."""
        handled: dict[DueWork, int] = {}
        for kind, handler in _HANDLERS.items():
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
                uow.commit()
            handled[kind] = sum(self._handle(kind, handler, request_id) for request_id in claimed)
        return handled

    def _handle(self, kind: DueWork, handler: Handler, request_id: str) -> int:
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

    def _age(self, kind: DueWork) -> timedelta:
        return {
            DueWork.STUCK_APPROVED: STUCK_AFTER,
            DueWork.NUDGE: self.nudge_after,
            DueWork.PENDING_TIMEOUT: self.pending_timeout,
        }.get(kind, timedelta(0))


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

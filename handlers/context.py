"""What the Slack listeners need, built once by the composition root and passed at registration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.domain.elevation import Person
from bot.domain.ports import SlackDirectory
from bot.use_cases.catalog import ReadCachingPimClient
from bot.use_cases.identity import Installation
from bot.use_cases.services import Ports


@dataclass(frozen=True)
class SlackDeps:
    ports: Ports
    pim_reads: ReadCachingPimClient
    directory: SlackDirectory
    identify: Callable[[str], Person]  # Slack user id -> Person; IdentityError (audited)
    installation: Installation
    tenant_id: str | None = None
    # Runs work after the ack on a pool of its own, so a burst of slow Graph calls can never
    # hold up the acknowledgement of the next click (Bolt's listener threads only ack).
    # Use it through ``handlers.after_ack.run_after_ack``, which logs and tells any error.
    later: Callable[[Callable[[], None]], None] = lambda work: work()

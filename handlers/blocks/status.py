"""How each request status reads in Slack: one mapping, used by every card and message."""

from __future__ import annotations

from typing import NamedTuple

from bot.domain.elevation import RequestStatus


class StatusLabel(NamedTuple):
    emoji: str
    text: str

    def __str__(self) -> str:
        return f"{self.emoji} {self.text}"


STATUS_LABELS: dict[RequestStatus, StatusLabel] = {
    RequestStatus.PENDING_APPROVAL: StatusLabel(":hourglass_flowing_sand:", "Waiting for approval"),
    RequestStatus.APPROVED: StatusLabel(":white_check_mark:", "Approved, activating"),
    RequestStatus.SCHEDULED: StatusLabel(":calendar:", "Approved, scheduled"),
    RequestStatus.AWAITING_PIM: StatusLabel(":hourglass:", "Waiting for PIM's own approval"),
    RequestStatus.AWAITING_SIGN_IN: StatusLabel(
        ":key:", "Approved, waiting for the requester to sign in"
    ),
    RequestStatus.ACTIVE: StatusLabel(":large_green_circle:", "Active"),
    RequestStatus.EXPIRED: StatusLabel(":clock3:", "Expired"),
    RequestStatus.DEACTIVATED: StatusLabel(":white_circle:", "Deactivated"),
    RequestStatus.DENIED: StatusLabel(":no_entry:", "Denied"),
    RequestStatus.CANCELLED: StatusLabel(":heavy_multiplication_x:", "Cancelled"),
    RequestStatus.FAILED: StatusLabel(":x:", "Failed"),
}


def quorum_text(approved: int, needed: int) -> str:
    """``1 of 2 approvals``."""
    return f"{approved} of {needed} approval{'s' if needed != 1 else ''}"

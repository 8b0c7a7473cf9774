"""One ``Finding`` per check, and the closing line of the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    PASSED = "✓"
    FAILED = "✗"
    NOT_CHECKED = "–"
    NOTE = "i"  # optional, or only knowable while pimbot runs: said, never a failure


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status.value} {self.text}" + (f" — {self.fix}" if self.fix else "")


def passed(text: str) -> Finding:
    return Finding(Status.PASSED, text)


def failed(text: str, fix: str) -> Finding:
    return Finding(Status.FAILED, text, fix)


def not_checked(text: str, reason: str) -> Finding:
    return Finding(Status.NOT_CHECKED, f"{text}: not checked", reason)


def note(text: str, detail: str) -> Finding:
    return Finding(Status.NOTE, text, detail)


def summary(findings: Iterable[Finding]) -> tuple[bool, str]:
    """(all passed, the closing line); notes are neither passes nor failures."""
    counts = {status: 0 for status in Status}
    for finding in findings:
        counts[finding.status] += 1
    notes = counts.pop(Status.NOTE)
    total = sum(counts.values())
    if counts[Status.PASSED] == total:
        noted = f" ({notes} note{'s' if notes != 1 else ''} above)" if notes else ""
        return True, f"pimbot doctor: all {total} checks passed{noted}."
    parts = [f"{counts[Status.FAILED]} of {total} checks failed"]
    if counts[Status.NOT_CHECKED]:
        parts.append(f"{counts[Status.NOT_CHECKED]} could not run until those are fixed")
    return False, "pimbot doctor: " + ", ".join(parts) + ". Fix the ✗ lines above."

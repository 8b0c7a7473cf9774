"""The audit trail's hash chain: how an entry is hashed, and how a chain is checked.

Each entry's ``hash`` is SHA-256 over a canonical serialisation of its own fields and the
previous entry's ``hash`` (``GENESIS`` for the first one). Entries are chained in id order,
and the single-row ``audit_head`` table records the last entry's id and hash, so deleting the
newest entries shows too. The serialisation is part of the stored evidence: never change
``FORMAT``'s meaning; a new serialisation needs a new tag.

Pure: no database, no I/O. ``storage.repository`` feeds rows in; migrations use it too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

FORMAT = "pimbot-audit-v1"
GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainedFields:
    """What the hash covers (everything a person reads in an entry, except its id)."""

    request_id: str | None
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    at: datetime
    detail: str | None


def canonical(fields: ChainedFields, prev_hash: str) -> bytes:
    at = fields.at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(
        [
            FORMAT,
            prev_hash,
            fields.request_id,
            fields.actor,
            fields.action,
            fields.from_status,
            fields.to_status,
            at,
            fields.detail,
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode("ascii")


def entry_hash(fields: ChainedFields, prev_hash: str) -> str:
    return hashlib.sha256(canonical(fields, prev_hash)).hexdigest()


@dataclass(frozen=True)
class StoredEntry:
    """One row as read back for checking."""

    id: int
    fields: ChainedFields
    prev_hash: str | None
    hash: str | None


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None
    last_id: int | None = None
    last_hash: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        if self.intact:
            return f"{self.entries} {'entry' if self.entries == 1 else 'entries'}, chain intact"
        where = f"entry {self.first_bad_id}" if self.first_bad_id is not None else "chain head"
        return f"audit chain broken at {where}: {self.problem}"


def verify_chain(
    rows: Iterable[StoredEntry], head: tuple[int | None, str | None] | None
) -> ChainReport:
    """Walk ``rows`` (in id order) and the recorded head; report the first thing that is wrong.

    ``head`` is ``(last_id, last_hash)`` from ``audit_head``, or None when that row is missing.
    """
    count = 0
    previous_id: int | None = None
    previous_hash = GENESIS
    for row in rows:
        count += 1
        if row.hash is None or row.prev_hash is None:
            return ChainReport(count, row.id, "it carries no hash (inserted outside pimbot?)")
        if row.prev_hash != previous_hash:
            after = f"entry {previous_id}" if previous_id is not None else "the start of the trail"
            return ChainReport(
                count,
                row.id,
                f"it does not follow {after}: an entry between them was deleted, or entries "
                "were reordered or inserted",
            )
        if entry_hash(row.fields, row.prev_hash) != row.hash:
            return ChainReport(count, row.id, "its content does not match its hash (edited)")
        previous_id, previous_hash = row.id, row.hash
    last_hash = previous_hash if previous_id is not None else None
    if head is None:
        if previous_id is None:
            return ChainReport(0)
        return ChainReport(count, None, "the audit_head row is missing (deleted?)")
    head_id, head_hash = head
    if (head_id, head_hash) != (previous_id, last_hash):
        if previous_id is None:
            return ChainReport(
                count, None, f"the trail is empty but the head records entry {head_id}"
            )
        if head_id == previous_id:
            return ChainReport(
                count, previous_id, "its hash is not the one the head recorded (edited)"
            )
        return ChainReport(
            count,
            previous_id,
            f"the head records entry {head_id} as the last one: the newest entries were "
            "deleted, or the head was altered",
        )
    return ChainReport(count, last_id=previous_id, last_hash=last_hash)

"""The audit trail's hash chain on real SQLite and PostgreSQL: appends chain linearly, even
from many concurrent writers, and every kind of tampering with the table is found."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import Engine, text

from bot.domain.elevation import AuditEntry
from storage.audit_chain import GENESIS, ChainedFields, entry_hash
from tests.fakes import T0


def _append(uow_factory, count: int, *, start: int = 0) -> None:  # type: ignore[no-untyped-def]
    for i in range(start, start + count):
        with uow_factory() as uow:
            uow.audit.add(
                AuditEntry(
                    f"req-{i % 3}",
                    f"T0PIMBOT/U{i:04d}",
                    "submit",
                    None,
                    "pending_approval",
                    T0 + timedelta(seconds=i, microseconds=i),
                    f"entry {i} — ünïcode",
                )
            )
            uow.commit()


def _verify(uow_factory):  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        return uow.audit.verify()


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT id FROM audit_events ORDER BY id")).scalars())


def test_entries_chain_in_order_and_the_head_follows(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    assert _verify(uow_factory).line() == "0 entries, chain intact"
    _append(uow_factory, 5)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, prev_hash, hash FROM audit_events ORDER BY id")
        ).all()
        head = connection.execute(text("SELECT last_id, last_hash FROM audit_head")).one()
    assert rows[0].prev_hash == GENESIS
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    assert tuple(head) == (rows[-1].id, rows[-1].hash)
    report = _verify(uow_factory)
    assert report.intact and report.line() == "5 entries, chain intact"


def test_a_rolled_back_transaction_leaves_no_entry_and_no_gap_in_the_chain(uow_factory) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 2)
    with uow_factory() as uow:
        uow.audit.add(AuditEntry(None, "operator", "identity_linked", None, None, T0, "x"))
        # no commit
    with uow_factory() as uow:
        uow.audit.add(AuditEntry(None, "operator", "identity_linked", None, None, T0, "y"))
        uow.audit.write_pending()  # written, then the transaction is rolled back
        uow.rollback()
    _append(uow_factory, 1, start=2)
    assert _verify(uow_factory).line() == "3 entries, chain intact"


def test_an_edited_entry_is_named(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 5)
    victim = _ids(engine)[2]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET actor = 'T0PIMBOT/U0MALLORY' WHERE id = :id"),
            {"id": victim},
        )
    report = _verify(uow_factory)
    assert not report.intact
    assert report.first_bad_id == victim
    assert "edited" in report.line() and str(victim) in report.line()


def test_a_rehashed_edit_breaks_the_next_link(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 4)
    ids = _ids(engine)
    with engine.begin() as connection:
        row = connection.execute(
            text("SELECT * FROM audit_events WHERE id = :id"), {"id": ids[1]}
        ).one()
        forged = entry_hash(
            ChainedFields(row.request_id, row.actor, "deny", None, None, T0, None), row.prev_hash
        )
        connection.execute(
            text(
                "UPDATE audit_events SET action = 'deny', from_status = NULL, to_status = NULL,"
                " at = :at, detail = NULL, hash = :hash WHERE id = :id"
            ),
            {"id": ids[1], "hash": forged, "at": _stored(engine, T0)},
        )
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[2]
    assert f"does not follow entry {ids[1]}" in report.line()


def _stored(engine: Engine, at):  # type: ignore[no-untyped-def]
    # What UtcDateTime writes on each backend, for raw SQL.
    return at.replace(tzinfo=None).isoformat(sep=" ") if engine.dialect.name == "sqlite" else at


def test_a_deleted_entry_is_found_at_its_successor(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 5)
    ids = _ids(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[2]})
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[3]
    assert "deleted" in report.line()


def test_deleting_the_newest_entries_is_found_by_the_head(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 5)
    ids = _ids(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id >= :id"), {"id": ids[3]})
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[2]
    assert f"head records entry {ids[4]}" in report.line()


def test_deleting_the_head_is_found(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 2)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_head"))
    assert "audit_head row is missing" in _verify(uow_factory).line()


def test_reordered_entries_are_named(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 5)
    ids = _ids(engine)
    columns = "request_id, actor, action, from_status, to_status, at, detail, prev_hash, hash"
    with engine.begin() as connection:
        first, second = (
            connection.execute(
                text(f"SELECT {columns} FROM audit_events WHERE id = :id"), {"id": i}
            ).one()
            for i in (ids[1], ids[2])
        )
        assignments = ", ".join(f"{c.strip()} = :{c.strip()}" for c in columns.split(","))
        for target, values in ((ids[1], second), (ids[2], first)):
            connection.execute(
                text(f"UPDATE audit_events SET {assignments} WHERE id = :id"),
                {**values._asdict(), "id": target},
            )
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[1]
    assert "reordered" in report.line()


def test_an_inserted_entry_is_named(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 3)
    ids = _ids(engine)
    with engine.begin() as connection:
        last = connection.execute(
            text("SELECT hash FROM audit_events WHERE id = :id"), {"id": ids[-1]}
        ).scalar_one()
        fields = ChainedFields("req-x", "T0PIMBOT/U0MALLORY", "approve", None, None, T0, None)
        connection.execute(
            text(
                "INSERT INTO audit_events (id, request_id, actor, action, at, prev_hash, hash)"
                " VALUES (:id, 'req-x', 'T0PIMBOT/U0MALLORY', 'approve', :at, :prev, :hash)"
            ),
            {
                "id": ids[-1] + 100,
                "at": _stored(engine, T0),
                "prev": last,
                "hash": entry_hash(fields, last),
            },
        )
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[-1] + 100
    assert not report.intact


def test_an_entry_inserted_without_a_hash_is_named(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _append(uow_factory, 3)
    ids = _ids(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
        connection.execute(
            text(
                "INSERT INTO audit_events (id, actor, action, at, prev_hash, hash)"
                " VALUES (:id, 'operator', 'identity_linked', :at, '', '')"
            ),
            {"id": ids[1], "at": _stored(engine, T0)},
        )
    report = _verify(uow_factory)
    assert report.first_bad_id == ids[1]


def test_concurrent_writers_keep_one_linear_chain(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    # Many transactions append at once (as N replicas would); each must chain off the entry
    # committed just before it, never two off the same one.
    writers, per_writer = 8, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                with uow_factory() as uow:
                    uow.audit.add(
                        AuditEntry(None, f"T0PIMBOT/U{n:02d}", "submit", None, None, T0, str(i))
                    )
                    # Something else in the same transaction, as a real change would do.
                    uow.audit.add(
                        AuditEntry(None, f"T0PIMBOT/U{n:02d}", "approve", None, None, T0, str(i))
                    )
                    uow.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        prevs = list(connection.execute(text("SELECT prev_hash FROM audit_events")).scalars())
    assert len(prevs) == len(set(prevs)) == writers * per_writer * 2
    assert _verify(uow_factory).line() == f"{writers * per_writer * 2} entries, chain intact"

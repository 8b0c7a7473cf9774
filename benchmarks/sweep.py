"""What one timer sweep costs over 1,000 and over 100,000 active elevations.

DESIGN.md: "A sweep over 100,000 active elevations costs about what it costs over 1,000
(indexed, O(due))." This seeds each size into a freshly migrated database (bulk inserts with
SQLAlchemy Core), makes the same small number of reminders due in each, and times:

* one whole sweep: the real ``bot.app.scheduler.Sweeper`` with a PIM client and a notifier that do
  no I/O, so only pimbot's own database work is measured;
* the claim queries alone: ``claim_due`` for every kind of due work, rolled back.

Runs are interleaved across sizes (run 1 of every size, then run 2, ...) so that machine noise
hits every size alike; each database gets one untimed warm-up sweep first. The result is the
median per size and the ratio largest/smallest, measured in the same run.

It then prints the query plans of every statement the sweep sends that touches
``elevation_requests`` (captured from the real ``claim_due`` and sweep, so they are built by
``storage.repository._due_condition``): ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL (after
``ANALYZE``), ``EXPLAIN QUERY PLAN`` on SQLite, and exits 1 if any of them reads the whole
table at the largest size: a sequential scan, or an index used only for ``status = ?`` (which
every active row matches) instead of the due column's range or the primary key.

    .venv/bin/python -m benchmarks.sweep --sizes 1000 100000 --runs 5
    .venv/bin/python -m benchmarks.sweep --backends sqlite --sizes 1000 10000 --runs 3

PostgreSQL: ``--database-url`` (default the local ``test`` database); each size gets its own
fresh schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, text, update

from bot.app.scheduler import Sweeper
from bot.app.settings import normalize_database_url
from bot.domain.elevation import ElevationRequest, Person, RoleRef
from bot.domain.ports import ActiveAssignment, DueWork, Event
from bot.use_cases.services import Ports
from storage.database import make_engine, make_session_factory, upgrade
from storage.repository import _to_row
from storage.tables import RequestRow
from storage.unit_of_work import SqlUnitOfWork

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ROLE = RoleRef("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader")
TABLE = "elevation_requests"
INSERT_CHUNK = 5_000
OWNER = "benchmark"
REMINDER_LEAD = timedelta(minutes=10)  # PIMBOT_REMINDER_LEAD's default


# --- stand-ins that cost nothing ---------------------------------------------------------------


@dataclass(frozen=True)
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass
class CheapPim:
    """Every requester still holds the role: a reminder's Graph check passes without I/O."""

    ends_at: datetime

    def list_active_assignments(self, principal_id: str) -> list[ActiveAssignment]:
        return [
            ActiveAssignment(ROLE, "Activated", self.ends_at - timedelta(hours=8), self.ends_at)
        ]

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the sweep benchmark did not expect PimClient.{name}")


@dataclass
class NullNotifier:
    sent: list[tuple[str, Event]] = field(default_factory=list)

    def request_changed(self, request: ElevationRequest, event: Event) -> None:
        self.sent.append((request.id, event))


@dataclass
class Unexpected:
    """A port the reminder path must not touch."""

    name: str

    def __getattr__(self, attribute: str) -> Any:
        raise AssertionError(f"the sweep benchmark did not expect {self.name}.{attribute}")


# --- one database per (backend, size) ----------------------------------------------------------


@dataclass
class Database:
    backend: str
    size: int
    engine: Engine
    now: datetime
    due_ids: list[str]
    sweeper: Sweeper
    notifier: NullNotifier
    seconds_to_seed: float
    drop: Callable[[], None]
    statements: list[tuple[str, str, Any]] = field(default_factory=list)
    sweep_times: list[float] = field(default_factory=list)
    claim_times: list[float] = field(default_factory=list)
    select_times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.size:,}"


def open_database(
    backend: str,
    size: int,
    due: int,
    *,
    postgres_url: str,
    sqlite_dir: Path,
    steady_state: bool = True,
) -> Database:
    if backend == "sqlite":
        path = sqlite_dir / f"sweep-{size}.db"
        engine = make_engine(f"sqlite:///{path}")

        def drop() -> None:
            engine.dispose()

    else:
        engine, drop = _postgres_schema(postgres_url, f"pimbot_bench_{uuid.uuid4().hex[:10]}")
    upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    due_ids = seed(engine, size=size, due=due, now=now, steady_state=steady_state)
    if backend == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    seconds = time.perf_counter() - started
    sessions = make_session_factory(engine)
    notifier = NullNotifier()
    ports = Ports(
        uow=lambda: SqlUnitOfWork(sessions),
        pim=CheapPim(ends_at=now + timedelta(minutes=9)),  # type: ignore[arg-type]
        notifier=notifier,
        clock=FixedClock(now),
        approvers=Unexpected("approvers"),  # type: ignore[arg-type]
        rules=Unexpected("rules"),  # type: ignore[arg-type]
    )
    sweeper = Sweeper(
        ports=ports,
        pending_timeout=timedelta(hours=24),
        nudge_after=timedelta(hours=1),
        owner=OWNER,
    )
    return Database(backend, size, engine, now, due_ids, sweeper, notifier, seconds, drop)


def _postgres_schema(url: str, schema: str) -> tuple[Engine, Callable[[], None]]:
    url = normalize_database_url(url)
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _use_schema(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    def drop() -> None:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


def seed(
    engine: Engine, *, size: int, due: int, now: datetime, steady_state: bool = True
) -> list[str]:
    """``size`` active elevations, ``due`` of them (spread through the table) with a reminder
    due now. The rest end at random within the next 8 hours; in the steady state those with
    less than the 10-minute reminder lead left were reminded already (about 2% of them),
    otherwise (``steady_state=False``) none ends within 20 minutes. Rows are built from the
    repository's own row mapping, so every column has what pimbot itself would store."""
    rng = random.Random(size)
    template = _template_row(now)
    due_positions = set(rng.sample(range(size), due))
    due_ids: list[str] = []
    with engine.begin() as connection:
        for chunk_start in range(0, size, INSERT_CHUNK):
            rows = []
            for i in range(chunk_start, min(size, chunk_start + INSERT_CHUNK)):
                request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                reminded = None
                if i in due_positions:
                    ends = now + timedelta(minutes=9)
                    remind = now - timedelta(minutes=1)
                    due_ids.append(request_id)
                else:
                    soonest = 1 if steady_state else 20 * 60
                    ends = now + timedelta(seconds=rng.randint(soonest, 8 * 3600))
                    remind = ends - REMINDER_LEAD
                    reminded = remind if remind <= now else None
                starts = ends - timedelta(hours=8)
                rows.append(
                    {
                        **template,
                        "id": request_id,
                        "requester_user": f"U{i:08d}",
                        "requester_entra_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "created_at": starts,
                        "updated_at": starts,
                        "decided_at": starts,
                        "starts_at": starts,
                        "ends_at": ends,
                        # pimbot clears remind_at once a reminder is recorded.
                        "remind_at": None if reminded else remind,
                        "reminded_at": reminded,
                    }
                )
            connection.execute(insert(RequestRow.__table__), rows)
    return due_ids


def _template_row(now: datetime) -> dict[str, Any]:
    request = ElevationRequest.submit(
        requester=Person("T0BENCH", "U0", "00000000-0000-4000-8000-000000000000", "Bench"),
        role=ROLE,
        duration=timedelta(hours=8),
        reason="benchmark",
        at=now,
    )
    request.auto_approve(actor="pimbot", at=now, why="no approval needed")
    request.mark_active(starts_at=now, ends_at=now, graph_request_id="bench", at=now)
    request.version = 1
    row = _to_row(request)
    return {column.name: getattr(row, column.key) for column in RequestRow.__table__.columns}


# --- measuring ----------------------------------------------------------------------------------


def reset(db: Database) -> None:
    """Make the same reminders due again (outside the timing)."""
    with db.engine.begin() as connection:
        connection.execute(
            update(RequestRow)
            .where(RequestRow.id.in_(db.due_ids))
            # A sweep clears remind_at when it records a reminder, as pimbot does.
            .values(
                remind_at=db.now - timedelta(minutes=1),
                reminded_at=None,
                lease_owner=None,
                lease_until=None,
            )
        )


def time_sweep(db: Database) -> float:
    reset(db)
    db.notifier.sent.clear()
    started = time.perf_counter()
    handled = db.sweeper.sweep()
    elapsed = time.perf_counter() - started
    due = len(db.due_ids)
    if handled[DueWork.REMINDER] != due or sum(handled.values()) != due:
        raise SystemExit(f"{db.label}: the sweep handled {handled}, expected {due} reminders")
    if sorted(rid for rid, _ in db.notifier.sent) != sorted(db.due_ids):
        raise SystemExit(f"{db.label}: the sweep told {len(db.notifier.sent)} reminders")
    return elapsed


def claim_everything(db: Database) -> dict[DueWork, int]:
    """``claim_due`` for every kind, one unit of work each as the sweep does, rolled back."""
    claimed = {}
    for kind in DueWork:
        with db.sweeper.ports.uow() as uow:
            claimed[kind] = len(
                uow.requests.claim_due(
                    kind,
                    db.now,
                    owner=OWNER,
                    lease=db.sweeper.lease,
                    limit=db.sweeper.batch,
                    age=db.sweeper._age(kind),
                )
            )
    return claimed


def time_claims(db: Database) -> float:
    reset(db)
    started = time.perf_counter()
    claimed = claim_everything(db)
    elapsed = time.perf_counter() - started
    if claimed[DueWork.REMINDER] != len(db.due_ids) or sum(claimed.values()) != len(db.due_ids):
        raise SystemExit(f"{db.label}: claimed {claimed}")
    return elapsed


def time_due_selects(db: Database) -> float:
    """Only the due-condition SELECTs (each kind's candidates), as captured from claim_due."""
    reset(db)
    selects = [
        (sql, params) for label, sql, params in db.statements if label.endswith("candidates")
    ]
    assert len(selects) == len(DueWork), [label for label, _, _ in db.statements]
    with db.engine.connect() as connection:
        started = time.perf_counter()
        found = sum(len(connection.exec_driver_sql(sql, params).all()) for sql, params in selects)
        elapsed = time.perf_counter() - started
        connection.rollback()
    if found != len(db.due_ids):
        raise SystemExit(f"{db.label}: the due-condition queries found {found} rows")
    return elapsed


# --- query plans --------------------------------------------------------------------------------


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its parameters) sent to the database inside the block."""
    statements: list[tuple[str, Any]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _touches_table(statement: str) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper()
    return head in ("SELECT", "UPDATE") and TABLE in statement


def sweep_statements(db: Database) -> list[tuple[str, str, Any]]:
    """(label, SQL, parameters) of each distinct statement on the table: first each kind's
    claim queries, then whatever else one whole sweep sends."""
    found: dict[str, tuple[str, str, Any]] = {}
    reset(db)
    for kind in DueWork:
        with captured(db.engine) as statements, db.sweeper.ports.uow() as uow:
            uow.requests.claim_due(
                kind,
                db.now,
                owner=OWNER,
                lease=db.sweeper.lease,
                limit=db.sweeper.batch,
                age=db.sweeper._age(kind),
            )
        for statement, parameters in statements:
            if _touches_table(statement) and statement not in found:
                verb = "candidates" if statement.lstrip().upper().startswith("SELECT") else "claim"
                found[statement] = (f"claim_due({kind.value}): {verb}", statement, parameters)
    reset(db)
    with captured(db.engine) as statements:
        db.sweeper.sweep()
    for statement, parameters in statements:
        if _touches_table(statement) and statement not in found:
            verb = statement.lstrip().split(None, 1)[0].upper()
            found[statement] = (f"sweep, reminder handler: {verb}", statement, parameters)
    reset(db)
    return list(found.values())


_RANGE_OR_ID = re.compile(r"<|>|\bid\b")
_PG_INDEX_COND = re.compile(r"Index Cond: (.*)")
_PG_FILTERED = re.compile(r"Rows Removed by Filter: (\d+)")
_PG_WASTE_LIMIT = 1_000  # rows an index may hand over only to be filtered out
_SQLITE_SEARCH = re.compile(rf"^SEARCH {TABLE} USING .*INDEX \S+ \((.*)\)")


def scan_problem(backend: str, lines: list[str]) -> str | None:
    """Why this plan reads (nearly) every row, or None when it reads O(due) rows.

    A sequential scan does; so does an index used only for ``status = ?`` when many rows
    share that status (every active row, here). A good plan's index condition narrows by the
    due column's range (``remind_at <= ?``) or by primary key (``id = ?``). SQLite's plans
    carry no row counts, so there any equality-only use of an index counts; PostgreSQL's
    (``EXPLAIN ANALYZE``) say how many rows the index handed over for nothing."""
    if backend == "postgresql":
        if any(f"Seq Scan on {TABLE}" in line for line in lines):
            return "sequential scan"
        conditions = [m[1] for line in lines if (m := _PG_INDEX_COND.search(line))]
        wasted = sum(int(m[1]) for line in lines if (m := _PG_FILTERED.search(line)))
        for condition in conditions:
            if not _RANGE_OR_ID.search(condition) and wasted > _PG_WASTE_LIMIT:
                return f"index used for equality only ({condition}), {wasted:,} rows filtered out"
        return None
    mentions = [line for line in lines if f" {TABLE}" in line]
    if any(line.startswith(f"SCAN {TABLE}") for line in mentions):
        return "full scan"
    conditions = [m[1] for line in mentions if (m := _SQLITE_SEARCH.match(line))]
    if len(conditions) != len(mentions):
        return "an access path this check does not know"
    for condition in conditions:
        if not _RANGE_OR_ID.search(condition):
            return f"index used for equality only ({condition})"
    return None


def _short(statement: str) -> str:
    """The statement on one line, with long column lists counted rather than listed."""
    flat = " ".join(statement.split())
    flat = re.sub(
        r"^SELECT (.{120,}?) FROM",
        lambda m: f"SELECT <{m[1].count(',') + 1} columns> FROM",
        flat,
    )
    return re.sub(
        r" SET (.{120,}?) WHERE",
        lambda m: f" SET <{m[1].count(',') + 1} columns> WHERE",
        flat,
    )


def explain(db: Database, statement: str, parameters: Any) -> tuple[list[str], str | None]:
    """The plan's lines and why it reads the whole table, if it does. Statements run inside
    a transaction that is rolled back (EXPLAIN ANALYZE executes them)."""
    with db.engine.connect() as connection:
        if db.backend == "postgresql":
            sql = "EXPLAIN (ANALYZE, BUFFERS) " + statement
            lines = [str(row[0]) for row in connection.exec_driver_sql(sql, parameters)]
        else:
            sql = "EXPLAIN QUERY PLAN " + statement
            lines = [str(row[3]) for row in connection.exec_driver_sql(sql, parameters)]
        connection.rollback()
    return lines, scan_problem(db.backend, lines)


def show_plans(db: Database, *, enforce: bool) -> list[str]:
    """Print every plan; returns (when ``enforce``) the statements that read the whole table."""
    print(f"\n=== query plans: {db.label} rows ({'checked' if enforce else 'for information'})")
    offenders = []
    for label, statement, parameters in db.statements:
        lines, problem = explain(db, statement, parameters)
        wasted = sum(int(m[1]) for line in lines if (m := _PG_FILTERED.search(line)))
        flag = f"  <-- READS THE WHOLE TABLE ({problem})" if problem else ""
        if not problem and wasted > _PG_WASTE_LIMIT:
            flag = f"  <-- note: {wasted:,} rows read only to be filtered out"
        print(f"\n-- {label}{flag}")
        print("   " + _short(statement))
        for line in lines:
            print(f"     {line}")
        if problem and enforce:
            offenders.append(f"{db.label}: {label}: {problem}")
    return offenders


# --- the run ------------------------------------------------------------------------------------


def _environment(databases: list[Database]) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"
    )
    for db in databases:
        if db.backend == "postgresql":
            with db.engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar()
            print(f"PostgreSQL {version}")
            break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--due", type=int, default=20, help="reminders due in every size")
    parser.add_argument(
        "--backends", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES, help="PostgreSQL to use")
    parser.add_argument(
        "--none-reminded",
        action="store_true",
        help="no elevation is in its last 10 minutes (none reminded already): the ideal case",
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    if args.due > min(sizes):
        parser.error("--due must not exceed the smallest size")

    offenders: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pimbot-bench-") as sqlite_dir:
        databases: list[Database] = []
        try:
            for backend in args.backends:
                for size in sizes:
                    db = open_database(
                        backend,
                        size,
                        args.due,
                        postgres_url=args.database_url,
                        sqlite_dir=Path(sqlite_dir),
                        steady_state=not args.none_reminded,
                    )
                    databases.append(db)
                    print(f"seeded {db.label} active elevations in {db.seconds_to_seed:.1f} s")
            _environment(databases)
            for db in databases:  # warm-up: connections, compiled statements, caches
                time_sweep(db)
                time_claims(db)
                db.statements = sweep_statements(db)
                time_due_selects(db)
            for _run in range(args.runs):
                for db in databases:
                    db.sweep_times.append(time_sweep(db))
                    db.claim_times.append(time_claims(db))
                    db.select_times.append(time_due_selects(db))
            _report(databases, sizes, args)
            for db in databases:
                offenders += show_plans(db, enforce=db.size == sizes[-1])
        finally:
            for db in databases:
                db.drop()
    if offenders:
        print(f"\nFAIL: statements that read all of {TABLE}:", *offenders, sep="\n  ")
        return 1
    print(f"\nOK: no statement of the sweep reads all of {TABLE} at {sizes[-1]:,} rows")
    return 0


def _report(databases: list[Database], sizes: list[int], args: argparse.Namespace) -> None:
    print(
        f"\n{args.due} reminders due; median of {args.runs} runs [min-max], milliseconds\n"
        "  sweep:        one Sweeper.sweep() (claims, handlers, commits, lease releases)\n"
        "  claims:       claim_due() for all 7 kinds of due work (SELECT + UPDATEs), rolled back\n"
        "  due queries:  only the 7 due-condition SELECTs"
    )
    print(f"{'backend':<11} {'rows':>8}  {'sweep':>24}  {'claims':>22}  {'due queries':>20}")
    for db in databases:
        print(
            f"{db.backend:<11} {db.size:>8,}  {_summary(db.sweep_times):>24}  "
            f"{_summary(db.claim_times):>22}  {_summary(db.select_times):>20}"
        )
    smallest, largest = sizes[0], sizes[-1]
    if smallest == largest:
        return
    for backend in args.backends:
        by_size = {db.size: db for db in databases if db.backend == backend}
        small, large = by_size[smallest], by_size[largest]
        ratios = [
            f"{name} {_median_ratio(getattr(large, attr), getattr(small, attr)):.2f}x"
            for name, attr in (
                ("sweep", "sweep_times"),
                ("claims", "claim_times"),
                ("due queries", "select_times"),
            )
        ]
        print(f"ratio {largest:,}/{smallest:,} rows on {backend}: {', '.join(ratios)}")


def _median_ratio(large: list[float], small: list[float]) -> float:
    return statistics.median(large) / statistics.median(small)


def _summary(times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{statistics.median(ms):.1f} [{min(ms):.1f}-{max(ms):.1f}]"


if __name__ == "__main__":
    sys.exit(main())

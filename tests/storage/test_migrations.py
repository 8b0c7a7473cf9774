"""Migrations reach head from an empty database, and the models match them (no drift)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from bot.app.settings import normalize_database_url
from storage.database import head_revision, is_up_to_date, make_engine, upgrade
from storage.tables import Base
from tests.conftest import BACKENDS


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    url = normalize_database_url(os.environ["PIMBOT_TEST_DATABASE_URL"])
    schema = f"pimbot_migr_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_an_empty_database_upgrades_to_head_without_drift(empty_database: Engine) -> None:
    assert not is_up_to_date(empty_database)
    upgrade(empty_database)
    assert is_up_to_date(empty_database)
    assert _drift(empty_database) == []
    upgrade(empty_database)  # a second upgrade is a no-op
    assert head_revision(empty_database) is not None


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_the_hash_chain_migration_backfills_existing_entries_in_id_order(
    empty_database: Engine,
) -> None:
    from storage.database import make_session_factory
    from storage.unit_of_work import SqlUnitOfWork

    upgrade(empty_database, "0004")
    at = "2026-11-28 09:00:00.000001" if empty_database.dialect.name == "sqlite" else None
    with empty_database.begin() as connection:
        for i in range(3):
            connection.execute(
                text(
                    "INSERT INTO audit_events (request_id, actor, action, at, detail) "
                    "VALUES (NULL, 'operator', 'identity_linked', "
                    + (":at" if at else "TIMESTAMPTZ '2026-11-28 09:00:00.000001+00'")
                    + ", :detail)"
                ),
                {"detail": f"row {i}", **({"at": at} if at else {})},
            )
        last = connection.execute(text("SELECT max(id) FROM audit_events")).scalar_one()
    upgrade(empty_database)
    assert _drift(empty_database) == []
    with SqlUnitOfWork(make_session_factory(empty_database)) as uow:
        assert uow.audit.verify().line() == "3 entries, chain intact"
    with empty_database.connect() as connection:
        head = connection.execute(text("SELECT last_id FROM audit_head")).scalar_one()
        assert head == last
    # New entries continue the backfilled chain.
    from bot.domain.elevation import AuditEntry
    from tests.fakes import T0

    with SqlUnitOfWork(make_session_factory(empty_database)) as uow:
        uow.audit.add(AuditEntry(None, "operator", "identity_linked", None, None, T0, "new"))
        uow.commit()
    with SqlUnitOfWork(make_session_factory(empty_database)) as uow:
        assert uow.audit.verify().line() == "4 entries, chain intact"


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_the_delegated_sign_ins_migration_downgrades_and_upgrades_again(
    empty_database: Engine,
) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from storage.database import alembic_config, current_revision

    delegated = {"signin_links", "delegated_sign_ins"}
    upgrade(empty_database, "0010")
    assert delegated <= set(inspect(empty_database).get_table_names())
    command.downgrade(alembic_config(empty_database), "0009")
    assert current_revision(empty_database) == "0009"
    assert not delegated & set(inspect(empty_database).get_table_names())
    upgrade(empty_database)
    assert _drift(empty_database) == []

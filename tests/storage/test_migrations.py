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

from bot.settings import normalize_database_url
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

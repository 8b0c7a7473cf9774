"""Shared fixtures: a migrated database on SQLite and (when configured) PostgreSQL.

Every storage-touching test runs once per backend. PostgreSQL comes from
PIMBOT_TEST_DATABASE_URL (``make test`` points it at 127.0.0.1:5432/test); each test session
gets its own schema, and every test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text

from bot.app.settings import normalize_database_url
from storage.database import make_engine, make_session_factory, upgrade
from storage.tables import Base
from storage.unit_of_work import SqlUnitOfWork

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("PIMBOT_TEST_DATABASE_URL") else [])


def _postgres_engine(schema: str) -> Engine:
    url = normalize_database_url(os.environ["PIMBOT_TEST_DATABASE_URL"])
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    engine = make_engine(url, pool_size=25, max_overflow=10)

    @event.listens_for(engine, "connect")
    def _use_schema(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    return engine


# The URL each migrated engine was built from, for code that builds its own engine from
# settings (the Slack runtime, a pimbot subprocess); PostgreSQL's carries the test schema.
ENGINE_URLS: dict[int, str] = {}


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "pimbot.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        ENGINE_URLS[id(engine)] = f"sqlite:///{path}"
        yield engine
        engine.dispose()
        return
    schema = f"pimbot_test_{uuid.uuid4().hex[:10]}"
    engine = _postgres_engine(schema)
    upgrade(engine)
    url = os.environ["PIMBOT_TEST_DATABASE_URL"]
    joiner = "&" if "?" in url else "?"
    ENGINE_URLS[id(engine)] = f"{url}{joiner}options=-csearch_path%3D{schema}"
    yield engine
    engine.dispose()
    admin = make_engine(normalize_database_url(os.environ["PIMBOT_TEST_DATABASE_URL"]))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    yield migrated_engine
    with migrated_engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def database_url(engine: Engine) -> str:
    """A URL for the same migrated, emptied database (for code that builds its own engine)."""
    return ENGINE_URLS[id(engine)]


@pytest.fixture
def uow_factory(engine: Engine):  # type: ignore[no-untyped-def]
    sessions = make_session_factory(engine)
    return lambda: SqlUnitOfWork(sessions)

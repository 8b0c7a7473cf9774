"""The unit of work: the only transaction boundary in pimbot."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from storage.repository import (
    SqlAuditLog,
    SqlIdentityLinks,
    SqlMessageLog,
    SqlOutbox,
    SqlReplayCache,
    SqlRequestRepository,
)


class SqlUnitOfWork:
    """``with uow: ...; uow.commit()`` — anything not committed is rolled back on exit."""

    requests: SqlRequestRepository
    audit: SqlAuditLog
    identities: SqlIdentityLinks
    messages: SqlMessageLog
    outbox: SqlOutbox
    replays: SqlReplayCache

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("unit of work is not re-entrant")
        self._session = self._session_factory()
        self.requests = SqlRequestRepository(self._session)
        self.audit = SqlAuditLog(self._session)
        self.identities = SqlIdentityLinks(self._session)
        self.messages = SqlMessageLog(self._session)
        self.outbox = SqlOutbox(self._session)
        self.replays = SqlReplayCache(self._session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None

    def commit(self) -> None:
        assert self._session is not None, "commit() outside 'with uow:'"
        self._session.commit()

    def rollback(self) -> None:
        assert self._session is not None, "rollback() outside 'with uow:'"
        self._session.rollback()

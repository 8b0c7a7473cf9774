"""The unit of work: the only transaction boundary in pimbot."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from bot.app.logs import log_audit_event
from storage.delegated import SqlSignInLinks, SqlSignIns
from storage.repository import (
    ChainedEntry,
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
    signin_links: SqlSignInLinks
    sign_ins: SqlSignIns

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("unit of work is not re-entrant")
        self._session = self._session_factory()
        self.audit = SqlAuditLog(self._session)
        self.outbox = SqlOutbox(self._session)
        self.requests = SqlRequestRepository(self._session, self.audit, self.outbox)
        self.identities = SqlIdentityLinks(self._session)
        self.messages = SqlMessageLog(self._session)
        self.replays = SqlReplayCache(self._session)
        self.signin_links = SqlSignInLinks(self._session)
        self.sign_ins = SqlSignIns(self._session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            self.audit.discard_pending()
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None

    def commit(self) -> None:
        assert self._session is not None, "commit() outside 'with uow:'"
        written = self.audit.write_pending()
        self._session.commit()
        # Only now is each entry evidence: a rolled-back change never logs a phantom entry.
        for chained in written:
            _log(chained)

    def rollback(self) -> None:
        assert self._session is not None, "rollback() outside 'with uow:'"
        self.audit.discard_pending()
        self._session.rollback()


def _log(chained: ChainedEntry) -> None:
    entry = chained.entry
    log_audit_event(
        audit_id=chained.id,
        request_id=entry.request_id,
        actor=entry.actor,
        action=entry.action,
        from_status=entry.from_status,
        to_status=entry.to_status,
        at=entry.at.isoformat(),
        detail=entry.detail,
        prev_hash=chained.prev_hash,
        hash=chained.hash,
    )

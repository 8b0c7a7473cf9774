"""Repositories of delegated mode: sign-in links in progress and people's sealed sign-ins.

Only sealed text reaches these tables (the ``Sealer`` seals before a value gets here): the
repositories store and return it as given and never see a token, a code or a PKCE verifier.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.domain.ports import SignInLink, StoredSignIn
from storage.tables import DelegatedSignInRow, SignInLinkRow

# Device-code sign-ins are told apart by their state (bot.use_cases.signing_in.DEVICE_STATE).
DEVICE_STATE = "device-"


class SqlSignInLinks:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, link: SignInLink) -> None:
        self._session.add(
            SignInLinkRow(
                state=link.state,
                slack_team=link.slack_team,
                slack_user=link.slack_user,
                tenant=link.tenant,
                purpose=link.purpose,
                created_at=link.created_at,
                expires_at=link.expires_at,
                sealed_flow=link.sealed_flow,
                claims=link.claims,
                request_id=link.request_id,
                used_at=link.used_at,
            )
        )
        self._session.flush()

    def take(self, state: str, *, at: datetime) -> SignInLink | None:
        """Mark the link used (``used_at`` = ``at``) and return it; None when unknown or used.

        One conditional UPDATE: on PostgreSQL a racing take waits on the row lock, then finds
        ``used_at`` set and changes nothing; SQLite serialises writers. Either way exactly one
        caller sees one changed row, and only that caller gets the link."""
        result = self._session.execute(
            update(SignInLinkRow)
            .where(SignInLinkRow.state == state, SignInLinkRow.used_at.is_(None))
            .values(used_at=at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = self._session.scalars(
            select(SignInLinkRow)
            .where(SignInLinkRow.state == state)
            .execution_options(populate_existing=True)
        ).one()
        return _link_from(row)

    def delete_for(self, slack_team: str, slack_user: str) -> int:
        result = self._session.execute(
            delete(SignInLinkRow)
            .where(SignInLinkRow.slack_team == slack_team, SignInLinkRow.slack_user == slack_user)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def pending_device(self) -> list[SignInLink]:
        rows = self._session.scalars(
            select(SignInLinkRow)
            .where(SignInLinkRow.state.startswith(DEVICE_STATE), SignInLinkRow.used_at.is_(None))
            .order_by(SignInLinkRow.created_at)
        )
        return [_link_from(row) for row in rows]


class SqlSignIns:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, slack_team: str, slack_user: str, tenant: str) -> StoredSignIn | None:
        row = self._session.scalars(
            select(DelegatedSignInRow)
            .where(
                DelegatedSignInRow.slack_team == slack_team,
                DelegatedSignInRow.slack_user == slack_user,
                DelegatedSignInRow.tenant == tenant,
            )
            .execution_options(populate_existing=True)
        ).first()
        return _sign_in_from(row) if row is not None else None

    def list_for(self, slack_team: str, slack_user: str) -> list[StoredSignIn]:
        rows = self._session.scalars(
            select(DelegatedSignInRow)
            .where(
                DelegatedSignInRow.slack_team == slack_team,
                DelegatedSignInRow.slack_user == slack_user,
            )
            .order_by(DelegatedSignInRow.tenant)
            .execution_options(populate_existing=True)
        ).all()
        return [_sign_in_from(row) for row in rows]

    def put(self, sign_in: StoredSignIn) -> None:
        """Insert, or replace every column of the one stored for (team, user, tenant).

        An upsert in one statement (ON CONFLICT DO UPDATE), so two replicas writing the same
        person's cache back at once never fail on the primary key: the later write wins."""
        values = {
            "slack_team": sign_in.slack_team,
            "slack_user": sign_in.slack_user,
            "tenant": sign_in.tenant,
            "entra_id": sign_in.entra_id,
            "username": sign_in.username,
            "sealed_cache": sign_in.sealed_cache,
            "signed_in_at": sign_in.signed_in_at,
            "mfa": sign_in.mfa,
            "acrs": list(sign_in.acrs),
            "usable_until": sign_in.usable_until,
            "updated_at": sign_in.updated_at,
        }
        key = ("slack_team", "slack_user", "tenant")
        dialect = self._session.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
            self._session.merge(DelegatedSignInRow(**values))
            self._session.flush()
            return
        module = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(DelegatedSignInRow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={name: statement.excluded[name] for name in values if name not in key},
        )
        self._session.execute(statement)

    def delete_for(self, slack_team: str, slack_user: str) -> int:
        result = self._session.execute(
            delete(DelegatedSignInRow)
            .where(
                DelegatedSignInRow.slack_team == slack_team,
                DelegatedSignInRow.slack_user == slack_user,
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def _link_from(row: SignInLinkRow) -> SignInLink:
    return SignInLink(
        state=row.state,
        slack_team=row.slack_team,
        slack_user=row.slack_user,
        tenant=row.tenant,
        purpose=row.purpose,
        created_at=row.created_at,
        expires_at=row.expires_at,
        sealed_flow=row.sealed_flow,
        claims=row.claims,
        request_id=row.request_id,
        used_at=row.used_at,
    )


def _sign_in_from(row: DelegatedSignInRow) -> StoredSignIn:
    return StoredSignIn(
        slack_team=row.slack_team,
        slack_user=row.slack_user,
        tenant=row.tenant,
        entra_id=row.entra_id,
        username=row.username,
        sealed_cache=row.sealed_cache,
        signed_in_at=row.signed_in_at,
        mfa=row.mfa,
        acrs=tuple(row.acrs),
        usable_until=row.usable_until,
        updated_at=row.updated_at,
    )

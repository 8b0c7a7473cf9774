"""Delegated mode's storage on SQLite and PostgreSQL: sign-in links (used once) and sealed
sign-ins (one per person and tenant), with only sealed text ever in the tables."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, inspect, text

from bot.adapters.sealing import FernetSealer, generate_token_key
from bot.domain.ports import SignInLink, StoredSignIn
from storage.database import current_revision, head_revision
from tests.fakes import ADA, GRACE, T0

TENANT = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-000000000002"
# Recognisable plaintexts: a search of every stored column must never find them.
REFRESH_TOKEN = "0.ARefreshTokenOfAda-PLAINTEXT-MARKER-7f3a"
VERIFIER = "pkce-verifier-PLAINTEXT-MARKER-91bd"


def _link(state: str = "state-1", **overrides: object) -> SignInLink:
    values: dict[str, object] = {
        "state": state,
        "slack_team": ADA.slack_team,
        "slack_user": ADA.slack_user,
        "tenant": TENANT,
        "purpose": "connect",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=10),
        "sealed_flow": "sealed-flow",
    }
    values.update(overrides)
    return SignInLink(**values)  # type: ignore[arg-type]


def _sign_in(**overrides: object) -> StoredSignIn:
    values: dict[str, object] = {
        "slack_team": ADA.slack_team,
        "slack_user": ADA.slack_user,
        "tenant": TENANT,
        "entra_id": ADA.entra_id,
        "username": "ada@contoso.com",
        "sealed_cache": "sealed-cache",
        "signed_in_at": T0,
        "mfa": True,
        "acrs": ("c1", "c2"),
        "usable_until": T0 + timedelta(days=90),
        "updated_at": T0,
    }
    values.update(overrides)
    return StoredSignIn(**values)  # type: ignore[arg-type]


def test_the_schema_has_both_tables_and_the_per_person_index(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)
    inspector = inspect(engine)
    assert {"signin_links", "delegated_sign_ins"} <= set(inspector.get_table_names())
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("signin_links")}
    assert indexes["ix_signin_links_slack_user"] == ["slack_team", "slack_user"]
    assert inspector.get_pk_constraint("delegated_sign_ins")["constrained_columns"] == [
        "slack_team",
        "slack_user",
        "tenant",
    ]


def test_a_link_is_taken_once_and_comes_back_as_stored(uow_factory) -> None:  # type: ignore[no-untyped-def]
    link = _link(
        claims='{"access_token":{"acrs":{"essential":true,"value":"c1"}}}', request_id="r-1"
    )
    with uow_factory() as uow:
        uow.signin_links.add(link)
        uow.commit()
    taken_at = T0 + timedelta(minutes=2)
    with uow_factory() as uow:
        taken = uow.signin_links.take("state-1", at=taken_at)
        uow.commit()
    assert taken == replace(link, used_at=taken_at)
    with uow_factory() as uow:
        assert uow.signin_links.take("state-1", at=taken_at) is None  # used
        assert uow.signin_links.take("no-such-state", at=taken_at) is None
        uow.commit()


def test_a_take_that_is_rolled_back_leaves_the_link_usable(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        uow.signin_links.add(_link())
        uow.commit()
    with uow_factory() as uow:
        assert uow.signin_links.take("state-1", at=T0) is not None
        # no commit: the sign-in failed before it counted
    with uow_factory() as uow:
        assert uow.signin_links.take("state-1", at=T0) is not None


def test_of_two_racing_takes_exactly_one_gets_the_link(uow_factory) -> None:  # type: ignore[no-untyped-def]
    # Two real connections: the first take holds its transaction open; the second must wait
    # for it (PostgreSQL: the row lock; SQLite: the write lock) and then find the link used.
    with uow_factory() as uow:
        uow.signin_links.add(_link())
        uow.commit()
    second: list[SignInLink | None] = []

    def take_in_another_connection() -> None:
        with uow_factory() as other:
            second.append(other.signin_links.take("state-1", at=T0 + timedelta(seconds=1)))
            other.commit()

    with uow_factory() as first:
        won = first.signin_links.take("state-1", at=T0)
        racer = threading.Thread(target=take_in_another_connection)
        racer.start()
        time.sleep(0.5)
        assert second == [], "the second take did not wait for the first transaction"
        first.commit()
    racer.join(timeout=30)
    assert not racer.is_alive()
    assert won is not None and won.used_at == T0
    assert second == [None]


def test_many_racing_takes_hand_the_link_to_exactly_one(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        uow.signin_links.add(_link())
        uow.commit()
    racers = 8
    barrier = threading.Barrier(racers)
    results: list[SignInLink | None] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            barrier.wait()
            with uow_factory() as uow:
                results.append(uow.signin_links.take("state-1", at=T0))
                uow.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == racers
    assert sum(result is not None for result in results) == 1


def test_delete_for_removes_every_link_of_that_person_only(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        uow.signin_links.add(_link("s1"))
        uow.signin_links.add(_link("s2", purpose="step_up", used_at=T0))
        uow.signin_links.add(_link("s3", tenant=OTHER_TENANT))
        uow.signin_links.add(_link("g1", slack_user=GRACE.slack_user))
        uow.commit()
    with uow_factory() as uow:
        assert uow.signin_links.delete_for(ADA.slack_team, ADA.slack_user) == 3
        uow.commit()
    with uow_factory() as uow:
        assert uow.signin_links.delete_for(ADA.slack_team, ADA.slack_user) == 0
        assert uow.signin_links.take("s1", at=T0) is None
        assert uow.signin_links.take("g1", at=T0) is not None


def test_a_sign_in_round_trips_and_put_replaces_it(uow_factory) -> None:  # type: ignore[no-untyped-def]
    stored = _sign_in()
    with uow_factory() as uow:
        assert uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT) is None
        uow.sign_ins.put(stored)
        uow.commit()
    with uow_factory() as uow:
        assert uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT) == stored
    newer = replace(
        stored,
        sealed_cache="sealed-cache-2",
        mfa=False,
        acrs=(),
        usable_until=None,
        username="ada.lovelace@contoso.com",
        signed_in_at=T0 + timedelta(hours=1),
        updated_at=T0 + timedelta(hours=1),
    )
    with uow_factory() as uow:
        uow.sign_ins.put(newer)
        uow.commit()
    with uow_factory() as uow:
        assert uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT) == newer
        assert uow.sign_ins.list_for(ADA.slack_team, ADA.slack_user) == [newer]


def test_put_inside_one_transaction_reads_back_the_replacement(uow_factory) -> None:  # type: ignore[no-untyped-def]
    # The upsert bypasses the ORM's identity map; a get after it must not return a stale row.
    with uow_factory() as uow:
        uow.sign_ins.put(_sign_in())
        assert uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT) == _sign_in()
        uow.sign_ins.put(_sign_in(sealed_cache="second"))
        got = uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT)
        assert got is not None and got.sealed_cache == "second"


def test_sign_ins_are_per_tenant_and_delete_for_counts_them(uow_factory) -> None:  # type: ignore[no-untyped-def]
    with uow_factory() as uow:
        uow.sign_ins.put(_sign_in())
        uow.sign_ins.put(_sign_in(tenant=OTHER_TENANT, entra_id="guest-object-id"))
        uow.sign_ins.put(_sign_in(slack_user=GRACE.slack_user, entra_id=GRACE.entra_id))
        uow.commit()
    with uow_factory() as uow:
        tenants = [s.tenant for s in uow.sign_ins.list_for(ADA.slack_team, ADA.slack_user)]
        assert tenants == sorted([TENANT, OTHER_TENANT])
        assert uow.sign_ins.delete_for(ADA.slack_team, ADA.slack_user) == 2
        uow.commit()
    with uow_factory() as uow:
        assert uow.sign_ins.list_for(ADA.slack_team, ADA.slack_user) == []
        assert uow.sign_ins.delete_for(ADA.slack_team, ADA.slack_user) == 0
        assert uow.sign_ins.get(GRACE.slack_team, GRACE.slack_user, TENANT) is not None


def test_the_tables_hold_only_sealed_text(uow_factory, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    sealer = FernetSealer([generate_token_key().encode()])
    cache = '{"RefreshToken": {"secret": "' + REFRESH_TOKEN + '"}}'
    flow = '{"code_verifier": "' + VERIFIER + '", "state": "state-1"}'
    with uow_factory() as uow:
        uow.signin_links.add(_link(sealed_flow=sealer.seal(flow)))
        uow.sign_ins.put(_sign_in(sealed_cache=sealer.seal(cache)))
        uow.commit()
    with engine.connect() as connection:
        stored = [
            str(value)
            for table in ("signin_links", "delegated_sign_ins")
            for row in connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            for value in row
        ]
    assert stored, "nothing was stored"
    everything = "\n".join(stored)
    for plaintext in (REFRESH_TOKEN, VERIFIER, "code_verifier", "RefreshToken"):
        assert plaintext not in everything
    # ... and what is stored opens again to exactly what was sealed.
    with uow_factory() as uow:
        sign_in = uow.sign_ins.get(ADA.slack_team, ADA.slack_user, TENANT)
        link = uow.signin_links.take("state-1", at=T0)
    assert sign_in is not None and sealer.open(sign_in.sealed_cache) == cache
    assert link is not None and sealer.open(link.sealed_flow) == flow

"""``pimbot audit`` and ``pimbot audit verify`` as an operator runs them, on SQLite and
PostgreSQL: filters, JSON Lines and CSV with names next to ids, and a chain check that names
the first tampered entry."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from bot.app.cli import main
from bot.domain.elevation import AuditEntry, ElevationRequest, Ticket
from tests.fakes import ADA, ALAN, GLOBAL_ADMIN, GRACE, SECURITY_READER, T0


@pytest.fixture
def trail(uow_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    ada = ElevationRequest.submit(
        requester=ADA,
        role=GLOBAL_ADMIN,
        duration=timedelta(hours=1),
        reason='=HYPERLINK("https://evil") incident 42',
        at=T0,
        ticket=Ticket("INC-42", "ServiceNow"),
    )
    alan = ElevationRequest.submit(
        requester=ALAN,
        role=SECURITY_READER,
        duration=timedelta(minutes=30),
        reason="quarterly review",
        at=T0 + timedelta(hours=2),
    )
    with uow_factory() as uow:
        uow.audit.add(
            AuditEntry(
                None,
                "operator",
                "identity_linked",
                None,
                None,
                T0 - timedelta(days=1),
                f"{ADA.key} -> {ADA.entra_id}",
            )
        )
        uow.commit()
    with uow_factory() as uow:
        uow.requests.add(ada)
        uow.requests.add(alan)
        uow.commit()
    with uow_factory() as uow:
        loaded = uow.requests.get(ada.id)
        assert loaded is not None
        loaded.approve(GRACE, at=T0 + timedelta(minutes=5))
        uow.requests.save(loaded)
        uow.commit()
    return {"ada": ada.id, "alan": alan.id}


def _run(database_url: str, *args: str) -> Result:
    env = {"PIMBOT_DATABASE_URL": database_url, "PIMBOT_TEST_DATABASE_URL": None}
    return CliRunner().invoke(main, ["audit", *args], env=env)  # type: ignore[arg-type]


def _jsonl(database_url: str, *args: str) -> list[dict[str, object]]:
    result = _run(database_url, "--format", "jsonl", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_jsonl_carries_names_reason_ticket_and_hashes(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    entries = _jsonl(database_url)
    assert [e["action"] for e in entries] == [
        "identity_linked",
        "submit",
        "submit",
        "approve",
    ]
    approval = entries[-1]
    assert approval["request_id"] == trail["ada"]
    assert approval["actor"] == GRACE.key and approval["actor_name"] == "Grace"
    assert approval["actor_entra_id"] == GRACE.entra_id
    assert approval["requester"] == ADA.key and approval["requester_name"] == "Ada"
    assert approval["requester_entra_id"] == ADA.entra_id
    assert approval["role_name"] == "Global Administrator"
    assert approval["role_definition_id"] == GLOBAL_ADMIN.role_definition_id
    assert approval["ticket_number"] == "INC-42" and approval["ticket_system"] == "ServiceNow"
    assert str(approval["reason"]).startswith("=HYPERLINK")
    assert len(str(approval["hash"])) == 64
    assert approval["prev_hash"] == entries[-2]["hash"]


def test_text_is_the_table_with_names(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    result = _run(database_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert "identity_linked" in lines[0]
    assert f"{GRACE.key} (Grace)" in lines[-1] and "approve" in lines[-1]


def test_filter_by_person_slack_or_entra_id(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    by_grace = _jsonl(database_url, "--person", "U0GRACE")
    assert [(e["action"], e["actor"]) for e in by_grace] == [("approve", GRACE.key)]
    by_grace_entra = _jsonl(database_url, "--person", GRACE.entra_id.upper())  # type: ignore[union-attr]
    assert [e["action"] for e in by_grace_entra] == ["approve"]
    about_ada = _jsonl(database_url, "--person", ADA.entra_id)  # type: ignore[arg-type]
    assert [e["action"] for e in about_ada] == ["identity_linked", "submit", "approve"]
    assert _jsonl(database_url, "--person", "U0NOBODY") == []


def test_filter_by_role_name_or_id_and_by_request(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    assert {e["request_id"] for e in _jsonl(database_url, "--role", "security reader")} == {
        trail["alan"]
    }
    assert {
        e["request_id"] for e in _jsonl(database_url, "--role", GLOBAL_ADMIN.role_definition_id)
    } == {trail["ada"]}
    by_prefix = _jsonl(database_url, trail["ada"][:8])
    assert [e["action"] for e in by_prefix] == ["submit", "approve"]
    assert [e["requester"] for e in _jsonl(database_url, "--request", trail["alan"])] == [ALAN.key]


def test_filter_by_time_iso_and_relative(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    window = _jsonl(
        database_url,
        "--since",
        T0.isoformat(),
        "--until",
        (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    )
    assert [e["action"] for e in window] == ["submit", "approve"]
    assert len(_jsonl(database_url, "--since", "3650d")) == 4
    assert _jsonl(database_url, "--since", "1h") == []
    bad = _run(database_url, "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "neither a date or time" in bad.output


def test_csv_has_a_header_and_neutralises_formulas(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    result = _run(database_url, "--format", "csv", "--role", "Global Administrator")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["action"] for r in rows] == ["submit", "approve"]
    assert rows[1]["actor_name"] == "Grace" and rows[1]["requester_name"] == "Ada"
    assert rows[1]["ticket_number"] == "INC-42"
    assert rows[1]["reason"].startswith("'=HYPERLINK")


def test_verify_says_intact_and_exits_zero(database_url: str, trail) -> None:  # type: ignore[no-untyped-def]
    result = _run(database_url, "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "4 entries, chain intact"


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_verify_names_the_first_tampered_entry(
    database_url: str,
    engine: Engine,
    trail,
    tamper: str,  # type: ignore[no-untyped-def]
) -> None:
    with engine.begin() as connection:
        ids = list(connection.execute(text("SELECT id FROM audit_events ORDER BY id")).scalars())
        if tamper == "edit":
            connection.execute(
                text("UPDATE audit_events SET actor = 'T0PIMBOT/U0MALLORY' WHERE id = :id"),
                {"id": ids[3]},
            )
            bad = ids[3]
        elif tamper == "delete":
            connection.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
            bad = ids[2]
        else:
            # Move the approval before the submissions: it no longer follows what it followed.
            connection.execute(
                text("UPDATE audit_events SET id = :new WHERE id = :id"),
                {"id": ids[0], "new": ids[-1] + 50},
            )
            bad = ids[1]
    result = _run(database_url, "verify")
    assert result.exit_code == 1
    assert f"audit chain broken at entry {bad}:" in result.stderr

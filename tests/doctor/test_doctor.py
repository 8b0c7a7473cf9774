"""``pimbot doctor`` against the stand-ins: each broken setting is named with its fix."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import yaml

from bot.app.doctor.graph import granted_permissions
from bot.app.doctor.slack import BOT_SCOPES
from stand_ins.fake_slack import DEFAULT_SCOPES, default_workspace
from stand_ins.graph_emulator import Tenant, default_tenant
from tests.doctor.conftest import LEAST_PRIVILEGED, Doctor, Outcome

REPO = Path(__file__).resolve().parents[2]
DEMO_SECRET = default_tenant().app.client_secret or ""


def _assert_only_failure(outcome: Outcome, start: str) -> str:
    assert outcome.exit_code == 1, outcome.output
    assert [line for line in outcome.failures() if not line.startswith(start)] == []
    return outcome.line(start)


def test_a_good_configuration_passes_every_check_and_exits_0(
    doctor: Doctor, database_url: str
) -> None:
    slack_app_token = default_workspace().app_token
    outcome = doctor.run(PIMBOT_DATABASE_URL=database_url, SLACK_APP_TOKEN=slack_app_token)

    assert outcome.exit_code == 0, outcome.output
    assert outcome.lines[-1] == "pimbot doctor: all 18 checks passed."
    assert all(line.startswith("✓") for line in outcome.lines[:-1]), outcome.output
    outcome.line("✓ settings: everything `pimbot run` needs is set (Socket Mode)")
    assert "reachable, schema at" in outcome.line("✓ database ")
    outcome.line("✓ Slack: SLACK_BOT_TOKEN is valid: workspace Contoso (T0PIMBOT)")
    outcome.line("✓ Slack: SLACK_APP_TOKEN can open Socket Mode connections")
    outcome.line("✓ Slack: the bot token has every scope manifest.yml asks for")
    outcome.line("✓ Slack: approvals channel #pim-approvals (C0APPROVALS): @pimbot is a member")
    outcome.line("✓ Entra ID: token issued for app")
    outcome.line("✓ Graph: pimbot may read role eligibility")
    outcome.line("✓ Graph: pimbot may read role settings")
    assert "400 PrincipalNotFound" in outcome.line(
        "✓ Graph: pimbot may create role assignment schedule requests"
    )
    assert outcome.line("✓ policy roles exist in Entra ID:").endswith(
        "Exchange Administrator, Global Administrator, Security Reader"
    )
    outcome.line("✓ policy approver group 'PIM Approvers'")
    outcome.line("✓ Graph: pimbot may read Conditional Access policies")
    for secret in (DEMO_SECRET, slack_app_token, default_workspace().bot_token):
        assert secret not in outcome.output


def test_the_write_probe_leaves_pim_as_it_was(doctor: Doctor) -> None:
    outcome = doctor.run()

    assert outcome.exit_code == 0, outcome.output
    assert doctor.emulator is not None
    assert doctor.emulator.state.list_requests() == []
    standing = doctor.emulator.state.assignment_instances()
    assert len(standing) == len(default_tenant().assignments)


def test_a_wrong_azure_secret_names_the_aadsts_code_and_the_variable(doctor: Doctor) -> None:
    outcome = doctor.run(AZURE_CLIENT_SECRET="not-the-secret")

    line = _assert_only_failure(outcome, "✗ Entra ID: no token for app")
    assert "(AADSTS7000215) — " in line
    assert "Check AZURE_CLIENT_SECRET: use the secret's Value (not its Secret ID)" in line
    outcome.line("– Graph permissions, policy roles and approver groups: not checked")
    # Slack does not depend on Entra ID, so its checks still ran.
    outcome.line("✓ Slack: approvals channel #pim-approvals")
    assert "not-the-secret" not in outcome.output


def test_an_unknown_client_id_is_aadsts700016(doctor: Doctor) -> None:
    outcome = doctor.run(AZURE_CLIENT_ID="11111111-2222-3333-4444-555555555555")

    line = _assert_only_failure(outcome, "✗ Entra ID: no token for app")
    assert "(AADSTS700016)" in line and "Check both values" in line


def test_a_missing_write_permission_is_named_with_admin_consent(
    doctor: Doctor, tenant_with: Callable[..., Tenant]
) -> None:
    reads_only = tenant_with(
        "RoleManagement.Read.Directory",
        "RoleManagementPolicy.Read.Directory",
        "User.Read.All",
        "GroupMember.Read.All",
    )
    outcome = doctor.run(tenant=reads_only)

    line = _assert_only_failure(outcome, "✗ Graph: pimbot may not create role assignment")
    assert "(403 Authorization_RequestDenied) — add the Microsoft Graph application" in line
    wanted = "RoleAssignmentSchedule.ReadWrite.Directory (or RoleManagement.ReadWrite.Directory)"
    assert f"permission {wanted} to the app registration" in line
    assert "grant admin consent" in line
    assert "Privileged Role Administrator directory role" in line
    assert "(the token grants: GroupMember.Read.All, RoleManagement.Read.Directory," in line
    outcome.line("✓ Graph: pimbot may read role eligibility")


def test_each_missing_read_permission_is_named(
    doctor: Doctor, tenant_with: Callable[..., Tenant]
) -> None:
    outcome = doctor.run(tenant=tenant_with("RoleAssignmentSchedule.ReadWrite.Directory"))

    assert outcome.exit_code == 1
    assert "RoleEligibilitySchedule.Read.Directory (or RoleManagement.Read.Directory)" in (
        outcome.line("✗ Graph: pimbot may not read role eligibility")
    )
    assert "RoleManagementPolicy.Read.Directory" in outcome.line(
        "✗ Graph: pimbot may not read role settings"
    )
    assert "User.Read.All" in outcome.line("✗ Graph: pimbot may not read users")
    assert "GroupMember.Read.All" in outcome.line("✗ Graph: pimbot may not read groups")
    outcome.line("✓ Graph: pimbot may create role assignment schedule requests")


def test_the_least_privileged_permissions_the_readme_lists_are_enough(
    doctor: Doctor, tenant_with: Callable[..., Tenant]
) -> None:
    outcome = doctor.run(tenant=tenant_with(*LEAST_PRIVILEGED))

    assert outcome.exit_code == 0, outcome.output
    # Without RoleManagement.Read.Directory role names come from the eligibilities.
    outcome.line("✓ policy roles exist in Entra ID: Exchange Administrator, Global Administrator")


def test_an_unknown_role_in_the_policy_file_is_named_with_a_suggestion(doctor: Doctor) -> None:
    policy = "roles:\n  Global Adminstrator:\n    quorum: 2\n  Security Reader: {}\n"
    outcome = doctor.run(policy=policy)

    line = _assert_only_failure(outcome, "✗ policy file names role 'global adminstrator'")
    assert "which is not among the role definitions in Entra ID" in line
    assert "did you mean 'Global Administrator'?" in line
    outcome.line("✓ policy roles exist in Entra ID: Security Reader")


def test_an_unknown_approver_group_is_named(doctor: Doctor) -> None:
    missing = "3f5d2c1a-1111-4a4a-9b9b-0123456789ab"
    policy = f"roles:\n  Security Reader:\n    approvers:\n      - entra_group: {missing}\n"
    outcome = doctor.run(policy=policy)

    line = _assert_only_failure(outcome, f"✗ policy file names approver group {missing}")
    assert "(for security reader), which Entra ID does not have" in line


def test_an_invalid_policy_file_is_reported_with_every_problem(doctor: Doctor) -> None:
    outcome = doctor.run(policy="roles:\n  Security Reader:\n    quorom: 2\n")

    line = _assert_only_failure(outcome, "✗ policy file: ")
    assert "roles.Security Reader.quorom: unknown key (typo?)" in line


def test_roles_where_break_glass_may_bypass_pim_approval_are_listed(doctor: Doctor) -> None:
    policy = (
        "roles:\n"
        "  Global Administrator:\n"
        "    break_glass: [U0ADA]\n"
        "    break_glass_overrides_pim_approval: true\n"
        "  Security Reader:\n"
        "    break_glass: [U0ALAN]\n"
    )
    outcome = doctor.run(policy=policy)
    line = outcome.line("✓ break glass allowed on:")
    assert "global administrator by U0ADA" in line and "security reader by U0ALAN" in line
    assert line.endswith("It may bypass PIM's own approval on: global administrator")


def test_break_glass_bypassing_pim_is_refused_for_every_role_at_once(doctor: Doctor) -> None:
    outcome = doctor.run(policy="defaults:\n  break_glass_overrides_pim_approval: true\n")
    line = _assert_only_failure(outcome, "✗ policy file: ")
    assert "set it per role, never for every role" in line


def test_the_security_channel_is_checked_like_an_approvals_channel(doctor: Doctor) -> None:
    outcome = doctor.run(policy=None, PIMBOT_SECURITY_CHANNEL="C0GENERAL")
    line = _assert_only_failure(outcome, "✗ Slack: @pimbot is not a member of approvals channel")
    assert "PIMBOT_SECURITY_CHANNEL" in line or "#general" in line


def test_the_bot_missing_from_the_approvals_channel_is_told_to_invite_it(doctor: Doctor) -> None:
    outcome = doctor.run(policy=None, PIMBOT_APPROVALS_CHANNEL="C0GENERAL")

    line = _assert_only_failure(outcome, "✗ Slack: @pimbot is not a member of approvals channel")
    assert line.endswith("#general (C0GENERAL) — invite it: type /invite @pimbot in #general")


def test_a_slack_connect_approvals_channel_fails_because_details_would_leak(
    doctor: Doctor,
) -> None:
    policy = "roles:\n  Security Reader:\n    approvals_channel: C0SHARED\n"
    outcome = doctor.run(policy=policy)

    line = _assert_only_failure(outcome, "✗ Slack: approvals channel #contoso-fabrikam (C0SHARED)")
    assert "is shared with another organisation (Slack Connect)" in line
    assert "would be visible outside Contoso" in line
    outcome.line("✓ Slack: approvals channel #pim-approvals (C0APPROVALS)")


def test_a_missing_slack_scope_is_named_with_reinstall(doctor: Doctor) -> None:
    workspace = default_workspace()
    workspace.scopes = tuple(s for s in DEFAULT_SCOPES if s not in ("usergroups:read", "commands"))
    outcome = doctor.run(workspace=workspace)

    line = _assert_only_failure(outcome, "✗ Slack: the bot token lacks the scope(s)")
    assert "lacks the scope(s) commands, usergroups:read — add them" in line
    assert "reinstall the app" in line


def test_a_bad_slack_token_is_called_wrong_or_revoked(doctor: Doctor) -> None:
    outcome = doctor.run(SLACK_BOT_TOKEN="xoxb-1111-2222-notthetoken")

    line = _assert_only_failure(outcome, "✗ Slack: auth.test refused SLACK_BOT_TOKEN")
    assert "(invalid_auth) — SLACK_BOT_TOKEN is wrong or was revoked" in line
    outcome.line("– Slack scopes and approvals channels: not checked")
    outcome.line("✓ Entra ID: token issued for app")
    assert outcome.lines[-1] == (
        "pimbot doctor: 1 of 16 checks failed, 1 could not run until those are fixed. "
        "Fix the ✗ lines above."
    )
    assert "notthetoken" not in outcome.output


def test_a_wrong_socket_mode_token_is_explained(doctor: Doctor) -> None:
    wrong = doctor.run(SLACK_APP_TOKEN="xapp-1-A0PIMBOT-1-notthetoken")
    bot_token_instead = doctor.run(SLACK_APP_TOKEN=default_workspace().bot_token)

    assert "(invalid_auth) — SLACK_APP_TOKEN is wrong or was revoked" in _assert_only_failure(
        wrong, "✗ Slack: apps.connections.open refused SLACK_APP_TOKEN"
    )
    assert "SLACK_APP_TOKEN is not an app-level token: it starts with xapp-" in (
        _assert_only_failure(
            bot_token_instead, "✗ Slack: apps.connections.open refused SLACK_APP_TOKEN"
        )
    )


def test_missing_run_settings_are_each_named_and_the_rest_still_runs(doctor: Doctor) -> None:
    outcome = doctor.run(SLACK_SIGNING_SECRET="")

    line = _assert_only_failure(outcome, "✗ SLACK_SIGNING_SECRET is missing")
    assert line.endswith("— set it in pimbot's environment")
    outcome.line("✓ Graph: pimbot may read role eligibility")


def test_invalid_settings_list_every_problem_and_exit_2(doctor: Doctor) -> None:
    outcome = doctor.run(PIMBOT_PORT="eighty", PIMBOT_SWEEP_INTERVALL="1m")

    assert outcome.exit_code == 2
    assert "PIMBOT_PORT" in outcome.output
    assert "PIMBOT_SWEEP_INTERVALL is not a pimbot setting (typo?)" in outcome.output


def test_a_database_behind_the_code_asks_for_db_upgrade(doctor: Doctor, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    outcome = doctor.run(PIMBOT_DATABASE_URL=f"sqlite:///{empty}")

    line = _assert_only_failure(outcome, f"✗ database sqlite:///{empty}: schema at nothing")
    assert "run `pimbot db upgrade` once with this PIMBOT_DATABASE_URL" in line


def test_an_unreachable_database_is_reported_without_its_password(doctor: Doctor) -> None:
    url = "postgresql://pimbot:s3cret-pw@127.0.0.1:1/pimbot"
    outcome = doctor.run(PIMBOT_DATABASE_URL=url)

    line = _assert_only_failure(outcome, "✗ database postgresql+psycopg://pimbot:***@127.0.0.1:1")
    assert "cannot connect" in line
    assert "s3cret-pw" not in outcome.output


def test_a_database_url_of_another_kind_is_named(doctor: Doctor) -> None:
    outcome = doctor.run(PIMBOT_DATABASE_URL="mysqlx://pimbot:pw@db/pimbot")

    line = _assert_only_failure(outcome, "✗ database mysqlx://pimbot:***@db/pimbot: not a database")
    assert "PIMBOT_DATABASE_URL takes postgresql://" in line


def test_doctor_checks_exactly_the_bot_scopes_in_the_manifest() -> None:
    manifest = yaml.safe_load((REPO / "manifest.yml").read_text())
    assert set(BOT_SCOPES) == set(manifest["oauth_config"]["scopes"]["bot"])


def test_permissions_are_read_only_from_a_readable_token() -> None:
    assert granted_permissions("opaque-token-without-dots") is None
    assert granted_permissions("a.!!!notbase64.c") is None


def test_approvers_linked_by_email_only_are_listed(doctor: Doctor, database_url: str) -> None:
    from datetime import UTC, datetime

    from bot.domain.ports import IdentityLink
    from storage.database import make_engine, make_session_factory
    from storage.unit_of_work import SqlUnitOfWork
    from tests.doctor.conftest import PIM_APPROVERS_GROUP

    engine = make_engine(database_url)
    with SqlUnitOfWork(make_session_factory(engine)) as uow:
        now = datetime.now(UTC)
        uow.identities.link(
            IdentityLink(
                "T0PIMBOT", "U0GRACE", "5846ce5e-e5bf-49f8-8732-e9c302694d9e", "operator", now
            )
        )
        uow.identities.link(
            IdentityLink("T0PIMBOT", "U0ALAN", "df1790b4-cca9-4cb3-80f7-6c1595cf002e", "email", now)
        )
        uow.commit()
    engine.dispose()
    policy = (
        "roles:\n  Global Administrator:\n    approver_link: operator_or_sign_in\n"
        f"    approvers:\n      - entra_group: {PIM_APPROVERS_GROUP}\n"
    )
    outcome = doctor.run(policy=policy, PIMBOT_DATABASE_URL=database_url)
    line = _assert_only_failure(outcome, "✗ approver links:")
    assert "alan turing (alan@contoso.example) for global administrator" in line.lower()
    assert "Grace" not in line and "pimbot link" in line
    # Without the requirement it is only listed, not a failure.
    relaxed = doctor.run(
        policy=policy.replace("    approver_link: operator_or_sign_in\n", ""),
        PIMBOT_DATABASE_URL=database_url,
    )
    assert "Alan Turing" in relaxed.line("✓ approver links:")


def test_without_policy_read_conditional_access_is_a_note_not_a_failure(doctor: Doctor) -> None:
    tenant = default_tenant()
    app = tenant.app.model_copy(
        update={"permissions": tuple(p for p in tenant.app.permissions if p != "Policy.Read.All")}
    )
    outcome = doctor.run(tenant=tenant.model_copy(update={"app": app}))
    assert outcome.exit_code == 0, outcome.output
    line = outcome.line("i Graph: pimbot may not read Conditional Access policies")
    assert "grant Policy.Read.All" in line
    assert outcome.lines[-1] == "pimbot doctor: all 16 checks passed (1 note above)."

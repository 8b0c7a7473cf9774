"""``pimbot doctor``: check a real configuration against Slack, Entra ID and Graph.

Every check becomes one ``Finding``: ``✓`` what was found, or ``✗`` what is wrong and how to
fix it. Checks that need something a failed check could not provide (a valid token, say) are
reported as not checked rather than failing a second time. Nothing here changes anything:
the database is not migrated, and the one Graph write is a validation-only request that could
not act on anybody even if Graph ignored the flag (see ``WRITE_PROBE``).
"""

from __future__ import annotations

from collections.abc import Iterator

from bot.app.doctor.graph import check_microsoft
from bot.app.doctor.local import (
    check_break_glass,
    check_database,
    check_delegated_mode,
    check_policy_file,
    check_required_settings,
)
from bot.app.doctor.report import Finding, Status, summary
from bot.app.doctor.slack import check_slack
from bot.app.settings import Settings

__all__ = ["Finding", "Status", "diagnose", "summary"]


def diagnose(settings: Settings) -> Iterator[Finding]:
    """Every check, in order; independent checks run whatever the others found."""
    yield from check_required_settings(settings)
    yield from check_delegated_mode(settings)
    policy, finding = check_policy_file(settings)
    yield finding
    if policy is not None:
        yield from check_break_glass(policy)
    yield check_database(settings)
    yield from check_slack(settings, policy)
    yield from check_microsoft(settings, policy)

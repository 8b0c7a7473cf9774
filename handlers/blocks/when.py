"""Times as people read them: in their own zone with UTC beside it, or as a Slack date token."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(tz_name: str | None) -> ZoneInfo:
    """The IANA zone Slack reports for a person (``users.info`` ``tz``); UTC when unknown."""
    try:
        return ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def utc_text(at: datetime) -> str:
    """``2024-05-14 13:00 UTC``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_clock(at: datetime) -> str:
    """``13:00 UTC``, for short labels such as select options."""
    return at.astimezone(UTC).strftime("%H:%M UTC")


def local_and_utc(at: datetime, tz_name: str | None) -> str:
    """``15:00 CEST on Tue 14 May (13:00 UTC)``; just ``13:00 UTC on Tue 14 May`` for UTC."""
    tz = zone(tz_name)
    local = at.astimezone(tz)
    day = f"{local:%a} {local.day} {local:%b}"
    if tz.key == "UTC" or local.utcoffset() is None:
        return f"{local:%H:%M} UTC on {day}"
    return f"{local:%H:%M} {local.tzname()} on {day} ({at.astimezone(UTC):%H:%M} UTC)"


def slack_date(at: datetime) -> str:
    """A ``<!date>`` token: every reader sees the time in their own zone; UTC as the fallback."""
    epoch = int(at.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{utc_text(at)}>"

"""ISO-8601 instants and durations the way Graph reads and writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """``PT8H``, ``P1DT2H``, ``PT1H45M``; ValueError for anything else (Graph rejects it too)."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def parse_instant(text: str) -> datetime:
    """An ISO-8601 date-time with an offset (``Z`` or ``+hh:mm``), returned in UTC."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        # Graph treats a DateTimeOffset without an offset as UTC.
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_instant(value: datetime | None) -> str | None:
    """Graph's form: ``2022-04-11T11:50:03.9014347Z``, or ``2022-04-14T00:00:00Z`` when whole."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    whole = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        # .NET prints seven fractional digits; Python keeps six, so pad one.
        return f"{whole}.{value.microsecond:06d}0Z"
    return f"{whole}Z"

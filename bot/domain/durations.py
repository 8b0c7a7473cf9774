"""Durations as people and Graph write them: ``90m``, ``1h30m``, ``2h``, ``PT1H30M``, ``P1D``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

# Far beyond anything PIM or pimbot allows, far inside what ``timedelta`` can hold: text that
# reads as more than this is refused as not a duration rather than overflowing somewhere later.
LONGEST = timedelta(days=3660)

_HUMAN = re.compile(
    r"^\s*(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?\s*"
    r"(?:(?P<s>\d+)\s*s)?\s*$",
    re.IGNORECASE | re.ASCII,
)
_ISO = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE | re.ASCII,
)


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style or ISO-8601 (``PT1H30M``) text; ValueError says what is wrong."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty duration")
    if len(raw) > 40:
        raise ValueError("that is too long to be a duration")
    if raw.isascii() and raw.isdigit():
        # A bare number is minutes: what people mean when they type "90" in a duration field.
        return minutes(float(raw))
    match = _ISO.match(raw) if raw[:1] in ("P", "p") else _HUMAN.match(raw)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"{text!r} is not a duration (use e.g. 30m, 1h30m, 2h or PT1H30M)")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    return _bounded(seconds)


def minutes(count: float) -> timedelta:
    """``count`` minutes; ValueError for what is not a usable number (inf, nan, huge)."""
    if not math.isfinite(count):
        raise ValueError("not a number of minutes")
    return _bounded(count * 60)


def _bounded(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds > LONGEST.total_seconds():
        raise ValueError(f"longer than anything PIM allows (at most {LONGEST.days} days)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def to_iso8601(value: timedelta) -> str:
    """Graph's duration form, e.g. ``PT1H30M``; days are folded into hours as PIM expects."""
    total = int(value.total_seconds())
    if total <= 0:
        raise ValueError("duration must be positive")
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if seconds:
        out += f"{seconds}S"
    return out


def humanize(value: timedelta) -> str:
    """Short text for people: ``1h 30m``, ``45m``, ``2d 3h``."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds and not parts:
        parts.append(f"{seconds}s")
    return " ".join(parts) or "0m"

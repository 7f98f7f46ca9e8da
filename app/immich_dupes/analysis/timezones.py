"""Time zones as Immich writes them: ``UTC``, ``UTC+2``, ``UTC+5:30``, ``+02:00`` or an IANA name.

Two zones are the same when they give the same UTC offset at the capture instant, so
``UTC+2``, ``+02:00`` and ``Europe/Berlin`` in summer compare equal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FIXED = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def offset_minutes(zone: str | None, at: datetime | None = None) -> int | None:
    """The UTC offset in minutes that ``zone`` has at the instant ``at`` (None if unknown)."""
    if zone is None:
        return None
    z = zone.strip()
    if not z:
        return None
    if z.upper() in ("UTC", "GMT", "Z", "ETC/UTC", "ETC/GMT"):
        return 0
    m = _FIXED.match(z)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        hours = int(m.group(2))
        mins = int(m.group(3) or 0)
        if hours > 18 or mins >= 60:
            return None
        return sign * (hours * 60 + mins)
    info = _zone(z)
    if info is None:
        return None
    when = at if at is not None else datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        delta = when.astimezone(info).utcoffset()
    except OverflowError:  # an instant at the edge of the calendar (year 1): no offset known
        return None
    return None if delta is None else int(delta.total_seconds() // 60)


def format_offset(minutes: int) -> str:
    """``+02:00`` style, as an ISO 8601 suffix."""
    sign = "-" if minutes < 0 else "+"
    m = abs(minutes)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def local_iso_with_offset(instant: datetime, minutes: int) -> str:
    """The wall-clock time at ``instant`` in a zone of ``minutes`` offset, with that offset.

    This is the only safe way to send ``dateTimeOriginal``: without an offset Immich reads
    the string in its own zone and shifts the time.
    """
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    local = instant.astimezone(timezone(timedelta(minutes=minutes)))
    return local.strftime("%Y-%m-%dT%H:%M:%S") + format_offset(minutes)

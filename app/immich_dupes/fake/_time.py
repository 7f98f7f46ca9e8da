"""Date, zone and id helpers shared by the fake (formats copied from real Immich answers)."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LABEL = re.compile(r"^UTC(?:([+-])(\d{1,2})(?::(\d{2}))?)?$")
_ISO_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def uuid_for(*parts: str) -> str:
    """A deterministic id shaped like Immich's (uuid4) from ``parts``."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def js_time(dt: datetime) -> str:
    """``2022-05-01T08:00:00.000Z``: how Immich's DTO mapper prints asset dates."""
    d = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    return d.isoformat(timespec="milliseconds")[:-6] + "Z"


def pg_time(dt: datetime) -> str:
    """``2022-05-01T08:00:00+00:00``: how Postgres JSON prints timestamps."""
    d = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    return d.isoformat()


def offset_label(minutes: int) -> str:
    """Immich's fixed-offset zone name: ``UTC``, ``UTC+9``, ``UTC+5:30``, ``UTC-4:30``."""
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    m = abs(minutes)
    if m % 60:
        return f"UTC{sign}{m // 60}:{m % 60:02d}"
    return f"UTC{sign}{m // 60}"


def exif_offset(minutes: int) -> str:
    """EXIF ``OffsetTimeOriginal`` text: ``+02:00``."""
    sign = "-" if minutes < 0 else "+"
    m = abs(minutes)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


def parse_exif_offset(text: str) -> int | None:
    m = _ISO_OFFSET.match(text.strip())
    if not m:
        return None
    sign = -1 if m.group(1) == "-" else 1
    return sign * (int(m.group(2)) * 60 + int(m.group(3)))


@lru_cache(maxsize=256)
def _zoneinfo(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def is_iana(name: str) -> bool:
    return "/" in name and _zoneinfo(name) is not None


def zone_offset(zone: str | None, at: datetime, fallback: int | None = None) -> int:
    """UTC offset in minutes of ``zone`` (label or IANA name) at instant ``at``; 0 when unknown."""
    if not zone:
        return 0
    m = _LABEL.match(zone)
    if m:
        if not m.group(1):
            return 0
        sign = -1 if m.group(1) == "-" else 1
        return sign * (int(m.group(2)) * 60 + int(m.group(3) or 0))
    info = _zoneinfo(zone)
    if info is None:
        if fallback is not None:
            return fallback
        from immich_dupes.fake.places import standard_offset

        return standard_offset(zone)
    delta = at.astimezone(info).utcoffset()
    return 0 if delta is None else int(delta.total_seconds() // 60)


def local_wall(instant: datetime, zone: str | None) -> datetime:
    """``localDateTime``: the wall time in ``zone``, written as if it were UTC."""
    off = zone_offset(zone, instant)
    return (instant + timedelta(minutes=off)).replace(tzinfo=UTC)


def localize(local: datetime, zone: str) -> datetime:
    """The instant of naive wall time ``local`` in IANA ``zone``."""
    info = _zoneinfo(zone)
    if info is None:
        from immich_dupes.fake.places import standard_offset

        return (local - timedelta(minutes=standard_offset(zone))).replace(tzinfo=UTC)
    return local.replace(tzinfo=info).astimezone(UTC)


def parse_client_datetime(text: str) -> tuple[datetime, int | None]:
    """Parse ``dateTimeOriginal`` as Postgres would: returns (instant, offset minutes or None).

    Without an offset the string is read as UTC (the server's zone). Raises ValueError for
    text Postgres could not parse (the server then answers 500).
    """
    s = text.strip()
    if len(s) < 10 or not s[:4].isdigit():
        raise ValueError(text)
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC), None
    delta = dt.utcoffset() or timedelta(0)
    return dt.astimezone(UTC), int(delta.total_seconds() // 60)


def parse_iso(text: str) -> datetime:
    """An ISO timestamp from a client (``Z`` or offset; naive means UTC)."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def duration_text(ms: int | None) -> str:
    """The pre-3.0 duration string ``H:MM:SS.ffffff`` (images: ``0:00:00.00000``)."""
    if ms is None:
        return "0:00:00.00000"
    total_s, rest_ms = divmod(ms, 1000)
    h, rem = divmod(total_s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}.{rest_ms * 1000:06d}"

"""How sizes and counts are written for a person: one formatter for the engine, the CLI and the app."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as file managers and Immich show them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 group``, ``2 groups``, ``0 copies`` (with ``plural`` given)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"

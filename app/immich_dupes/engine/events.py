"""Progress events: the engine reports through these; the CLI and the TUI render them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``phase`` names the step; ``done``/``total`` count its units."""

    phase: str
    message: str = ""
    done: int = 0
    total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    group_id: str | None = None
    level: str = "info"  # info | warning | error
    data: dict[str, Any] = field(default_factory=dict)


Reporter = Callable[[Event], None]


def ignore(_: Event) -> None:
    """A reporter that drops everything (library use, tests)."""

"""A stand-in for a SIGKILL of execute right after a given journal write (for resume tests)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from immich_dupes.engine.journal import Journal


class Killed(RuntimeError):
    """Stands for a SIGKILL right after a journal write."""


def kill_after(m: pytest.MonkeyPatch, kind: str, gid: str) -> None:
    """Make the run die right after the journal durably records ``kind`` for group ``gid``
    (an entry naming the group, or a batch entry listing it in ``groups``)."""
    real = Journal.append_many

    def append_many(self: Journal, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        entries = list(entries)
        real(self, entries)
        for k, data in entries:
            if k == kind and (data.get("group") == gid or gid in (data.get("groups") or ())):
                raise Killed(kind)

    m.setattr(Journal, "append_many", append_many)

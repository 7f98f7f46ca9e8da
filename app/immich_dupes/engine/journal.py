"""The execute journal: one JSON object per line, appended, flushed and fsynced per entry.

A killed run leaves at most one torn last line; reading skips it and opening for writing
cuts it off, so the next entry starts on a line of its own. Entries are plain dicts with
``kind`` and ``t`` (UTC time) plus the step's data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from immich_dupes.analysis.plan import fsync_dir


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete entry; a torn or garbled line (a kill mid-write) is skipped."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            if not raw.endswith(b"\n"):
                return  # torn last line
            try:
                entry = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(entry, dict) and isinstance(entry.get("kind"), str):
                yield entry


class Journal:
    """Append-only, durable log of what execute did, in the backup directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            self._truncate_torn_tail(fd)
            if not existed:
                fsync_dir(self.path.parent)
            self._fd = fd
        return self._fd

    @staticmethod
    def _truncate_torn_tail(fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        # Find the last newline; anything after it is a torn entry of a killed run.
        block = 4096
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            chunk = os.pread(fd, pos - start, start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                if keep != size:
                    os.ftruncate(fd, keep)
                    os.fsync(fd)
                return
            pos = start
        os.ftruncate(fd, 0)
        os.fsync(fd)

    def append(self, kind: str, **data: Any) -> None:
        """Write one entry and make it durable before returning."""
        self.append_many([(kind, data)])

    def append_many(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Several entries in one write and one fsync (a batch step journaled as a unit)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines = [
            json.dumps({"kind": kind, "t": now, **data}, separators=(",", ":"), ensure_ascii=False)
            for kind, data in entries
        ]
        if not lines:
            return
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        fd = self._open()
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)

    def entries(self) -> Iterator[dict[str, Any]]:
        return read_entries(self.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

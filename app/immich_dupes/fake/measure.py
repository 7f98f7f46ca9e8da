"""Figures read from the fake's request log: how the client's limits looked from the server."""

from __future__ import annotations

from collections.abc import Iterable

from immich_dupes.fake.core import RequestRecord


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` (request starts, in seconds) that fall in any ``window``."""
    starts = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def max_overlap(records: Iterable[RequestRecord]) -> int:
    """The most requests the server was handling at once (ends sort before starts at the same
    instant: back-to-back requests do not overlap)."""
    events: list[tuple[float, int]] = []
    for r in records:
        events += [(r.t_start, 1), (r.t_end, -1)]
    cur = best = 0
    for _, d in sorted(events):
        cur += d
        best = max(best, cur)
    return best

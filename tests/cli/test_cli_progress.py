"""The progress lines on stderr: interleaved phases keep their own clock and their pace."""

from __future__ import annotations

import io

import pytest

from immich_dupes.commands import common
from immich_dupes.commands.common import ProgressPrinter
from immich_dupes.engine.events import Event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(common.time, "monotonic", c)
    return c


def test_interleaved_phases_show_a_real_rate_and_stay_sparse(clock: Clock) -> None:
    out = io.StringIO()  # not a terminal: a line every 2 s at most
    p = ProgressPrinter(out)
    mb = 1_000_000
    p(Event("download", bytes_done=1 * mb, bytes_total=64 * mb))
    for step in range(1, 9):
        clock.now += 0.5
        p(Event("albums", done=min(step, 4), total=5))
        p(Event("download", bytes_done=(1 + step) * mb, bytes_total=64 * mb))
    lines = out.getvalue().splitlines()
    # Each phase: its first line, then one line per 2 s (of 18 events: 6 lines at most).
    assert len(lines) <= 6, lines
    download = [ln for ln in lines if ln.startswith("download:")]
    assert not any("B/s)" in ln for ln in download[:1])  # no rate at the very start
    assert "(0 B/s)" not in download[-1]
    assert "/s)" in download[-1]


def test_the_last_step_of_a_phase_is_always_shown(clock: Clock) -> None:
    out = io.StringIO()
    p = ProgressPrinter(out)
    p(Event("albums", done=0, total=3))
    clock.now += 0.1
    p(Event("albums", done=1, total=3))
    clock.now += 0.1
    p(Event("albums", done=3, total=3))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("albums:")
    assert "0/3" in lines[0]
    assert "3/3" in lines[-1]
    assert not any("1/3" in ln for ln in lines)

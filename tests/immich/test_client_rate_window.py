"""The rate limiter on a virtual clock: bursts up to the rate, never more in any window."""

from __future__ import annotations

import asyncio

import pytest

from immich_dupes.immich.client import RateLimiter


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def max_in_window(starts: list[float], window: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def starts_of(rate: float, n: int, gaps: list[float] | None = None) -> list[float]:
    clock = VirtualClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    out: list[float] = []
    for i in range(n):
        if gaps:
            clock.now += gaps[i % len(gaps)]
        await limiter.wait()
        out.append(clock.now)
    return out


async def test_the_first_requests_go_at_once_up_to_the_rate() -> None:
    starts = await starts_of(10, 25)
    assert starts[:10] == [0.0] * 10
    assert starts[10] > 1.0  # the 11th waits for the window to pass


@pytest.mark.parametrize("rate", [1, 2.5, 3, 10, 10.5, 37])
async def test_never_more_than_the_rate_in_any_second(rate: float) -> None:
    starts = await starts_of(rate, 200)
    assert max_in_window(starts, 1.0) <= rate
    # …and the limit is used, not just respected: over the run, at least 90 % of it.
    span = starts[-1] - starts[0]
    assert (len(starts) - 1) / span >= 0.9 * int(rate) / (1.03 * max(1.0, int(rate) / rate))


async def test_a_rate_under_one_spaces_every_request() -> None:
    starts = await starts_of(0.5, 4)
    assert [round(b - a, 2) for a, b in zip(starts, starts[1:], strict=False)] == [2.06, 2.06, 2.06]


async def test_late_requests_do_not_bunch_up() -> None:
    # Irregular arrivals: whatever the pattern, no one-second window holds more than the rate.
    starts = await starts_of(5, 300, gaps=[0.0, 0.0, 0.7, 0.01, 0.3, 0.0, 1.2, 0.05])
    assert max_in_window(starts, 1.0) <= 5


async def test_concurrent_waiters_share_one_window() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def one() -> None:
        await limiter.wait()
        starts.append(clock.now)

    await asyncio.gather(*(one() for _ in range(20)))
    assert max_in_window(sorted(starts), 1.0) <= 4

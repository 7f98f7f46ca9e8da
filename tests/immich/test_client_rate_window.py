"""The rate limiter on a virtual clock: bursts up to the rate, never more in any window."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.measure import max_in_window
from immich_dupes.immich.client import ImmichClient, RateLimiter, _Start


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def starts_of(rate: float, n: int, gaps: list[float] | None = None) -> list[float]:
    clock = VirtualClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    out: list[float] = []
    for i in range(n):
        if gaps:
            clock.now += gaps[i % len(gaps)]
        limiter.started(await limiter.wait())
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
        limiter.started(await limiter.wait())
        starts.append(clock.now)

    await asyncio.gather(*(one() for _ in range(20)))
    assert max_in_window(sorted(starts), 1.0) <= 4


async def test_the_window_counts_from_when_a_request_really_left() -> None:
    # The first request needs 0.3 s to open its connection before its headers leave: the
    # (k+1)-th may only go a whole window after that, not after the moment it was allowed.
    clock = VirtualClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    first = await limiter.wait()
    limiter.started(await limiter.wait())

    async def connect_then_send() -> None:
        await asyncio.sleep(0)  # the third waiter is queued on the window by now
        clock.now += 0.3
        limiter.started(first)

    sending = asyncio.create_task(connect_then_send())
    third = await limiter.wait()
    assert third.t >= 0.3 + 1.0
    await sending


async def test_over_a_real_socket_a_start_counts_from_when_its_headers_left() -> None:
    """The trace hook marks the start as soon as the request's headers are sent, while the
    server still holds the request (150 ms of injected latency), not when the answer is back.
    The server runs in this process, so its log's clock is the client's clock."""
    fake = FakeImmich(library="empty", faults="latency=150ms")
    marks: list[float] = []
    with FakeServer(fake, port=0) as srv:
        async with ImmichClient(srv.url, fake.api_key) as c:
            real = c.rate.started

            def spy(start: _Start) -> None:
                if not start.known.is_set():
                    marks.append(time.monotonic())
                real(start)

            c.rate.started = spy  # type: ignore[method-assign]
            before = len(fake.request_log)
            await c.request("GET", "/server/version")
        # The server logs a request after it has sent the answer: wait for the entry.
        for _ in range(500):
            if len(fake.request_log) > before:
                break
            await asyncio.sleep(0.01)
    record = fake.request_log[before]
    assert len(marks) == 1
    # Marked about when the server took the request, well before its 150 ms were over.
    assert marks[0] < record.t_start + 0.1 < record.t_end



async def test_a_request_that_fails_before_it_leaves_does_not_hold_the_window() -> None:
    """A start that is never marked would keep every later request waiting forever."""
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"res": "pong"}))
    async with ImmichClient("http://immich.test", "k" * 32, rate_limit=1, transport=transport) as c:
        with pytest.raises(TypeError):
            await c.request("GET", "/server/ping", headers=[("a", "b")])
        # The next one waits for the window (about a second), not forever.
        assert await asyncio.wait_for(c.request("GET", "/server/ping"), timeout=30) == {"res": "pong"}


def test_an_absurd_rate_is_no_limit_rather_than_a_crash() -> None:
    RateLimiter(1e20)  # was OverflowError from the window's deque

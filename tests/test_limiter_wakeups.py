"""The limiter skips its wake-up arithmetic when nothing can let a waiter go sooner; these are the
changes that can, each of which must still wake the waiters at once (virtual loop clock)."""

from __future__ import annotations

import asyncio
import bisect
import random

import pytest

from mmsjson import ThroughputLimiter
from tests.virtual_clock import run


def test_an_answer_under_the_in_flight_cap_lets_the_next_waiter_start_at_once() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = ThroughputLimiter(1000, latency_cap=1.0)
        started: list[float] = []

        async def request() -> None:
            ticket = await limiter.acquire()
            started.append(loop.time())
            await asyncio.sleep(0.5)
            limiter.finished(ticket)

        await asyncio.gather(*(request() for _ in range(limiter.max_in_flight + 1)))
        first_answer = started[0] + 0.5
        assert started[-1] - first_answer < 0.02

    run(scenario())


def test_an_answer_released_before_the_pending_wake_up_brings_the_wake_up_forward() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = ThroughputLimiter(2, latency_cap=3.0)
        slow = await limiter.acquire()
        fast = await limiter.acquire()
        fast_at = loop.time()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.2)
        limiter.finished(fast)
        ticket = await waiter
        assert ticket.at - (fast_at + limiter.window + 0.2) < 0.001
        limiter.finished(slow)
        limiter.finished(ticket)
        await limiter.aclose()

    run(scenario())


def test_a_recovering_rate_lets_a_waiter_start_without_waiting_for_the_window() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = ThroughputLimiter(10, recovery_interval=0.5)
        for _ in range(3):
            limiter.throttled()
        assert limiter.current_rate == 7
        held = [await limiter.acquire() for _ in range(7)]
        head = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.7)
        assert not head.done()
        recovered_at = loop.time()
        tail = asyncio.ensure_future(limiter.acquire())
        ticket = await head
        assert ticket.at - recovered_at < 0.001
        tail.cancel()
        await asyncio.gather(tail, return_exceptions=True)
        for each in [*held, ticket]:
            limiter.finished(each)
        await limiter.aclose()

    run(scenario())


def test_a_floor_learned_from_an_answer_lets_a_waiter_start_that_much_sooner() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = ThroughputLimiter(2, warmup_samples=1)
        first = await limiter.acquire()
        await asyncio.sleep(0.1)
        limiter.finished(first)
        sample = await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05 - (loop.time() - sample.at))
        limiter.finished(sample)
        assert limiter.floor == sample.latency
        ticket = await waiter
        assert ticket.at - (first.at + limiter.window + 0.1 - limiter.floor) < 0.001
        limiter.finished(ticket)
        await limiter.aclose()

    run(scenario())


def test_a_wait_that_begins_behind_cancelled_waits_still_starts_when_a_slot_frees() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(2, latency_cap=3.0)
        held = [await limiter.acquire(), await limiter.acquire()]
        cancelled = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
        await asyncio.sleep(0.1)
        for wait in cancelled:
            wait.cancel()
        await asyncio.gather(*cancelled, return_exceptions=True)
        late = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.1)
        limiter.finished(held[0])
        ticket = await late
        assert held[0].latency is not None
        assert ticket.at - (held[0].at + limiter.window + held[0].latency) < 0.001
        limiter.finished(held[1])
        limiter.finished(ticket)
        await limiter.aclose()

    run(scenario())


@pytest.mark.parametrize("tick", [0.0, 0.01, 0.1])
@pytest.mark.parametrize("rate", [1, 7, 1000])
def test_starts_stay_within_the_rate_while_waits_are_cancelled_at_random(rate: int, tick: float) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        limiter = ThroughputLimiter(rate, tick=tick)
        chance = random.Random(rate * 1000 + int(tick * 1000))
        starts: list[float] = []
        end = 4.0

        async def worker() -> None:
            while loop.time() < end:
                try:
                    ticket = await asyncio.wait_for(limiter.acquire(), chance.uniform(0.001, 1.5))
                except TimeoutError:
                    continue
                starts.append(loop.time())
                await asyncio.sleep(chance.uniform(0.0, 0.05))
                limiter.finished(ticket)

        await asyncio.gather(*(worker() for _ in range(min(3 * rate, 200))))
        await limiter.aclose()
        starts.sort()
        assert len(starts) >= rate
        assert max(bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts)) <= rate

    run(scenario())


def test_waiters_left_after_close_are_woken_by_the_next_answer() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(2, latency_cap=3.0)
        held = [await limiter.acquire(), await limiter.acquire()]
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.1)
        limiter.finished(held[0])
        await limiter.aclose()
        limiter.finished(held[1])
        ticket = await asyncio.wait_for(waiter, 10.0)
        assert held[0].latency is not None
        assert ticket.at - (held[0].at + limiter.window + held[0].latency) < 0.001
        limiter.finished(ticket)

    run(scenario())

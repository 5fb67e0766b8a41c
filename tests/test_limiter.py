"""The limiter on a virtual loop clock: no real sleeps, and the times are exact."""

from __future__ import annotations

import asyncio
import bisect

import pytest

from mmsjson import ThroughputLimiter
from tests.virtual_clock import run


async def start_times(
    limiter: ThroughputLimiter, count: int, workers: int = 50, latency: float = 0.001
) -> list[float]:
    """Start ``count`` requests that each take ``latency`` seconds, as the client does."""
    loop = asyncio.get_running_loop()
    times: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            ticket = await limiter.acquire()
            times.append(loop.time())
            await asyncio.sleep(latency)
            limiter.finished(ticket)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return sorted(times)


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_never_more_than_rate_starts_in_any_sliding_second(rate: int) -> None:
    async def scenario() -> None:
        times = await start_times(ThroughputLimiter(rate), count=rate * 5)
        assert most_in_any_window(times) <= rate

    run(scenario())


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_sustains_at_least_99_percent_of_the_rate(rate: int) -> None:
    async def scenario() -> None:
        times = await start_times(ThroughputLimiter(rate), count=rate * 5)
        achieved = (len(times) - 1) / (times[-1] - times[0])
        assert achieved >= 0.99 * rate

    run(scenario())


def test_a_burst_starts_at_once_and_no_more() -> None:
    async def scenario() -> None:
        times = await start_times(ThroughputLimiter(100, burst=5), count=20)
        assert sum(t - times[0] < 1e-3 for t in times) == 5

    run(scenario())


def test_starts_are_paced_evenly_not_bunched_at_window_edges() -> None:
    async def scenario() -> None:
        times = await start_times(ThroughputLimiter(100, burst=1), count=300)
        assert most_in_any_window(times, window=0.1) <= 11

    run(scenario())


def test_a_slow_request_holds_back_the_start_that_mirrors_it_a_window_later() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(2, burst=1, margin=0.0)
        loop = asyncio.get_running_loop()
        slow = await limiter.acquire()
        await asyncio.sleep(0.05)
        limiter.finished(slow)
        fast = await limiter.acquire()
        await asyncio.sleep(0.001)
        limiter.finished(fast)
        await limiter.acquire()
        assert loop.time() >= slow.at + 1.0 + 0.049

    run(scenario())


def test_a_request_still_in_flight_is_held_no_longer_than_the_latency_cap() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(1, burst=1, margin=0.0, latency_cap=0.2)
        loop = asyncio.get_running_loop()
        first = await limiter.acquire()
        await limiter.acquire()
        assert first.at + 1.0 <= loop.time() <= first.at + 1.25

    run(scenario())


def repeated_e113(limiter: ThroughputLimiter, count: int = 3) -> None:
    for _ in range(count):
        limiter.throttled()


def test_an_isolated_e113_leaves_the_rate_alone() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100)
        await start_times(limiter, count=50)
        limiter.throttled()
        assert (limiter.current_rate, limiter.stats.throttled, limiter.stats.backoffs) == (100, 1, 0)

    run(scenario())


def test_e113s_beyond_a_tenth_of_the_starts_lower_the_rate() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100)
        await start_times(limiter, count=100)
        repeated_e113(limiter, 5)
        assert limiter.current_rate == 100
        repeated_e113(limiter, 10)
        assert limiter.current_rate < 100

    run(scenario())


def test_repeated_e113_lower_the_rate_multiplicatively() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100, backoff_factor=0.7)
        repeated_e113(limiter)
        assert limiter.current_rate == pytest.approx(70)

    run(scenario())


def test_e113s_of_requests_in_flight_together_count_as_one_backoff() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100, backoff_factor=0.5)
        repeated_e113(limiter, 10)
        assert (limiter.current_rate, limiter.stats.throttled, limiter.stats.backoffs) == (50, 10, 1)

    run(scenario())


def test_the_rate_climbs_back_once_e113_stops() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100)
        repeated_e113(limiter)
        await start_times(limiter, count=800)
        assert limiter.current_rate == 100

    run(scenario())


def test_e113_while_recovering_backs_off_again() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100, backoff_factor=0.5)
        repeated_e113(limiter)
        await start_times(limiter, count=100)
        repeated_e113(limiter, 20)
        assert limiter.current_rate < 50

    run(scenario())


def test_after_backoff_the_window_still_holds_at_the_lower_rate() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(100)
        repeated_e113(limiter)
        times = await start_times(limiter, count=40)
        assert most_in_any_window(times) <= limiter.current_rate

    run(scenario())


def test_waits_are_counted() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(10, burst=2)
        await start_times(limiter, count=12)
        assert (limiter.stats.acquired, limiter.stats.waited) == (12, 10)
        assert limiter.stats.wait_seconds > 0

    run(scenario())


def test_the_repr_shows_rate_window_and_state() -> None:
    assert repr(ThroughputLimiter(20)) == (
        "<ThroughputLimiter exact rate=20/s current=20/s window=1.005s limit=20 in_window=0 throttled=0>"
    )


@pytest.mark.parametrize(
    "options",
    [
        {"rate": 0.5}, {"rate": 10, "burst": 0}, {"rate": 10, "margin": 1.5}, {"rate": 10, "mode": "fast"},
        {"rate": 10, "latency_cap": 0}, {"rate": 10, "backoff_factor": 1.0},
    ],
)
def test_nonsense_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        ThroughputLimiter(**options)  # type: ignore[arg-type]


def test_a_wait_behind_a_request_in_flight_sleeps_until_it_finishes_instead_of_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = 0
    expire = ThroughputLimiter._expire

    def counted(self: ThroughputLimiter, now: float) -> None:
        nonlocal checks
        checks += 1
        expire(self, now)

    monkeypatch.setattr(ThroughputLimiter, "_expire", counted)

    async def scenario() -> None:
        await start_times(ThroughputLimiter(10), count=200, workers=50, latency=3.0)

    run(scenario())
    assert checks < 200 * 10


def test_starts_due_together_are_let_go_in_one_wake_up() -> None:
    async def scenario() -> tuple[int, int]:
        times = await start_times(ThroughputLimiter(1000), count=3000, workers=100)
        return len(times), len({round(t, 5) for t in times})

    starts, wake_ups = run(scenario())
    assert wake_ups <= starts / 5


def test_batched_starts_never_exceed_the_rate_in_any_sliding_second_with_the_longest_tick() -> None:
    async def scenario() -> list[float]:
        return await start_times(ThroughputLimiter(1000, tick=0.1), count=4000, workers=300, latency=0.03)

    assert most_in_any_window(run(scenario())) <= 1000


def test_a_zero_tick_wakes_up_for_each_start() -> None:
    async def scenario() -> tuple[int, int]:
        times = await start_times(ThroughputLimiter(1000, tick=0), count=2000, workers=100)
        return len(times), len({round(t, 5) for t in times})

    starts, wake_ups = run(scenario())
    assert wake_ups >= starts - 2 * 20


def test_a_ticket_given_back_after_the_window_counted_it_arrived_is_not_counted_out_twice() -> None:
    """A waiter granted a ticket and cancelled only after the loop stalled past ``latency_cap``:
    the window already counted that ticket as arrived, so giving it back must not free a second
    slot (which would let one start too many). Drives the give-back directly: the stall itself
    cannot be staged on a virtual clock."""

    async def scenario() -> tuple[int, int]:
        limiter = ThroughputLimiter(10, latency_cap=0.5)
        ticket = await limiter.acquire()
        await asyncio.sleep(1.0)
        limiter._expire(asyncio.get_running_loop().time())
        limiter._give_back(ticket)
        return limiter._flying, limiter.in_window

    flying, in_window = run(scenario())
    assert flying == 0
    assert in_window >= 0

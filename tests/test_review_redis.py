"""The shared limit on a real redis-server when Redis misbehaves: clocks, closing, configuration."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio

from mmsjson.limiting.redis import RedisLimiter, SharedLimitUnavailable
from tests.redis_fixtures import slots_taken
from tests.redis_server import RedisServer

HOUR_US = 3600 * 1_000_000

# Moves the state's clock readings and the log's entries an hour later (not ``born``, which workers
# hold as the state's identity): the state a primary wrote, as the replica that takes over reads it
# when its clock runs an hour behind the primary's.
_HOUR_AHEAD = """
for _, field in ipairs({'tat', 'changed', 'seen'}) do
  local value = redis.call('HGET', KEYS[1], field)
  if value then redis.call('HSET', KEYS[1], field, tonumber(value) + tonumber(ARGV[1])) end
end
local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  redis.call('ZADD', KEYS[2], tonumber(entries[i + 1]) + tonumber(ARGV[1]), entries[i])
end
"""


@pytest.fixture
async def redis_client(shared_redis: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client of the test's server, to change what the limiter stored."""
    client = redis.asyncio.Redis.from_url(shared_redis.url)
    yield client
    await client.aclose()


async def test_a_redis_clock_stepping_back_does_not_stop_the_shared_limit(
    limiters: Callable[..., RedisLimiter], redis_client: redis.asyncio.Redis
) -> None:
    limiter = limiters(100)
    for _ in range(5):
        limiter.finished(await limiter.acquire())
    await redis_client.eval(_HOUR_AHEAD, 2, *limiter._keys, HOUR_US)

    ticket = await asyncio.wait_for(limiter.acquire(), 5)

    limiter.finished(ticket)


async def test_a_late_start_reported_after_the_clock_stepped_back_moves_its_entry_a_bounded_way(
    limiters: Callable[..., RedisLimiter], redis_client: redis.asyncio.Redis
) -> None:
    limiter = limiters(1, report_threshold=1e-6)
    before = await limiter.acquire()
    await redis_client.eval(_HOUR_AHEAD, 2, *limiter._keys, HOUR_US)
    before.slot += HOUR_US  # the ticket carries the old clock's time
    limiter.finished(before)

    ticket = await asyncio.wait_for(limiter.acquire(), 5)

    limiter.finished(ticket)


async def test_closing_the_limiter_fails_each_waiting_request_with_a_typed_error(
    shared_redis: RedisServer, key: str
) -> None:
    limiter = RedisLimiter(100, url=shared_redis.url, key=key)
    in_flight = asyncio.Event()

    async def hanging(*, keys: Any, args: Any) -> Any:
        in_flight.set()
        await asyncio.Event().wait()

    limiter._script = hanging  # type: ignore[assignment]
    waiting = [asyncio.ensure_future(limiter.acquire()) for _ in range(3)]
    await in_flight.wait()

    await limiter.aclose()

    for outcome in await asyncio.gather(*waiting, return_exceptions=True):
        assert isinstance(outcome, SharedLimitUnavailable)
        assert "closed" in str(outcome) and "the request was not sent" in str(outcome)
    assert not any(task.cancelled() for task in waiting)


async def test_a_closed_limiter_refuses_a_start_with_a_typed_error(shared_redis: RedisServer, key: str) -> None:
    limiter = RedisLimiter(100, url=shared_redis.url, key=key)
    limiter.finished(await limiter.acquire())
    await limiter.aclose()

    with pytest.raises(SharedLimitUnavailable, match="closed"):
        await limiter.acquire()


async def test_workers_configured_with_different_rates_share_the_lowest(
    limiters: Callable[..., RedisLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    slow, fast = limiters(100), limiters(1000)
    slow.finished(await slow.acquire())

    slots = await slots_taken(fast, 12)

    assert fast.current_rate == 100
    assert "in force at 100/s, below this worker's 1000/s" in caplog.text
    assert min(b - a for a, b in itertools.pairwise(slots)) >= slow.window / 100 * 1e6 - 1


async def test_workers_configured_with_different_margins_share_the_widest_window(
    limiters: Callable[..., RedisLimiter],
) -> None:
    wide, narrow = limiters(10, margin=0.2), limiters(10)
    wide.finished(await wide.acquire())

    slots = await slots_taken(narrow, 3)

    assert min(b - a for a, b in itertools.pairwise(slots)) >= wide.window / 10 * 1e6 - 1


async def test_a_raised_rate_is_in_force_once_no_worker_asked_for_the_lower_one_for_the_ttl(
    limiters: Callable[..., RedisLimiter], redis_client: redis.asyncio.Redis
) -> None:
    slow, fast = limiters(100), limiters(1000)
    slow.finished(await slow.acquire())
    await slow.aclose()
    await redis_client.hset(fast._keys[0], "rate_at", 0)  # the slow worker's last call lies a ttl back

    fast.finished(await fast.acquire())

    assert fast.current_rate == 1000


async def test_a_slot_granted_as_its_wait_is_cancelled_goes_to_the_next_start(
    limiters: Callable[..., RedisLimiter],
) -> None:
    limiter = limiters(100, prefetch=1)
    waiting = asyncio.ensure_future(limiter.acquire())
    real_dispatch = limiter._dispatch

    def dispatch_then_cancel() -> None:
        real_dispatch()
        waiting.cancel()  # the waiter holds its slot; the task has not resumed yet

    limiter._dispatch = dispatch_then_cancel  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter._dispatch = real_dispatch  # type: ignore[method-assign]

    limiter.finished(await limiter.acquire())

    assert limiter.redis_stats.granted == 1
    assert limiter.stats.acquired == 1


async def test_a_user_without_the_script_command_is_refused_at_once_with_the_reason(
    shared_redis: RedisServer, limiters: Callable[..., RedisLimiter]
) -> None:
    shared_redis.command("ACL", "SETUSER", "no-scripts", "on", ">pw-no-scripts", "~*", "+@all", "-evalsha", "-eval")
    limiter = limiters(100, url=f"redis://no-scripts:pw-no-scripts@127.0.0.1:{shared_redis.port}/0")

    with pytest.raises(SharedLimitUnavailable) as caught:
        await asyncio.wait_for(limiter.acquire(), 5)

    message = str(caught.value)
    assert "NoPermissionError" in message and "evalsha" in message
    assert "for 0.0 s" not in message
    assert "pw-no-scripts" not in message and "no-scripts:" not in message


def test_a_unix_socket_url_is_named_whole_and_without_its_password() -> None:
    limiter = RedisLimiter(100, url="unix://:sock-secret@/run/redis/redis.sock?db=2&password=sock-secret", key="k")
    assert "redis=unix:///run/redis/redis.sock " in repr(limiter)
    assert "sock-secret" not in repr(limiter)


async def test_a_frozen_redis_fails_waiting_starts_closed_and_sending_resumes_once_it_answers(
    shared_redis: RedisServer, limiters: Callable[..., RedisLimiter]
) -> None:
    limiter = limiters(100, unavailable_timeout=0.3)
    limiter.finished(await limiter.acquire())
    assert shared_redis._process is not None
    shared_redis._process.send_signal(signal.SIGSTOP)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(limiter.acquire() for _ in range(20)), return_exceptions=True), 10
        )
    finally:
        shared_redis._process.send_signal(signal.SIGCONT)

    assert all(isinstance(outcome, SharedLimitUnavailable) for outcome in outcomes)
    limiter.finished(await asyncio.wait_for(limiter.acquire(), 10))
    assert limiter.stats.acquired == 2


async def test_a_flushed_script_cache_is_reloaded_without_failing_a_start(
    shared_redis: RedisServer, limiters: Callable[..., RedisLimiter]
) -> None:
    limiter = limiters(100)
    limiter.finished(await limiter.acquire())
    shared_redis.command("SCRIPT", "FLUSH")

    limiter.finished(await limiter.acquire())

    assert limiter.redis_stats.failures == 0


async def test_a_worker_alone_on_its_key_has_its_own_fractional_rate_in_force(
    limiters: Callable[..., RedisLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    limiter = limiters(100.0004)

    limiter.finished(await limiter.acquire())

    assert limiter.current_rate == 100.0004
    assert "lower rate" not in caplog.text


async def born_of(client: redis.asyncio.Redis, limiter: RedisLimiter) -> int:
    """The creation time of the limiter's state in Redis (µs of the server's clock)."""
    stored = await client.hget(limiter._keys[0], "born")
    assert stored is not None
    return int(stored)


async def test_a_state_created_before_the_clock_stepped_back_cools_down_for_the_horizon_only(
    limiters: Callable[..., RedisLimiter], redis_client: redis.asyncio.Redis
) -> None:
    limiter = limiters(100)
    limiter.finished(await limiter.acquire())
    # A state recreated (cooled 0) under the old clock: this worker saw the one before it.
    await redis_client.hset(limiter._keys[0], "born", await born_of(redis_client, limiter) + HOUR_US)

    ticket = await asyncio.wait_for(limiter.acquire(), 5)

    limiter.finished(ticket)
    assert limiter.redis_stats.cooldowns == 1


async def test_lost_state_found_as_the_clock_steps_back_still_cools_down_for_the_horizon(
    limiters: Callable[..., RedisLimiter], redis_client: redis.asyncio.Redis
) -> None:
    limiter = limiters(100, horizon=0.2)
    limiter.finished(await limiter.acquire())
    born = await born_of(redis_client, limiter)
    await redis_client.eval(_HOUR_AHEAD, 2, *limiter._keys, HOUR_US)
    await redis_client.hset(limiter._keys[0], "born", born + HOUR_US)  # a state this worker never saw
    seconds, micros = await redis_client.time()
    before = int(seconds) * 1_000_000 + int(micros)

    ticket = await asyncio.wait_for(limiter.acquire(), 5)

    limiter.finished(ticket)
    assert limiter.redis_stats.cooldowns == 1
    assert ticket.slot >= before + 0.2e6

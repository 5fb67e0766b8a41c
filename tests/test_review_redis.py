"""The shared limit on a real redis-server when Redis misbehaves: clocks, closing, configuration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio

from mmsjson.limiting.redis import RedisLimiter
from tests.redis_server import INSTALL_HINT, RedisServer

HOUR_US = 3600 * 1_000_000

# Moves every time the state holds an hour later, as the state written by a primary whose clock ran
# an hour ahead of the replica that takes over looks to the replica.
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


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    try:
        started = RedisServer().start()
    except RuntimeError as exc:
        if INSTALL_HINT in str(exc):
            pytest.fail(INSTALL_HINT, pytrace=False)
        raise
    yield started
    started.close()


@pytest.fixture
def key() -> str:
    return f"account-{uuid.uuid4().hex[:8]}"


async def test_a_redis_clock_stepping_back_does_not_stop_the_shared_limit(server: RedisServer, key: str) -> None:
    limiter = RedisLimiter(100, url=server.url, key=key)
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        for _ in range(5):
            limiter.finished(await limiter.acquire())
        await client.eval(_HOUR_AHEAD, 2, *limiter._keys, HOUR_US)

        ticket = await asyncio.wait_for(limiter.acquire(), 5)

        limiter.finished(ticket)
    finally:
        await client.aclose()
        await limiter.aclose()


async def test_a_late_start_reported_after_the_clock_stepped_back_moves_its_entry_a_bounded_way(
    server: RedisServer, key: str
) -> None:
    limiter = RedisLimiter(1, url=server.url, key=key, report_threshold=1e-6)
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        before = await limiter.acquire()
        await client.eval(_HOUR_AHEAD, 2, *limiter._keys, HOUR_US)
        before.slot += HOUR_US  # the ticket carries the old clock's time
        limiter.finished(before)

        ticket = await asyncio.wait_for(limiter.acquire(), 5)

        limiter.finished(ticket)
    finally:
        await client.aclose()
        await limiter.aclose()

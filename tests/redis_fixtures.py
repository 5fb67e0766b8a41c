"""Fixtures for the tests of the shared limit: a real redis-server, a key per test, and limiters
on them that are closed after the test (registered in ``conftest.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from mmsjson.limiting.redis import RedisLimiter
from tests.redis_server import INSTALL_HINT, RedisServer


def start_redis() -> RedisServer:
    """A redis-server of its own on 127.0.0.1; the test fails saying how to install it if missing."""
    try:
        return RedisServer().start()
    except RuntimeError as exc:
        if INSTALL_HINT in str(exc):
            pytest.fail(INSTALL_HINT, pytrace=False)
        raise


async def slots_taken(limiter: RedisLimiter, count: int) -> list[int]:
    """The slots of ``count`` starts taken one after another (µs of the Redis server's clock)."""
    slots = []
    for _ in range(count):
        ticket = await limiter.acquire()
        limiter.finished(ticket)
        slots.append(ticket.slot)
    return slots


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One server for a test module; each test keeps to its own key."""
    server = start_redis()
    yield server
    server.close()


@pytest.fixture
def key() -> str:
    return f"account-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def limiters(shared_redis: RedisServer, key: str) -> AsyncIterator[Callable[..., RedisLimiter]]:
    """Makes limiters on the module's server and the test's key (unless told otherwise), and
    closes them after the test."""
    made: list[RedisLimiter] = []

    def make(rate: float = 1000, **options: Any) -> RedisLimiter:
        options.setdefault("url", shared_redis.url)
        options.setdefault("key", key)
        made.append(RedisLimiter(rate, **options))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()

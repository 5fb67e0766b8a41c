"""The shared limit on a real redis-server: one account's throughput across processes.

The multi-process tests run real worker processes (tests/redis_child.py) against the strict fake
server in this process, and assert the bound the service enforces: never more than R arrivals in any
sliding second, and no E113. The precise full-rate ratios are the benchmark's job
(benchmarks/shared_limit.py); here only a loose floor guards against a limiter that sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from mmsjson.errors import TransportError
from mmsjson.limiting import Limiter
from mmsjson.limiting.redis import RedisLimiter, SharedLimitUnavailable
from mmsjson.testing import FakeMMSServer
from tests.redis_fixtures import slots_taken, start_redis
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
RATE = 100
SECONDS = 2.5


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of the test's own, for tests that kill or flush it."""
    server = start_redis()
    yield server
    server.close()


async def redis_time(server: RedisServer) -> int:
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        seconds, micros = await client.time()
        return int(seconds) * 1_000_000 + int(micros)
    finally:
        await client.aclose()


def watch_calls(limiter: RedisLimiter, *, failures: bool = False) -> asyncio.Event:
    """An event set once a script call grants a slot (or, with ``failures``, once one fails)."""
    real, seen = limiter._script, asyncio.Event()

    async def watched(*, keys: Any, args: Any) -> Any:
        try:
            reply = await real(keys=keys, args=args)
        except Exception:
            if failures:
                seen.set()
            raise
        if not failures and len(reply) > 7:
            seen.set()
        return reply

    limiter._script = watched  # type: ignore[assignment]
    return seen


# -- one process, real Redis -------------------------------------------------------------------------


async def test_is_a_limiter(limiters: Callable[..., RedisLimiter]) -> None:
    assert isinstance(limiters(), Limiter)


async def test_two_limiters_on_one_key_share_one_paced_stream_of_slots(
    limiters: Callable[..., RedisLimiter],
) -> None:
    first, second = limiters(1000), limiters(1000)

    both = await asyncio.gather(
        *(slots_taken(limiter, 60) for limiter in (first, second) for _ in range(4))
    )
    slots = sorted(slot for slots in both for slot in slots)
    assert len(set(slots)) == len(slots) == 480
    spacing = first.window / first.rate * 1e6
    assert min(b - a for a, b in itertools.pairwise(slots)) >= spacing - 1


async def test_a_slow_answer_holds_back_the_slot_a_window_later(limiters: Callable[..., RedisLimiter]) -> None:
    limiter = limiters(5)
    slow = await limiter.acquire()

    async def answer_slowly() -> None:
        await asyncio.sleep(0.3)
        limiter.finished(slow)

    answering = asyncio.ensure_future(answer_slowly())
    tickets = [slow]
    for _ in range(5):
        ticket = await limiter.acquire()
        limiter.finished(ticket)
        tickets.append(ticket)
    await answering

    # Without the report the sixth slot would lie a window after the first, 0.8 s after the second.
    assert tickets[5].slot - tickets[1].slot >= limiter.window * 1e6


async def test_repeated_e113_in_one_process_slow_every_process_by_the_local_rule(
    limiters: Callable[..., RedisLimiter]
) -> None:
    reporter, other = limiters(1000), limiters(1000)
    reporter.finished(await reporter.acquire())
    for _ in range(3):
        reporter.throttled()
    await reporter.aclose()

    other.finished(await other.acquire())

    assert reporter.stats.throttled == 3
    assert reporter.stats.backoffs == 1
    assert other.current_rate == pytest.approx(700)


async def test_an_isolated_e113_slows_nobody(limiters: Callable[..., RedisLimiter]) -> None:
    reporter, other = limiters(1000), limiters(1000)
    reporter.finished(await reporter.acquire())
    reporter.throttled()
    await reporter.aclose()

    other.finished(await other.acquire())

    assert reporter.stats.backoffs == 0
    assert other.current_rate == 1000


async def test_redis_losing_its_state_stops_new_slots_for_the_horizon(
    own_redis: RedisServer, key: str
) -> None:
    limiter = RedisLimiter(1000, url=own_redis.url, key=key, horizon=0.2)
    try:
        limiter.finished(await limiter.acquire())
        lost = await redis_time(own_redis)
        own_redis.command("FLUSHALL")

        ticket = await limiter.acquire()

        assert limiter.redis_stats.cooldowns == 1
        assert ticket.slot >= lost + 0.2e6
    finally:
        await limiter.aclose()


async def test_a_new_key_is_used_at_once_without_a_cooldown(limiters: Callable[..., RedisLimiter]) -> None:
    limiter = limiters(1000)
    limiter.finished(await limiter.acquire())
    assert limiter.redis_stats.cooldowns == 0
    assert limiter.stats.waited == 0


async def test_a_cancelled_wait_takes_no_slot(limiters: Callable[..., RedisLimiter]) -> None:
    limiter = limiters(4, prefetch=1)
    limiter.finished(await limiter.acquire())
    granted = watch_calls(limiter)
    waiting = asyncio.ensure_future(limiter.acquire())
    await granted.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    limiter.finished(await limiter.acquire())

    assert limiter.redis_stats.granted == 2
    assert limiter.stats.acquired == 2


async def test_aclose_ends_even_when_the_redis_client_swallows_the_cancel(
    limiters: Callable[..., RedisLimiter],
) -> None:
    """redis-py on Python 3.11 can finish a command instead of raising the cancel it got."""
    limiter = limiters(1000)
    real, in_flight = limiter._script, asyncio.Event()

    async def swallowing(*, keys: Any, args: Any) -> Any:
        in_flight.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return await real(keys=keys, args=args)

    limiter._script = swallowing  # type: ignore[assignment]
    waiting = asyncio.ensure_future(limiter.acquire())
    await in_flight.wait()

    await asyncio.wait_for(limiter.aclose(), 5)

    with pytest.raises(SharedLimitUnavailable, match="closed"):
        await waiting


async def test_unreachable_redis_fails_closed_with_a_clear_error() -> None:
    port = free_port()
    limiter = RedisLimiter(100, url=f"redis://:hunter2@127.0.0.1:{port}/0", key="acct", unavailable_timeout=0.2)
    try:
        with pytest.raises(SharedLimitUnavailable) as caught:
            await limiter.acquire()
        with pytest.raises(SharedLimitUnavailable):
            await limiter.acquire()
    finally:
        await limiter.aclose()
    error = caught.value
    assert isinstance(error, TransportError)
    assert not error.outcome_unknown and not error.retryable
    message = str(error)
    assert f"redis://127.0.0.1:{port}/0" in message and "'acct'" in message
    assert "the request was not sent" in message
    assert "hunter2" not in message and "hunter2" not in repr(limiter)
    assert limiter.stats.acquired == 0


async def test_a_short_outage_is_waited_out(own_redis: RedisServer, key: str) -> None:
    limiter = RedisLimiter(1000, url=own_redis.url, key=key)
    try:
        limiter.finished(await limiter.acquire())
        own_redis.stop()
        failed = watch_calls(limiter, failures=True)
        waiting = asyncio.ensure_future(limiter.acquire())
        await failed.wait()
        await asyncio.to_thread(own_redis.start)

        limiter.finished(await waiting)

        assert limiter.stats.acquired == 2
        assert limiter.redis_stats.cooldowns == 1
    finally:
        await limiter.aclose()


@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({}, "exactly one of url="),
        ({"url": "redis://127.0.0.1/0", "client": object()}, "exactly one of url="),
        ({"url": "redis://127.0.0.1/0", "rate": 0.5}, "rate must be at least 1"),
        ({"url": "redis://127.0.0.1/0", "key": ""}, "key must name the account"),
        ({"url": "redis://127.0.0.1/0", "margin": 1.0}, "margin must be in [0, 1)"),
        ({"url": "redis://127.0.0.1/0", "prefetch": 0}, "prefetch must be at least 1"),
        ({"url": "redis://127.0.0.1/0", "horizon": 0}, "horizon must be in (0, 1)"),
        ({"url": "redis://127.0.0.1/0", "latency_cap": 0.8}, "add up to less than a second"),
    ],
)
def test_bad_options_are_refused_with_the_rule(options: dict[str, Any], rule: str) -> None:
    options = {"rate": 100, "key": "acct", **options}
    with pytest.raises(ValueError, match=rule.replace("(", r"\(").replace("[", r"\[").replace(")", r"\)")):
        RedisLimiter(options.pop("rate"), **options)


async def test_from_url_builds_a_limiter_that_owns_its_connection(shared_redis: RedisServer, key: str) -> None:
    limiter = RedisLimiter.from_url(shared_redis.url, rate=50, key=key)
    try:
        limiter.finished(await limiter.acquire())
        assert limiter.rate == 50 and limiter.key == key
    finally:
        await limiter.aclose()


# -- several real processes ----------------------------------------------------------------------------


async def run_workers(
    redis_server: RedisServer,
    workers: int,
    *,
    idle: int = 0,
    seconds: float = SECONDS,
    during: Callable[[list[asyncio.subprocess.Process]], Awaitable[None]] | None = None,
) -> tuple[FakeMMSServer, list[dict[str, Any]]]:
    """Run ``workers`` worker processes (the last ``idle`` of them sending nothing) on one account."""
    key = f"account-{uuid.uuid4().hex[:8]}"
    async with FakeMMSServer(throughput=RATE, record=False) as fake:
        env = {**os.environ, "MMSJSON_API_KEY": fake.api_key}
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.redis_child", redis_server.url, fake.base_url, str(RATE),
                key, str(seconds), "16", *(["idle"] if i >= workers - idle else []),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
            )
            for i in range(workers)
        ]
        try:
            for child in children:
                assert child.stdout is not None
                assert (await child.stdout.readline()).strip() == b"ready"
            for child in children:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                await child.stdin.drain()
            if during is not None:
                await during(children)
            results = []
            for child in children:
                assert child.stdout is not None
                line = await child.stdout.read()
                await child.wait()
                if child.returncode == 0:
                    results.append(json.loads(line.decode().strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
        return fake, results


def assert_within_the_limit(fake: FakeMMSServer) -> None:
    assert fake.max_in_window() <= RATE
    assert fake.e113_count == 0


@pytest.mark.parametrize("workers", [1, 4, 8])
async def test_workers_together_never_exceed_the_limit(shared_redis: RedisServer, workers: int) -> None:
    fake, results = await run_workers(shared_redis, workers)
    assert_within_the_limit(fake)
    assert sum(result["accepted"] for result in results) > 0.5 * RATE * SECONDS
    assert all(result["accepted"] > 0 for result in results)


async def test_an_idle_worker_leaves_its_share_to_the_others(shared_redis: RedisServer) -> None:
    fake, results = await run_workers(shared_redis, 4, idle=1)
    assert_within_the_limit(fake)
    assert results[-1]["granted"] == 0
    assert sum(result["accepted"] for result in results[:3]) > 0.75 * RATE * SECONDS


async def test_a_killed_worker_causes_no_burst(shared_redis: RedisServer) -> None:
    async def kill_one(children: list[asyncio.subprocess.Process]) -> None:
        await asyncio.sleep(SECONDS / 2)
        children[0].send_signal(signal.SIGKILL)

    fake, results = await run_workers(shared_redis, 3, during=kill_one)
    assert_within_the_limit(fake)
    assert len(results) == 2
    assert fake.accepted_count > 0.5 * RATE * SECONDS


async def test_a_redis_restart_with_empty_state_causes_no_burst(own_redis: RedisServer) -> None:
    async def restart(children: list[asyncio.subprocess.Process]) -> None:
        await asyncio.sleep(SECONDS / 2)
        await asyncio.to_thread(own_redis.restart)

    fake, results = await run_workers(own_redis, 2, during=restart)
    assert_within_the_limit(fake)
    assert sum(result["cooldowns"] for result in results) >= 1
    assert fake.accepted_count > 0.5 * RATE * SECONDS

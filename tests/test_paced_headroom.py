"""Paced mode's headroom against the scatter of arrivals never shuts the limiter for good."""

from __future__ import annotations

import asyncio

from mmsjson import ThroughputLimiter
from tests.virtual_clock import run


async def answered(limiter: ThroughputLimiter, latencies: list[float]) -> None:
    """One request after another, each answered after its latency."""
    for latency in latencies:
        ticket = await limiter.acquire()
        await asyncio.sleep(latency)
        limiter.finished(ticket)


def test_paced_mode_still_lets_requests_start_after_backing_off_below_its_headroom() -> None:
    async def scenario() -> None:
        limiter = ThroughputLimiter(20, mode="paced", warmup_samples=8, min_fraction=0.05)
        await asyncio.wait_for(answered(limiter, [0.05, 1.05] * 8), timeout=600)
        assert limiter.headroom > 1
        for _ in range(10):
            for _ in range(3):
                limiter.throttled()
            await asyncio.sleep(1.1)
        assert limiter.current_rate == 1.0
        await asyncio.wait_for(answered(limiter, [0.05, 1.05] * 8), timeout=600)

    run(scenario())

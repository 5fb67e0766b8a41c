"""One worker process of an account that shares its limit on Redis, for the multi-process tests.

    python -m tests.redis_child REDIS_URL BASE_URL RATE KEY SECONDS CONCURRENCY [idle]

The API key comes in ``MMSJSON_API_KEY`` (never on the command line). The worker prints ``ready``
once it is connected, waits for ``go`` on stdin, sends for SECONDS as fast as the limiter lets it
(``idle``: sends nothing), then prints one JSON line of counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any

import aiohttp

from mmsjson import MMS, Slide
from mmsjson.flavours import json as wire
from mmsjson.limiting.redis import RedisLimiter, SharedLimitUnavailable


async def main(redis_url: str, base: str, rate: float, key: str, seconds: float, concurrency: int,
               idle: bool) -> dict[str, Any]:
    body = wire.encode(wire.send_request(
        MMS(slides=[Slide(text="hello")], fallback_sms_text="hello"),
        to="17745559144", service_id="1", sender="12345",
    ))
    headers = {"x-api-key": os.environ["MMSJSON_API_KEY"], "Content-Type": "application/json"}
    counts = {"accepted": 0, "e113": 0, "unavailable": 0}
    limiter = RedisLimiter(rate, url=redis_url, key=key)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await limiter._redis.ping()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def worker() -> None:
            while True:
                try:
                    ticket = await limiter.acquire()
                except SharedLimitUnavailable:
                    counts["unavailable"] += 1
                    await asyncio.sleep(0.05)
                    continue
                try:
                    async with session.post(base, data=body, headers=headers) as response:
                        answer = await response.json()
                finally:
                    limiter.finished(ticket)
                if answer.get("error-code") == "E113":
                    counts["e113"] += 1
                    limiter.throttled()
                elif answer.get("status") == "success":
                    counts["accepted"] += 1

        if idle:
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await limiter.aclose()
    return {
        **counts,
        "calls": limiter.redis_stats.calls,
        "granted": limiter.redis_stats.granted,
        "cooldowns": limiter.redis_stats.cooldowns,
        "backoffs": limiter.stats.backoffs,
    }


if __name__ == "__main__":
    redis_url, base, rate, key, seconds, concurrency, *rest = sys.argv[1:]
    result = asyncio.run(main(
        redis_url, base, float(rate), key, float(seconds), int(concurrency), idle=rest == ["idle"],
    ))
    print(json.dumps(result), flush=True)

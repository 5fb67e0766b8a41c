"""Several worker processes, one account: the shared limit against what users would do by hand.

    python benchmarks/shared_limit.py [--quick] [--out benchmarks/results]

Every run starts N worker processes that send through one account as fast as their limiter lets
them, against the strict fake server (``benchmarks/fake_server.py``, its own process, a sliding one-second
window of R with E113 above it) and a real ``redis-server`` on a free loopback port. Three limiters:

* ``redis``: :class:`mmsjson.limiting.redis.RedisLimiter`, every worker told the account's R;
* ``aiolimiter R/N``: the hand split, ``AsyncLimiter(R / N, 1)`` in each worker;
* ``limits polling``: the ``limits`` library's moving window on the same Redis, each worker
  polling ``hit()`` every 10 ms while it is refused.

"1 idle" rows start N workers of which one sends nothing. Reported per run: the aggregate
accepted rate / R (success answers in a one-second window, averaged over 201 windows spread from
the end of the first second to the end of the run, so bursty and paced senders compare), the most
arrivals the server saw in any sliding second / R, E113s, Redis round trips (client commands:
EVALSHA) and commands Redis ran (those inside scripts included) per request, and the CPU the run
took (workers + fake server + Redis) against the machine's. Also measured: the latency a
shared-limit start adds when nothing holds it back (one script round trip), against the local
limiter. Needs ``pip install -e '.[dev,bench]'`` (redis, limits) and ``redis-server`` on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

SELF = Path(__file__).resolve()
HERE = SELF.parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from mmsjson import MMS, Slide, ThroughputLimiter  # noqa: E402
from mmsjson.flavours import json as wire  # noqa: E402
from mmsjson.limiting.redis import RedisLimiter  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402

KEY = "benchmark-key"
CONCURRENCY = 32
POLL = 0.01
WARM_UP = 1.0
MODES = ("redis", "aiolimiter", "limits")


# -- one worker (a process of its own) -------------------------------------------------------------


async def worker(mode: str, redis_url: str, base: str, rate: float, workers: int, key: str,
                 seconds: float, idle: bool) -> dict[str, Any]:
    body = wire.encode(wire.send_request(
        MMS(slides=[Slide(text="hello")], fallback_sms_text="hello"),
        to="17745559144", service_id="1", sender="12345",
    ))
    headers = {"x-api-key": KEY, "Content-Type": "application/json"}
    done: list[float] = []
    e113 = 0
    deadline = math.inf
    redis_limiter = aio_limiter = moving = None
    if mode == "redis":
        redis_limiter = RedisLimiter(rate, url=redis_url, key=key)
        await redis_limiter._redis.ping()
    elif mode == "aiolimiter":
        from aiolimiter import AsyncLimiter

        aio_limiter = AsyncLimiter(rate / workers, 1)
    else:
        from limits import RateLimitItemPerSecond
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        storage = RedisStorage(f"async+{redis_url}", implementation="redispy")
        moving = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerSecond(int(rate))
        await storage.check()

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal e113
        ticket = None
        if redis_limiter is not None:
            ticket = await redis_limiter.acquire()
        elif aio_limiter is not None:
            await aio_limiter.acquire()
        else:
            assert moving is not None
            while not await moving.hit(item, key):
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(POLL)
        try:
            async with session.post(base, data=body, headers=headers) as response:
                answer = await response.json()
        finally:
            if redis_limiter is not None and ticket is not None:
                redis_limiter.finished(ticket)
        if answer.get("error-code") == "E113":
            e113 += 1
            if redis_limiter is not None:
                redis_limiter.throttled()
        elif answer.get("status") == "success":
            done.append(time.monotonic())

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu = time.process_time()
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            # Also stop on the deadline: on Python 3.11 redis-py can swallow the timeout's cancel.
            while time.monotonic() < deadline:
                await one(session)

        if idle:
            await asyncio.sleep(seconds)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
        cpu = time.process_time() - cpu
    result: dict[str, Any] = {"done": done, "e113": e113, "cpu": cpu}
    if redis_limiter is not None:
        result["calls"] = redis_limiter.redis_stats.calls
        result["granted"] = redis_limiter.redis_stats.granted
        result["round_trip"] = redis_limiter.redis_stats.round_trip_seconds
        result["reports"] = redis_limiter.redis_stats.reports
        result["backoffs"] = redis_limiter.stats.backoffs
        await redis_limiter.aclose()
    return result


# -- the runs ---------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_counters(server: RedisServer) -> dict[str, float]:
    stats, cpu = server.info("stats"), server.info("cpu")
    commands = server.info("commandstats")
    evalsha = sum(
        int(value.split("calls=")[1].split(",")[0])
        for name, value in commands.items() if name in ("cmdstat_evalsha", "cmdstat_eval")
    )
    return {
        "commands": float(stats["total_commands_processed"]),
        "round_trips": float(evalsha),
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
    }


async def control(session: aiohttp.ClientSession, base: str, path: str, **body: Any) -> Any:
    url = base.replace("/ep/v2/", path)
    if path.endswith("reset"):
        async with session.post(url, json=body) as response:
            return await response.json()
    async with session.get(url, params={"times": "1"}) as response:
        return await response.json()


async def one_run(mode: str, rate: int, workers: int, idle: int, seconds: float, base: str,
                  server: RedisServer, fake_pid: int) -> dict[str, Any]:
    key = f"bench-{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as session:
        await control(session, base, "/_fake/reset", throughput=rate)
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(SELF), "worker", mode, server.url, base,
                str(rate), str(workers), key, str(seconds), "idle" if i >= workers - idle else "busy",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            )
            for i in range(workers)
        ]
        for child in children:
            assert child.stdout is not None
            line = await child.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a {mode} worker did not start: {line!r}")
        before, fake_cpu, load = redis_counters(server), proc_cpu(fake_pid), os.getloadavg()[0]
        go = time.monotonic()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        results = []
        for child in children:
            assert child.stdout is not None
            results.append(json.loads((await child.stdout.read()).decode().strip().splitlines()[-1]))
            await child.wait()
        wall = time.monotonic() - go
        after, fake_cpu = redis_counters(server), proc_cpu(fake_pid) - fake_cpu
        stats = await control(session, base, "/_fake/stats")
    start, end = go + WARM_UP, go + seconds
    done = sorted(t for result in results for t in result["done"])
    starts = [start + (end - 1 - start) * i / 200 for i in range(201)]
    aggregate = statistics.fmean(
        bisect.bisect_left(done, t + 1) - bisect.bisect_left(done, t) for t in starts
    )
    requests = stats["received"] or 1
    cpu = sum(result["cpu"] for result in results) + fake_cpu + after["cpu"] - before["cpu"]
    calls = sum(result.get("calls", 0) for result in results)
    round_trip = sum(result.get("round_trip", 0.0) for result in results)
    return {
        "mode": mode, "rate": rate, "workers": workers, "idle": idle, "seconds": seconds,
        "aggregate_over_rate": aggregate / rate,
        "max_in_sliding_second_over_rate": stats["max_in_window"] / rate,
        "e113": stats["e113"],
        "requests": stats["received"],
        "round_trips_per_request": (after["round_trips"] - before["round_trips"]) / requests,
        "redis_commands_per_request": (after["commands"] - before["commands"]) / requests,
        "mean_round_trip_ms": round_trip / calls * 1e3 if calls else None,
        "late_reports_per_request": sum(result.get("reports", 0) for result in results) / requests,
        "cpu_seconds": cpu,
        "cpu_share": cpu / (wall * (os.cpu_count() or 1)),
        "load_before": load,
    }


async def added_latency(server: RedisServer, count: int) -> dict[str, Any]:
    """What one start costs when the limiter does not hold it back: a Redis limiter against the local one."""

    async def timed(limiter: Any) -> list[float]:
        spans = []
        for _ in range(count):
            began = time.perf_counter()
            ticket = await limiter.acquire()
            spans.append(time.perf_counter() - began)
            limiter.finished(ticket)
        return spans

    shared = RedisLimiter(1_000_000, url=server.url, key=f"latency-{uuid.uuid4().hex[:8]}")
    try:
        await timed(shared)
        remote = await timed(shared)
        calls = shared.redis_stats.calls
    finally:
        await shared.aclose()
    local = await timed(ThroughputLimiter(1_000_000))

    def summary(spans: list[float]) -> dict[str, float]:
        spans = sorted(spans)
        return {
            "mean_us": statistics.fmean(spans) * 1e6,
            "p50_us": spans[len(spans) // 2] * 1e6,
            "p99_us": spans[int(len(spans) * 0.99)] * 1e6,
        }

    return {"count": count, "redis": summary(remote), "local": summary(local), "calls": calls}


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Shared limit: several workers, one account ({results['when']}, Python {results['python']}, "
        f"{results['cpus']} CPUs, Redis {results['redis_version']})",
        "",
        "| limiter | R | workers | aggregate / R | max in any sliding second / R | E113 "
        "| Redis round trips / request | Redis commands / request | CPU used (of the machine) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"redis": "RedisLimiter (shared R)", "aiolimiter": "aiolimiter, R/N each",
             "limits": "limits moving window, polling"}
    for run in results["runs"]:
        workers = f"{run['workers']}" + (" (1 idle)" if run["idle"] else "")
        lines.append(
            f"| {names[run['mode']]} | {run['rate']} | {workers} | {run['aggregate_over_rate']:.3f} "
            f"| {run['max_in_sliding_second_over_rate']:.3f} | {run['e113']} "
            f"| {run['round_trips_per_request']:.2f} | {run['redis_commands_per_request']:.1f} "
            f"| {run['cpu_share']:.0%} |"
        )
    latency = results["latency"]
    lines += [
        "",
        f"Added latency per start when nothing holds it back ({latency['count']} sequential starts):",
        "",
        "| limiter | mean µs | p50 µs | p99 µs |",
        "|---|---|---|---|",
    ]
    for name, label in (("redis", "RedisLimiter (one script round trip)"), ("local", "ThroughputLimiter")):
        row = latency[name]
        lines.append(f"| {label} | {row['mean_us']:.0f} | {row['p50_us']:.0f} | {row['p99_us']:.0f} |")
    lines += ["", f"Load average before the runs: {results['load_before']:.2f}; after: "
              f"{results['load_after']:.2f}.", ""]
    return "\n".join(lines)


async def run_all(args: argparse.Namespace, base: str, server: RedisServer, fake_pid: int) -> dict[str, Any]:
    seconds = 3.0 if args.quick else 5.0
    plan: list[tuple[str, int, int, int]] = []
    for rate in args.rates:
        plan += [("redis", rate, n, 0) for n in (1, 4, 8)]
        plan += [("redis", rate, 4, 1), ("aiolimiter", rate, 4, 0), ("aiolimiter", rate, 4, 1),
                 ("limits", rate, 4, 0), ("limits", rate, 4, 1)]
    plan = [run for run in plan if run[0] in args.modes]
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"), "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "runs": [],
        "redis_version": server.info("server")["redis_version"],
    }
    for mode, rate, workers, idle in plan:
        print(f"{mode} R={rate} N={workers} idle={idle} ...", flush=True)
        run = await one_run(mode, rate, workers, idle, seconds, base, server, fake_pid)
        print(f"  {json.dumps(run)}", flush=True)
        results["runs"].append(run)
    results["latency"] = await added_latency(server, 2000)
    results["load_after"] = os.getloadavg()[0]
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        mode, redis_url, base, rate, workers, key, seconds, role = sys.argv[2:10]
        result = asyncio.run(worker(
            mode, redis_url, base, float(rate), int(workers), key, float(seconds), role == "idle",
        ))
        print(json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3-second runs instead of 5")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 1000], help="R values to run")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="limiters to run")
    args = parser.parse_args()
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, str(HERE / "fake_server.py"), str(port), KEY],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert sandbox.stdout is not None
        if "listening" not in sandbox.stdout.readline():
            raise RuntimeError("the fake server did not start")
        with RedisServer() as server:
            results = asyncio.run(run_all(args, f"http://127.0.0.1:{port}/ep/v2/", server, sandbox.pid))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shared_limit.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.out / "shared_limit.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()

"""The mmsjson benchmarks, all measured in one run so that the ratios compare like with like.

    python benchmarks/run.py [--quick | --limiter-only] [--out benchmarks/results]

1. Limiter fidelity, R = 10, 100, 1,000 (and 2,000 and 3,000 for 5 s each, one process): the fake
   server runs in a separate process with a strict sliding-window limit of R; the client sends at
   R. Reported: the sustained rate / R (from the server's arrival times after the first second,
   whose full window would flatter it), the largest count in any sliding second the server saw,
   E113s and the client's CPU per request. Then the CPU per request with the limiter on at
   R = 1,000 against the same client with it off (see :func:`limiter_cost`).
2. Client overhead with no limit: requests per second of ``MMSClient.send`` divided by a plain
   aiohttp loop posting the same pre-built bytes with the same concurrency, against the fake
   server and against a no-op server (where the client's own cost shows most).
3. Build + validate + serialise of a typical 3-slide message, against ``json.dumps`` of the same
   request as a hand-built dict.
4. Bulk memory: peak RSS of ``send_bulk`` over 10,000 and 1,000,000 jobs (each in a fresh process,
   against the no-op server), as a ratio.
5. Postbacks: notifications per second the receiver (in its own process) answers 200 to, each
   raw body durably stored in SQLite before the answer; each is posted twice, and the count of
   stored rows is checked afterwards.

Writes ``results.json``, ``results.md`` and ``throughput.png`` (sends per second over time against
the limit) to ``--out``. Needs the ``bench`` extra (matplotlib) for the plot.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from mmsjson import MMS, Audio, Image, MMSClient, Slide, ThroughputLimiter

HERE = Path(__file__).resolve().parent
KEY = "benchmark-key"
CONCURRENCY = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], ready: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``args`` until the block ends; wait for ``ready`` on its stdout first."""
    child = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, cwd=HERE.parent
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if ready not in line:
            raise RuntimeError(f"{args} did not start: {line!r}")
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)


def typical_mms() -> MMS:
    return MMS(
        slides=[
            Slide(text="Hello", image=Image("https://example.com/a.jpg")),
            Slide(text="Listen", audio=Audio("https://example.com/a.mp3")),
            Slide(text="Bye"),
        ],
        subject="Hi",
        fallback_sms_text="See the picture",
    )


# -- 1. limiter fidelity ------------------------------------------------------------------------


async def control(session: aiohttp.ClientSession, base: str, path: str, **body: Any) -> Any:
    url = base.replace("/ep/v2/", path)
    if body or path.endswith("reset"):
        async with session.post(url, json=body) as response:
            return await response.json()
    async with session.get(url, params={"times": "1"}) as response:
        return await response.json()


async def limiter_fidelity(base: str, rate: int, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    async with aiohttp.ClientSession() as session:
        await control(session, base, "/_fake/reset", throughput=rate)
        run = await drive(base, rate, count, limiter_in_flight(rate))
        stats = await control(session, base, "/_fake/stats")
    arrivals = sorted(stats["arrivals"])
    steady = [t for t in arrivals if t >= arrivals[0] + 1.0]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    return {
        "rate": rate,
        "requests": count,
        "achieved_over_rate": achieved / rate,
        "max_in_sliding_second": stats["max_in_window"],
        "e113": stats["e113"],
        "backoffs": run["backoffs"],
        "cpu_us_per_request": run["cpu_us_per_request"],
        "arrivals": [t - arrivals[0] for t in arrivals],
    }


def limiter_in_flight(rate: int) -> int:
    """The in-flight ceiling the limiter runs use (the limiter itself keeps fewer in flight)."""
    return min(256, max(16, rate // 2))


async def drive(
    base: str, throughput: int | None, count: int, in_flight: int, ticked: int | None = None,
    gap: float = 0.01,
) -> dict[str, Any]:
    """``count`` sends of the typical message, all gathered at once behind a semaphore of
    ``in_flight`` (as a caller with a backlog does), through one client whose limiter is on at
    ``throughput`` (or off for ``None``). With ``ticked``, the sends are instead started by a
    bare timer loop, ``ticked * gap`` every ``gap`` seconds, with the limiter off: at the default
    gap, the same rate and batches as the limiter's, without its window. Reports the client
    process's CPU per request."""
    mms = typical_mms()
    async with MMSClient(
        KEY, service_id="1", sender="12345", base_url=base, throughput=throughput, max_in_flight=in_flight,
    ) as client:
        semaphore = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with semaphore:
                await client.send(mms, f"1774{i:07d}")

        cpu, wall = time.process_time(), time.perf_counter()
        if ticked is None:
            await asyncio.gather(*(one(i) for i in range(count)))
        else:
            loop = asyncio.get_running_loop()
            tasks, batch, start = [], max(1, round(ticked * gap)), loop.time()
            for tick, first in enumerate(range(0, count, batch)):
                await asyncio.sleep(max(0.0, start + tick * gap - loop.time()))
                tasks += [asyncio.create_task(one(i)) for i in range(first, min(count, first + batch))]
            await asyncio.gather(*tasks)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        backoffs = client.limiter.stats.backoffs if client.limiter else 0
    return {"cpu_us_per_request": cpu / count * 1e6, "per_second": count / wall, "backoffs": backoffs}


async def limiter_cost(base: str, rate: int, seconds: float, rounds: int) -> dict[str, Any]:
    """CPU per request of one client with its limiter on at ``rate`` against the same client,
    driven the same way, with its limiter off (so sending as fast as the server answers).

    Rounds alternate on and off; the fake server's limit is lifted for the off runs. Both send
    ``rate * seconds`` requests with the same in-flight ceiling; the ratio is of the medians. Each
    round also starts the sends at ``rate`` by a bare timer loop with the limiter off, at the
    limiter's batch and at ten times it: what sending at R costs with no limiter at all.
    """
    count = int(rate * seconds)
    on, off, off_rate, ticked, ticked_long = [], [], [], [], []
    in_flight = limiter_in_flight(rate)
    async with aiohttp.ClientSession() as session:
        # Untimed: the first run would also pay for checking each number against its numbering
        # plan (later runs find them cached), and only the limiter's rounds start first.
        await control(session, base, "/_fake/reset")
        await drive(base, None, count, in_flight)
        for _ in range(rounds):
            await control(session, base, "/_fake/reset", throughput=rate)
            on.append((await drive(base, rate, count, in_flight))["cpu_us_per_request"])
            await control(session, base, "/_fake/reset")
            run = await drive(base, None, count, in_flight)
            off.append(run["cpu_us_per_request"])
            off_rate.append(run["per_second"])
            await control(session, base, "/_fake/reset", throughput=rate)
            ticked.append((await drive(base, None, count, in_flight, ticked=rate))["cpu_us_per_request"])
            await control(session, base, "/_fake/reset", throughput=rate)
            ticked_long.append(
                (await drive(base, None, count, in_flight, ticked=rate, gap=0.1))["cpu_us_per_request"]
            )
    return {
        "rate": rate, "requests": count, "rounds": rounds, "in_flight": in_flight,
        "on_us": statistics.median(on), "off_us": statistics.median(off),
        "ratio": statistics.median(on) / statistics.median(off),
        "ratio_each_round": [a / b for a, b in zip(on, off, strict=True)],
        "ticked_us": statistics.median(ticked),
        "ratio_to_ticked": statistics.median(on) / statistics.median(ticked),
        "ratio_to_ticked_each_round": [a / b for a, b in zip(on, ticked, strict=True)],
        "ticked_over_off": statistics.median(ticked) / statistics.median(off),
        "ticked_long_us": statistics.median(ticked_long),
        "ticked_long_over_off": statistics.median(ticked_long) / statistics.median(off),
        "on_each_round": on, "off_each_round": off, "off_per_second": statistics.median(off_rate),
        "load": os.getloadavg()[0],
    }


def limiter_own_cost(rate: int, count: int, rounds: int) -> dict[str, Any]:
    """CPU per request the limiter itself adds, on a virtual clock (no server, no sockets, no sleeps:
    robust to the machine's load). The same backlog as :func:`drive` (``count`` requests gathered
    behind a semaphore, each taking 2 ms) goes through the limiter at ``rate``; through the least a
    backlog limiter can do (a future per waiter, ``rate / 100`` granted every 10 ms); and, as the
    floor, is started by the bare timer loop with no limiter and no backlog. Minima over rounds."""
    from tests.virtual_clock import VirtualClockLoop

    in_flight = limiter_in_flight(rate)

    async def answer() -> None:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.002, future.set_result, None)
        await future

    class Least:
        def __init__(self) -> None:
            self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
            self.tokens, self.timer = rate // 100, False

        def tick(self) -> None:
            self.tokens, self.timer = rate // 100, False
            while self.waiters and self.tokens:
                self.tokens -= 1
                self.waiters.popleft().set_result(None)
            self.arm()

        def arm(self) -> None:
            if not self.timer:
                self.timer = True
                asyncio.get_running_loop().call_later(0.01, self.tick)

        async def acquire(self) -> None:
            self.arm()
            if not self.waiters and self.tokens:
                self.tokens -= 1
                return
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    async def backlog(limiter: ThroughputLimiter | Least) -> None:
        semaphore = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with semaphore:
                ticket = await limiter.acquire()
                try:
                    await answer()
                finally:
                    if isinstance(limiter, ThroughputLimiter) and ticket is not None:
                        limiter.finished(ticket)

        await asyncio.gather(*(one() for _ in range(count)))

    async def bare() -> None:
        semaphore = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with semaphore:
                await answer()

        loop, tasks, batch = asyncio.get_running_loop(), [], rate // 100
        start = loop.time()
        for tick, _ in enumerate(range(0, count, batch)):
            await asyncio.sleep(max(0.0, start + tick * 0.01 - loop.time()))
            tasks += [asyncio.create_task(one()) for _ in range(batch)]
        await asyncio.gather(*tasks)

    def cpu(make: Any) -> float:
        loop = VirtualClockLoop()
        try:
            begun = time.process_time()
            loop.run_until_complete(make())
            return (time.process_time() - begun) / count * 1e6
        finally:
            loop.close()

    on: list[float] = []
    least: list[float] = []
    floor: list[float] = []
    for _ in range(rounds):
        on.append(cpu(lambda: backlog(ThroughputLimiter(rate))))
        least.append(cpu(lambda: backlog(Least())))
        floor.append(cpu(bare))
    return {
        "rate": rate, "requests": count, "rounds": rounds,
        "on_us": min(on), "least_us": min(least), "bare_us": min(floor),
        "on_over_least": min(on) / min(least), "on_over_bare": min(on) / min(floor),
        "least_over_bare": min(least) / min(floor),
    }


# -- 2. client overhead -------------------------------------------------------------------------


async def plain_loop(base: str, body: bytes, count: int) -> tuple[float, float]:
    headers = {"x-api-key": KEY, "Content-Type": "application/json; charset=utf-8"}
    remaining = count

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(base, data=body, headers=headers) as response:
                    await response.json()

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start), (time.process_time() - cpu) / count


async def client_loop(base: str, count: int) -> tuple[float, float]:
    mms = typical_mms()
    remaining = count
    async with MMSClient(
        KEY, service_id="1", sender="12345", base_url=base, throughput=None, max_in_flight=CONCURRENCY
    ) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.send(mms, "17745559144")

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start), (time.process_time() - cpu) / count


async def overhead(base: str, count: int, rounds: int) -> dict[str, Any]:
    from mmsjson.flavours import json as wire

    body = wire.encode(wire.send_request(typical_mms(), to="17745559144", service_id="1", sender="12345"))
    plain_rps, client_rps, plain_cpu, client_cpu = [], [], [], []
    async with aiohttp.ClientSession() as session:
        with contextlib.suppress(aiohttp.ClientError):
            await control(session, base, "/_fake/reset")
    await plain_loop(base, body, count // 5)
    for index in range(rounds):
        if index % 2:  # alternate which goes first, so neither always meets the warmer process
            rps, cpu = await client_loop(base, count)
            client_rps.append(rps)
            client_cpu.append(cpu)
        rps, cpu = await plain_loop(base, body, count)
        plain_rps.append(rps)
        plain_cpu.append(cpu)
        if not index % 2:
            rps, cpu = await client_loop(base, count)
            client_rps.append(rps)
            client_cpu.append(cpu)
    return {
        "requests": count,
        "rounds": rounds,
        "concurrency": CONCURRENCY,
        "ratio_each_round": [c / p for c, p in zip(client_rps, plain_rps, strict=True)],
        "plain_rps": statistics.median(plain_rps),
        "client_rps": statistics.median(client_rps),
        "ratio": statistics.median(client_rps) / statistics.median(plain_rps),
        "cpu_ratio": statistics.median(plain_cpu) / statistics.median(client_cpu),
        "plain_cpu_us_per_request": statistics.median(plain_cpu) * 1e6,
        "client_cpu_us_per_request": statistics.median(client_cpu) * 1e6,
    }


# -- 3. build + validate + serialise -------------------------------------------------------------


def build_and_serialise() -> dict[str, Any]:
    client = MMSClient(KEY, service_id="1", sender="12345", base_url="http://127.0.0.1:9/ep/v2/")

    def ours() -> bytes:
        return client._send_request(typical_mms(), "17745559144").body

    def by_hand() -> bytes:
        return json.dumps({
            "action": "sendmms", "service-id": "1", "to": "17745559144", "from": "12345",
            "message-subject": "Hi", "fallback-sms-text": "See the picture",
            "slide": [
                {"message-text": "Hello", "image": {"url": "https://example.com/a.jpg"}},
                {"message-text": "Listen", "audio": {"url": "https://example.com/a.mp3"}},
                {"message-text": "Bye"},
            ],
        }).encode()

    shared = typical_mms()

    def per_recipient() -> bytes:
        return client._send_request(shared, "17745559144").body

    assert json.loads(ours()) == json.loads(by_hand()) == json.loads(per_recipient())
    number = 20_000
    ours_s = min(timeit.repeat(ours, number=number, repeat=7)) / number
    hand_s = min(timeit.repeat(by_hand, number=number, repeat=7)) / number
    each_s = min(timeit.repeat(per_recipient, number=number, repeat=7)) / number
    return {
        "ours_us": ours_s * 1e6, "json_dumps_us": hand_s * 1e6, "ratio": ours_s / hand_s,
        "per_recipient_us": each_s * 1e6, "per_recipient_ratio": each_s / hand_s,
    }


# -- 4. bulk memory -------------------------------------------------------------------------------


def bulk_memory(base: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "bulk_memory.py"), base, str(count)],
        capture_output=True, text=True, check=True, cwd=HERE.parent,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- 5. postbacks ---------------------------------------------------------------------------------


def _fresh(path: Path) -> Path:
    """``path`` with any database an earlier run left there removed."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    return path


async def postbacks(count: int, tmp: Path) -> dict[str, Any]:
    import sqlite3

    port, db = free_port(), _fresh(tmp / "postbacks-bench.db")
    url = f"http://127.0.0.1:{port}/postbacks"
    bodies = [
        json.dumps({"origin": "MMS_MT", "code": "N102", "tracking-id": f"T{i}", "to": "17745559144"}).encode()
        for i in range(count)
    ] * 2
    statuses: list[int] = []
    with process([sys.executable, str(HERE / "postback_server.py"), str(port), str(db)], "listening"):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
            remaining = list(reversed(bodies))

            async def worker() -> None:
                while remaining:
                    body = remaining.pop()
                    async with session.post(url, data=body) as response:
                        statuses.append(response.status)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - start
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (stored,) = connection.execute("SELECT COUNT(*) FROM postbacks").fetchone()
    return {
        "posted": len(bodies), "unique": count, "stored": stored,
        "all_200": statuses.count(200) == len(bodies), "per_second": len(bodies) / elapsed,
    }


# -- report ---------------------------------------------------------------------------------------


def plot(limiter: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(len(limiter), 1, figsize=(8, 2.6 * len(limiter)))
    for axis, run in zip(axes, limiter, strict=True):
        times = run["arrivals"]
        step = 0.1
        edges = [i * step for i in range(int(times[-1] / step) + 1)]
        counts, index = [], 0
        for edge in edges:
            while index < len(times) and times[index] < edge - 1.0:
                index += 1
            end = index
            while end < len(times) and times[end] < edge:
                end += 1
            counts.append(end - index)
        axis.plot(edges, counts, label="requests in the last second (server)")
        axis.axhline(run["rate"], color="red", linestyle="--", label=f"limit R={run['rate']}")
        axis.set_ylabel("requests / s")
        axis.set_ylim(0, run["rate"] * 1.15)
        axis.legend(loc="lower right", fontsize="small")
    axes[-1].set_xlabel("seconds since the first request")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# mmsjson benchmarks ({results['when']}, Python {results['python']}, {results['cpus']} CPUs)",
        "",
        "## Limiter fidelity (fake server in a separate process, strict sliding-window limit R)",
        "",
        "| R | requests | sustained / R | max in any sliding second | E113 | client CPU µs/request |",
        "|---|---|---|---|---|---|",
    ]
    for run in results["limiter"]:
        lines.append(
            f"| {run['rate']} | {run['requests']} | {run['achieved_over_rate']:.4f} | "
            f"{run['max_in_sliding_second']} | {run['e113']} | {run['cpu_us_per_request']:.0f} |"
        )
    cost = results["limiter_cost"]
    lines += [
        "", f"## CPU per request, limiter on at R = {cost['rate']:,} against off (load {cost['load']:.1f})",
        "",
        f"One client, {cost['requests']:,} sends gathered at once behind a semaphore of {cost['in_flight']} "
        "(its in-flight ceiling too), against the fake server; on: `throughput=R` (the server's limit "
        "R), off: `throughput=None` (no server limit, so it sends as fast as answers come, "
        f"{cost['off_per_second']:,.0f}/s). {cost['rounds']} interleaved rounds, medians; client "
        "process CPU time only.", "",
        "| limiter on µs/request | limiter off µs/request | on / off | on / off range over rounds |",
        "|---|---|---|---|",
        f"| {cost['on_us']:.0f} | {cost['off_us']:.0f} | {cost['ratio']:.2f} | "
        f"{min(cost['ratio_each_round']):.2f}-{max(cost['ratio_each_round']):.2f} |",
        "",
        "The same client with its limiter off, its sends started at R by a bare timer loop (R / 100 "
        "every 10 ms, the limiter's own batch), shows what sending at R costs without the limiter: "
        "the answers then come back one by one too.",
        "",
        "| limiter on µs/request | bare timer loop µs/request | on / timer loop | range over rounds |",
        "|---|---|---|---|",
        f"| {cost['on_us']:.0f} | {cost['ticked_us']:.0f} | {cost['ratio_to_ticked']:.2f} | "
        f"{min(cost['ratio_to_ticked_each_round']):.2f}-{max(cost['ratio_to_ticked_each_round']):.2f} |",
        "",
        "What sending at R costs with no limiter at all, against the unpaced burst: the bare timer "
        "loop at the limiter's batch, and at ten times it (R / 10 every 100 ms: batches that large "
        "would cost exact mode about 5 % of its throughput, half a gap per window).",
        "",
        "| bare timer loop, R / 100 every 10 ms ÷ off | bare timer loop, R / 10 every 100 ms ÷ off |",
        "|---|---|",
        f"| {cost['ticked_over_off']:.2f} ({cost['ticked_us']:.0f} µs) | "
        f"{cost['ticked_long_over_off']:.2f} ({cost['ticked_long_us']:.0f} µs) |",
    ]
    own = results["limiter_own_cost"]
    lines += [
        "", f"## The limiter's own CPU per request at R = {own['rate']:,}, on a virtual clock", "",
        f"No server and no sleeps, so the machine's load barely moves it: {own['requests']:,} requests "
        "(each answered 2 ms later) gathered behind the same semaphore go through the limiter, and "
        "through the least a limiter can do with a backlog (a future per waiter, R / 100 granted every "
        "10 ms); the floor is the bare timer loop, with no backlog. The difference between the last two "
        f"is the caller's semaphore and the wait itself. Minima of {own['rounds']} rounds.", "",
        "| limiter µs/request | least limiter µs/request | bare timer loop µs/request "
        "| limiter / least | limiter / bare |",
        "|---|---|---|---|---|",
        f"| {own['on_us']:.1f} | {own['least_us']:.1f} | {own['bare_us']:.1f} "
        f"| {own['on_over_least']:.2f} | {own['on_over_bare']:.2f} |",
    ]
    if "overhead" not in results:
        return "\n".join(lines)
    lines += ["", "## Client overhead, no limit (median of rounds, concurrency 64)", "",
              "| server | plain aiohttp req/s | MMSClient.send req/s | ratio | ratio range over rounds "
              "| CPU µs/req plain | CPU µs/req client | CPU ratio (plain ÷ client) |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in results["overhead"].items():
        spread = run["ratio_each_round"]
        lines.append(
            f"| {name} | {run['plain_rps']:.0f} | {run['client_rps']:.0f} | {run['ratio']:.3f} | "
            f"{min(spread):.2f}-{max(spread):.2f} | "
            f"{run['plain_cpu_us_per_request']:.0f} | {run['client_cpu_us_per_request']:.0f} | "
            f"{run['cpu_ratio']:.3f} |"
        )
    build = results["build"]
    lines += ["", "## Build + validate + serialise, typical 3-slide message", "",
              "| | mmsjson µs | json.dumps of a hand-built dict µs | ratio |", "|---|---|---|---|",
              f"| new message: build, validate, serialise | {build['ours_us']:.1f} | "
              f"{build['json_dumps_us']:.1f} | {build['ratio']:.2f} |",
              f"| each further recipient of that message (fan-out) | {build['per_recipient_us']:.1f} | "
              f"{build['json_dumps_us']:.1f} | {build['per_recipient_ratio']:.2f} |"]
    memory = results["bulk_memory"]
    lines += ["", "## Bulk memory (send_bulk against the no-op server, fresh process each)", "",
              "| jobs | seconds | peak RSS MiB |", "|---|---|---|"]
    for run in memory["runs"]:
        lines.append(f"| {run['jobs']:,} | {run['seconds']:.1f} | {run['peak_rss_kib'] / 1024:.1f} |")
    lines += ["", f"Peak memory ratio, largest / smallest: **{memory['ratio']:.3f}**", ""]
    posted = results["postbacks"]
    lines += ["## Postbacks (receiver in its own process, body durably stored before each 200)", "",
              "| posted (each twice) | stored | all answered 200 | handled per second |", "|---|---|---|---|",
              f"| {posted['posted']:,} | {posted['stored']:,} | {posted['all_200']} "
              f"| {posted['per_second']:.0f} |", ""]
    return "\n".join(lines)


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    fake_port, noop_port = free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}/ep/v2/"
    noop = f"http://127.0.0.1:{noop_port}/ep/v2/"
    seconds = {10: 10.0, 100: 5.0, 1000: 5.0} if not args.quick else {10: 3.0, 100: 2.0, 1000: 2.0}
    if args.limiter_only:
        seconds = {}
    seconds |= {1000: 5.0, 2000: 5.0, 3000: 5.0} if args.limiter_only or not args.quick else {}
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    fake_server = [sys.executable, str(HERE / "fake_server.py"), str(fake_port), KEY]
    with process(fake_server, "listening"), \
            process([sys.executable, str(HERE / "noop_server.py"), str(noop_port)], "listening"):
        results["limiter"] = []
        for rate, span in seconds.items():
            print(f"limiter fidelity at R={rate} for {span:g} s ...", flush=True)
            results["limiter"].append(await limiter_fidelity(fake, rate, span))
        print("CPU per request, limiter on and off ...", flush=True)
        results["limiter_cost"] = await limiter_cost(fake, 1000, 3.0, rounds=5)
        print("CPU per request, the limiter's own, on a virtual clock ...", flush=True)
        results["limiter_own_cost"] = await asyncio.to_thread(limiter_own_cost, 1000, 20_000, 5)
        if args.limiter_only:
            return results
        count = 2000 if args.quick else 5000
        print("client overhead ...", flush=True)
        results["overhead"] = {
            "fake server": await overhead(fake, count, rounds=5),
            "no-op server": await overhead(noop, count, rounds=5),
        }
        print("build + serialise ...", flush=True)
        results["build"] = build_and_serialise()
        sizes = [10_000, 100_000 if args.quick else 1_000_000]
        runs = []
        for size in sizes:
            print(f"bulk memory over {size:,} jobs ...", flush=True)
            runs.append(bulk_memory(noop, size))
        results["bulk_memory"] = {
            "runs": runs, "ratio": runs[-1]["peak_rss_kib"] / runs[0]["peak_rss_kib"],
        }
    print("postbacks ...", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results["postbacks"] = await postbacks(2000 if args.quick else 10_000, args.out)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, 100,000 bulk jobs")
    parser.add_argument("--limiter-only", action="store_true",
                        help="only the limiter at R = 1,000-3,000 and its CPU per request (about 30 s)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = asyncio.run(run_all(args))
    args.out.mkdir(parents=True, exist_ok=True)
    plotted = plot(results["limiter"], args.out / "throughput.png")
    for run in results["limiter"]:
        run.pop("arrivals")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.out / "results.md").write_text(report)
    print(report)
    if not plotted:
        print("(matplotlib is not installed: pip install -e '.[bench]' for throughput.png)")


if __name__ == "__main__":
    main()

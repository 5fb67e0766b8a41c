"""Client overhead of two source trees of mmsjson, measured side by side in one run.

Starts the no-op server in its own process, then for each round runs, in fresh child processes
and in alternating order, a plain aiohttp loop posting pre-built bytes and ``MMSClient.send`` from
each tree (same message, same concurrency). Prints the medians, each tree's ratio to the plain
loop (median, and per round against the plain loop of the same round) and to the first tree, so a
change can be judged against the code before it on the same noisy machine::

    python benchmarks/compare_versions.py /path/to/old/tree [more trees...] . --rounds 7 --count 4000

By default each timed run builds its session or client too (as the figures so far were taken);
``--build outside`` builds it before the clock starts, so a one-off cost of building a client is
left out and only the requests are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import asyncio, json, sys, time
# asyncio reads plain TCP with a fresh 256 KiB buffer shrunk to what arrived. Whether glibc maps
# that buffer with mmap (and mremap, munmap: three system calls per answer, about 5 µs) depends on
# whether the process happened to free a large block before (glibc then raises its threshold), a
# coin flip per process that depends on the hash seed. Freeing one here puts every child, plain
# loop and client alike, in the same state (unless --malloc-as-is). TLS connections read into a
# reused buffer instead, so this is about the loopback benchmark, not the API.
if sys.argv[4] == "prime":
    _ = bytearray(1 << 20)
    del _
import aiohttp
from mmsjson import MMS, Audio, Image, MMSClient, Slide
base, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
CONCURRENCY = 64
mms = MMS(slides=[Slide(text="Hello", image=Image("https://example.com/a.jpg")),
                  Slide(text="Listen", audio=Audio("https://example.com/a.mp3")), Slide(text="Bye")],
          subject="Hi", fallback_sms_text="See the picture")
BODY = json.dumps({"action": "sendmms", "service-id": "1", "to": "17745559144", "from": "12345",
    "message-subject": "Hi", "fallback-sms-text": "See the picture",
    "slide": [{"message-text": "Hello", "image": {"url": "https://example.com/a.jpg"}},
              {"message-text": "Listen", "audio": {"url": "https://example.com/a.mp3"}},
              {"message-text": "Bye"}]}, separators=(",", ":")).encode()

# "inside": each run builds its session or client inside the timed region (the figures before
# 2026-11-23 evening); "outside": built before the clock starts, so only the requests are timed.
BUILD = sys.argv[5]

def plain_session():
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY))

async def plain(s):
    headers = {"x-api-key": "k", "Content-Type": "application/json; charset=utf-8"}
    remaining = count
    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with s.post(base, data=BODY, headers=headers) as r:
                await r.json()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

def new_client():
    return MMSClient("k", service_id="1", sender="12345", base_url=base, throughput=None,
                     max_in_flight=CONCURRENCY)

async def client(c):
    remaining = count
    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await c.send(mms, "17745559144")
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

async def main():
    run, build = (plain, plain_session) if mode == "plain" else (client, new_client)
    async with build() as user:
        await run(user)  # warm up: connections, caches
        if BUILD == "outside":
            cpu, start = time.process_time(), time.perf_counter()
            await run(user)
    if BUILD == "inside":
        cpu, start = time.process_time(), time.perf_counter()
        async with build() as user:
            await run(user)
    print(json.dumps({"rps": count / (time.perf_counter() - start),
                      "cpu_us": (time.process_time() - cpu) / count * 1e6}))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(
    tree: Path, base: str, count: int, mode: str, prime: bool, build: str
) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, base, str(count), mode, "prime" if prime else "as-is", build],
        env=env, cwd=tree, check=True, capture_output=True, text=True, timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", type=Path, nargs="+",
                        help="source trees to compare; the first is the reference, the plain loop "
                             "runs from the last")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--malloc-as-is", action="store_true",
                        help="leave each child's glibc mmap threshold to chance (see CHILD)")
    parser.add_argument("--build", choices=("inside", "outside"), default="inside",
                        help="build each run's session or client inside the timed region (the "
                             "default, as every figure so far) or before the clock starts, so "
                             "that only the requests are timed")
    args = parser.parse_args()
    trees: dict[str, Path] = {f"{index}:{tree}": tree for index, tree in enumerate(args.trees)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "noop_server.py"), str(port)], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        base = f"http://127.0.0.1:{port}/ep/v2/"
        load = os.getloadavg()
        names = ["plain", *trees]
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for index in range(args.rounds):
            for name in names if index % 2 == 0 else reversed(names):
                tree = args.trees[-1] if name == "plain" else trees[name]
                rows[name].append(measure(
                    tree, base, args.count, "plain" if name == "plain" else "client",
                    not args.malloc_as_is, args.build,
                ))
        median = {name: {k: statistics.median(r[k] for r in runs) for k in ("rps", "cpu_us")}
                  for name, runs in rows.items()}
        first = next(iter(trees))
        report = {
            "load_before_and_after": [load, os.getloadavg()],
            "rounds": args.rounds,
            "count": args.count,
            "malloc_primed": not args.malloc_as_is,
            "build": args.build,
            "median": median,
            "over_plain": {
                name: {
                    "median": median[name]["rps"] / median["plain"]["rps"],
                    "per_round": [round(r["rps"] / p["rps"], 3)
                                  for r, p in zip(rows[name], rows["plain"], strict=True)],
                    # CPU per request is less disturbed by other processes than requests/s
                    "cpu_median": median["plain"]["cpu_us"] / median[name]["cpu_us"],
                    # other processes only ever slow a run down: the best rounds show the code
                    "best": max(r["rps"] for r in rows[name]) / max(p["rps"] for p in rows["plain"]),
                    "cpu_best": min(p["cpu_us"] for p in rows["plain"])
                    / min(r["cpu_us"] for r in rows[name]),
                }
                for name in trees
            },
            "over_first": {
                name: {
                    "median": median[name]["rps"] / median[first]["rps"],
                    "per_round": [round(r["rps"] / f["rps"], 3)
                                  for r, f in zip(rows[name], rows[first], strict=True)],
                }
                for name in trees if name != first
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

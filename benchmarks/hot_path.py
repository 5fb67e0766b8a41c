"""The hot path, measured in one run: building and serialising, each further recipient, bulk GC.

    python benchmarks/hot_path.py [--jobs 100000] [--rounds 3]

Prints a Markdown table of ratios, each against something measured in the same run: a new
3-slide message against ``json.dumps`` of the same request dict (with the same media URLs each
time, which a URL checked before makes a look-up, and with URLs never seen before), a further
recipient of the same message in microseconds, and ``send_bulk`` against a loop of ``send`` (CPU
and garbage collections per job), both through an in-process transport so only mmsjson is
measured. The two loops run in interleaved rounds and the median of each is reported; so is the
part of a bulk job that is building its ``BulkJob`` (a generator of jobs less the same generator of
their numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import time
import timeit
from typing import Any

from mmsjson import MMS, Audio, BulkJob, Image, MMSClient, PreparedRequest, RawResponse, Slide
from mmsjson.testing import MockTransport

ANSWER = RawResponse(200, b'{"status":"success","to":"17745559144","tracking-id":"T","status-details":"q"}')
REQUEST = {
    "action": "sendmms", "service-id": "1", "to": "17745559144", "from": "12345",
    "message-subject": "Hi", "fallback-sms-text": "See the picture",
    "slide": [
        {"message-text": "Hello", "image": {"url": "https://example.com/a.jpg"}},
        {"message-text": "Listen", "audio": {"url": "https://example.com/a.mp3"}},
        {"message-text": "Bye"},
    ],
}


def typical(picture: str = "https://example.com/a.jpg", sound: str = "https://example.com/a.mp3") -> MMS:
    return MMS(
        slides=[Slide(text="Hello", image=Image(picture)),
                Slide(text="Listen", audio=Audio(sound)), Slide(text="Bye")],
        subject="Hi", fallback_sms_text="See the picture",
    )


class _Forget(list[PreparedRequest]):
    def append(self, item: PreparedRequest) -> None:
        """Keep nothing: a long run must not grow."""


def client() -> MMSClient:
    async def answer(request: PreparedRequest) -> RawResponse:
        await asyncio.sleep(0)
        return ANSWER

    transport = MockTransport(answer)
    transport.requests = _Forget()
    return MMSClient("key", service_id="1", sender="12345", throughput=None, transport=transport)


def best(function: Any, number: int = 20000) -> float:
    return min(timeit.repeat(function, number=number, repeat=7)) / number


def serialising() -> dict[str, float]:
    c, shared = client(), typical()
    new = best(lambda: c._send_request(typical(), "17745559144").body)
    urls = iter([f"https://example.com/{n}.jpg" for n in range(2 * 7 * 20000)])
    unseen = best(lambda: c._send_request(typical(next(urls), next(urls)), "17745559144").body)
    further = best(lambda: c._send_request(shared, "17745559144").body)
    dumps = best(lambda: json.dumps(REQUEST).encode())
    return {"new_us": new * 1e6, "dumps_us": dumps * 1e6, "new_ratio": new / dumps,
            "unseen_us": unseen * 1e6, "unseen_ratio": unseen / dumps, "further_us": further * 1e6}


async def per_job(mode: str, count: int) -> dict[str, float]:
    c, mms = client(), typical()
    collections = [0]

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections[0] += 1

    gc.collect()
    gc.callbacks.append(counted)
    cpu = time.process_time()
    if mode == "jobs":
        for _ in (BulkJob(to=f"1774555{i % 10000:04d}", mms=mms) for i in range(count)):
            pass
    elif mode == "numbers":
        for _ in (f"1774555{i % 10000:04d}" for i in range(count)):
            pass
    elif mode == "bulk":
        jobs = (BulkJob(to=f"1774555{i % 10000:04d}", mms=mms) for i in range(count))
        async for _ in c.send_bulk(jobs):
            pass
    else:
        for i in range(count):
            await c.send(mms, f"1774555{i % 10000:04d}")
    cpu = time.process_time() - cpu
    gc.callbacks.remove(counted)
    return {"cpu_us": cpu / count * 1e6, "collections_per_100k": collections[0] * 100_000 / count}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved send/bulk rounds")
    args = parser.parse_args()
    load = os.getloadavg()
    build = serialising()
    rounds: dict[str, list[dict[str, float]]] = {"send": [], "bulk": [], "jobs": [], "numbers": []}
    for _ in range(args.rounds):
        for mode, runs in rounds.items():
            runs.append(asyncio.run(per_job(mode, args.jobs)))
    send, bulk, jobs, numbers = ({key: statistics.median(r[key] for r in runs) for key in runs[0]}
                                 for runs in rounds.values())
    ratio = statistics.median(
        b["cpu_us"] / s["cpu_us"] for s, b in zip(rounds["send"], rounds["bulk"], strict=True)
    )
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print("| figure | value | target |\n|---|---|---|")
    print(f"| new 3-slide message: build + check + serialise ÷ json.dumps | {build['new_ratio']:.2f}x "
          f"({build['new_us']:.1f} µs / {build['dumps_us']:.1f} µs) | ≤ 2.2x |")
    print(f"| the same with media URLs not seen before ÷ json.dumps | {build['unseen_ratio']:.2f}x "
          f"({build['unseen_us']:.1f} µs / {build['dumps_us']:.1f} µs) | ≤ 2.2x |")
    print(f"| each further recipient of the same message | {build['further_us']:.2f} µs | ≤ 1.3 µs |")
    print(f"| send_bulk CPU per job ÷ send loop (median of {args.rounds}) | {ratio:.3f}x "
          f"({bulk['cpu_us']:.2f} µs / {send['cpu_us']:.2f} µs) | ≤ 1.1x |")
    print(f"| of a bulk job, building its BulkJob (beyond making its number) | "
          f"{jobs['cpu_us'] - numbers['cpu_us']:.1f} µs | |")
    print(f"| garbage collections per 100k jobs: send_bulk / send loop | "
          f"{bulk['collections_per_100k']:.0f} / {send['collections_per_100k']:.0f} | GC ≤ 1 µs per job |")


if __name__ == "__main__":
    main()

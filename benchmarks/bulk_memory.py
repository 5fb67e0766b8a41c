"""Peak memory of one ``send_bulk`` run of N jobs, in a process of its own (run by run.py)."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Iterator

from mmsjson import MMS, BulkJob, Image, MMSClient, Slide


def jobs(mms: MMS, count: int) -> Iterator[BulkJob]:
    for i in range(count):
        yield BulkJob(to=f"1774{i % 10_000_000:07d}", mms=mms)


async def main(url: str, count: int) -> None:
    mms = MMS(slides=[Slide(text="Hi", image=Image("https://example.com/a.jpg"))], fallback_sms_text="Hi")
    outcomes = {"accepted": 0, "rejected": 0, "unknown": 0}
    start = time.perf_counter()
    async with MMSClient("bench", service_id="1", sender="12345", base_url=url, throughput=None) as client:
        async for outcome in client.send_bulk(jobs(mms, count)):
            outcomes[outcome.status.value] += 1
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"jobs": count, "seconds": elapsed, "peak_rss_kib": peak_kib, **outcomes}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

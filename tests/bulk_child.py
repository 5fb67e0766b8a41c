"""A bulk run in a process of its own, for the kill test: python -m tests.bulk_child URL KEY JOURNAL N."""

from __future__ import annotations

import asyncio
import sys

from mmsjson import MMS, BulkJob, MMSClient, Slide


async def main(url: str, key: str, journal: str, count: int) -> None:
    mms = MMS(slides=[Slide(text="hello")], fallback_sms_text="hello")
    jobs = (BulkJob(to=f"1774555{i:04d}", mms=mms) for i in range(count))
    async with MMSClient(key, service_id="1", sender="12345", base_url=url, throughput=200) as client:
        async for _ in client.send_bulk(jobs, journal=journal):
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

"""Journal users in a process of their own, for the tests that need a second process.

python -m tests.bulk_child URL KEY JOURNAL N   run N jobs with the journal; exit 3 if it is refused
python -m tests.bulk_child --hold JOURNAL      open the journal, print "held", keep it until stdin closes
"""

from __future__ import annotations

import asyncio
import sys

from mmsjson import MMS, BulkJob, JournalError, MMSClient, Slide
from mmsjson.journal import BulkJournal

REFUSED = 3


async def main(url: str, key: str, journal: str, count: int) -> None:
    mms = MMS(slides=[Slide(text="hello")], fallback_sms_text="hello")
    jobs = (BulkJob(to=f"1774555{i:04d}", mms=mms) for i in range(count))
    async with MMSClient(key, service_id="1", sender="12345", base_url=url, throughput=200) as client:
        async for _ in client.send_bulk(jobs, journal=journal):
            pass


def hold(journal: str) -> None:
    with BulkJournal(journal):
        print("held", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    try:
        if sys.argv[1] == "--hold":
            hold(sys.argv[2])
        else:
            asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    except JournalError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(REFUSED)

"""A bulk run from a CSV file with a journal: run it again after a crash and nobody gets it twice.

    python examples/bulk_with_journal.py examples/people.csv examples/messages/picture.json run.db

The key, base URL, service id and sender come from MMSJSON_API_KEY, MMSJSON_BASE_URL,
MMSJSON_SERVICE_ID and MMSJSON_SENDER (``mmsjson sandbox`` prints them).
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from mmsjson import MMS, BulkJob, MMSClient, load_mms


def jobs(people: Path, mms: MMS) -> Iterator[BulkJob]:
    """One job per row, read lazily: memory stays flat however long the file is."""
    with people.open(encoding="utf-8-sig", newline="") as rows:
        for row in csv.DictReader(rows):
            yield BulkJob(to=row["number"], mms=mms, client_reference=row.get("client_reference"))


async def main(people: Path, message: Path, journal: Path) -> Counter[str]:
    mms = load_mms(json.loads(message.read_text("utf-8")))  # noqa: ASYNC240 (small, once)
    counts: Counter[str] = Counter()
    async with MMSClient(throughput=20) as client:
        async for outcome in client.send_bulk(jobs(people, mms), journal=journal):
            counts[outcome.status] += 1
            if outcome.status != "accepted":
                print(f"{outcome.to}: {outcome.status}: {outcome.info}")
    print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return counts


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))

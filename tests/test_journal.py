"""Resumable bulk runs: the journal survives SIGKILL, and a rerun sends nobody anything twice."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmsjson import MMS, BulkJob, MMSClient, OutcomeStatus, RetryPolicy
from mmsjson.journal import BulkJournal
from mmsjson.testing import FakeMMSServer

ROOT = Path(__file__).resolve().parents[1]


def jobs(mms: MMS, count: int) -> Iterator[BulkJob]:
    for i in range(count):
        yield BulkJob(to=f"1774555{i:04d}", mms=mms)


async def run(client: MMSClient, mms: MMS, count: int, journal: Path) -> list[Any]:
    return [o async for o in client.send_bulk(jobs(mms, count), journal=journal)]


async def test_a_rerun_skips_what_was_accepted_and_reports_it_again(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    async with make_client() as client:
        first = await run(client, mms, 20, journal)
        again = await run(client, mms, 20, journal)
    assert sorted(fake.deliveries().values()) == [1] * 20
    assert all(o.replayed and o.status is OutcomeStatus.ACCEPTED for o in again)
    assert {o.tracking_id for o in again} == {o.tracking_id for o in first}


async def test_a_job_rejected_for_a_passing_reason_is_sent_again(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    fake.inject_e113(3)
    async with make_client(retry=RetryPolicy(max_attempts=1), max_in_flight=1) as client:
        first = await run(client, mms, 5, journal)
        assert [o.code for o in first].count("E113") == 3
        again = await run(client, mms, 5, journal)
    assert sum(not o.replayed for o in again) == 3
    assert sorted(fake.deliveries().values()) == [1] * 5


async def test_a_job_rejected_for_good_is_not_sent_again(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    bad = [BulkJob(to="17745550001", mms_id="404")]
    async with make_client() as client:
        first = [o async for o in client.send_bulk(bad, journal=journal)]
        again = [o async for o in client.send_bulk(bad, journal=journal)]
    assert first[0].code == "E241"
    assert (again[0].replayed, again[0].status, again[0].code) == (True, "rejected", "E241")
    assert len(fake.arrivals) == 1


async def test_an_unknown_outcome_is_listed_and_never_resent(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    path = tmp_path / "run.db"
    fake.inject_drop()
    async with make_client(max_in_flight=1) as client:
        await run(client, mms, 3, path)
        again = await run(client, mms, 3, path)
    assert [o.status for o in again].count("unknown") == 1
    journal = BulkJournal(path)
    try:
        assert len(await journal.unknown()) == 1
    finally:
        journal.close()
    assert sorted(fake.deliveries().values()) == [1, 1, 1]


async def test_identical_jobs_in_one_run_reach_the_person_once(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    twice = [BulkJob(to="17745550001", mms=mms)] * 2
    async with make_client(max_in_flight=1) as client:
        outcomes = [o async for o in client.send_bulk(twice, journal=tmp_path / "run.db")]
    assert fake.deliveries() == {"17745550001": 1}
    assert [o.replayed for o in outcomes] == [False, True]


async def test_a_run_killed_with_sigkill_loses_nothing_and_the_rerun_sends_nobody_twice(
    tmp_path: Path,
) -> None:
    journal, count = tmp_path / "run.db", 400
    async with FakeMMSServer() as server:
        enough = asyncio.Event()
        accept = server._accept

        def counting_accept(payload: dict[str, Any]) -> dict[str, Any]:
            if server.accepted_count >= 100:
                enough.set()
            return accept(payload)

        server._accept = counting_accept  # type: ignore[method-assign]
        args = ["-m", "tests.bulk_child", server.base_url, server.api_key, str(journal), str(count)]
        child = await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT)
        await asyncio.wait_for(enough.wait(), timeout=30)
        child.send_signal(signal.SIGKILL)
        await child.wait()
        killed_at = server.accepted_count
        rerun = await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT)
        assert await asyncio.wait_for(rerun.wait(), timeout=60) == 0
        deliveries = server.deliveries()
    opened = BulkJournal(journal)
    try:
        unknown = {entry.recipient for entry in await opened.unknown()}
        counts = await opened.counts()
    finally:
        opened.close()
    assert killed_at < count
    assert max(deliveries.values()) == 1
    everyone = {f"1774555{i:04d}" for i in range(count)}
    assert set(deliveries) | unknown == everyone
    assert len(unknown) <= 64
    assert counts.get("accepted", 0) + counts.get("unknown", 0) == count

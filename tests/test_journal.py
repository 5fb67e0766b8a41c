"""Resumable bulk runs: the journal survives SIGKILL, and a rerun sends nobody anything twice."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmsjson import MMS, BulkJob, JournalBusy, JournalError, MMSClient, OutcomeStatus, RetryPolicy
from mmsjson.journal import _SCHEMA, JOURNAL_KIND, BulkJournal
from mmsjson.testing import FakeMMSServer
from tests.bulk_child import REFUSED

ROOT = Path(__file__).resolve().parents[1]
#: Only so that a regression fails the test instead of hanging the suite.
GUARD = 60.0


def jobs(mms: MMS, count: int) -> Iterator[BulkJob]:
    for i in range(count):
        yield BulkJob(to=f"1774555{i:04d}", mms=mms)


async def run(client: MMSClient, mms: MMS, count: int, journal: Path | BulkJournal) -> list[Any]:
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


# -- one run at a time ------------------------------------------------------------------------


async def child(*args: str) -> asyncio.subprocess.Process:
    """``python -m tests.bulk_child ARGS`` with its stdin, stdout and stderr piped to this test."""
    pipe = asyncio.subprocess.PIPE
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bulk_child", *args, cwd=ROOT, stdin=pipe, stdout=pipe, stderr=pipe
    )


def test_a_second_journal_on_the_same_path_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    mine = f"in use by another run \\(pid {os.getpid()} on "
    with BulkJournal(tmp_path / "run.db"), pytest.raises(JournalBusy, match=mine):
        BulkJournal(tmp_path / "run.db")


def test_closing_a_journal_lets_the_next_run_have_it(tmp_path: Path) -> None:
    BulkJournal(tmp_path / "run.db").close()
    BulkJournal(tmp_path / "run.db").close()


def test_a_journal_reached_through_a_symlink_is_the_same_journal(tmp_path: Path) -> None:
    (tmp_path / "link.db").symlink_to(tmp_path / "run.db")
    with BulkJournal(tmp_path / "run.db"), pytest.raises(JournalBusy):
        BulkJournal(tmp_path / "link.db")


async def test_two_concurrent_runs_on_one_journal_never_both_send(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    async with make_client() as client:
        results = await asyncio.gather(
            run(client, mms, 50, journal), run(client, mms, 50, journal), return_exceptions=True
        )
    assert sum(isinstance(result, JournalBusy) for result in results) == 1
    assert sorted(fake.deliveries().values()) == [1] * 50


async def test_a_run_in_another_process_is_refused_and_sends_nothing_while_this_one_holds_the_journal(
    fake: FakeMMSServer, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    with BulkJournal(journal):
        other = await child(fake.base_url, fake.api_key, str(journal), "20")
        _, err = await asyncio.wait_for(other.communicate(), GUARD)
    assert other.returncode == REFUSED
    assert f"JournalBusy: {journal}: in use by another run (pid {os.getpid()} on " in err.decode()
    assert len(fake.arrivals) == 0


async def test_a_journal_held_by_another_process_is_refused_here_naming_that_process(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    holder = await child("--hold", str(journal))
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), GUARD) == b"held\n"
        with pytest.raises(JournalBusy, match=f"pid {holder.pid} on ") as refused:
            BulkJournal(journal)
        assert refused.value.path == str(journal)
    finally:
        holder.stdin.close()
        await asyncio.wait_for(holder.wait(), GUARD)
    BulkJournal(journal).close()


async def test_a_journal_is_free_again_once_the_process_holding_it_is_killed(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    holder = await child("--hold", str(journal))
    assert holder.stdout is not None
    assert await asyncio.wait_for(holder.stdout.readline(), GUARD) == b"held\n"
    holder.send_signal(signal.SIGKILL)
    await asyncio.wait_for(holder.wait(), GUARD)
    BulkJournal(journal).close()


async def test_a_run_whose_journal_cannot_be_written_stops_with_the_error_and_sends_nothing(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    path = tmp_path / "run.db"
    with BulkJournal(path, busy_timeout=0.05) as journal:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            async with make_client() as client:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    await asyncio.wait_for(run(client, mms, 5, journal), GUARD)
        finally:
            other.close()
    assert len(fake.arrivals) == 0


# -- files that are not journals ----------------------------------------------------------------


def random_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    path.write_bytes(random.Random(7).randbytes(8192))
    return path


def truncated(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    db = sqlite3.connect(path)
    db.executescript(f"PRAGMA application_id = {JOURNAL_KIND.application_id}; "
                     f"PRAGMA user_version = {JOURNAL_KIND.version}; {_SCHEMA}")
    db.executemany(
        "INSERT INTO jobs (key, recipient, state, updated_at) VALUES (?, ?, 'accepted', 0)",
        ((f"key-{i}", f"1774555{i:04d}") for i in range(2000)),
    )
    db.commit()
    db.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def another_programs_database(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE contacts (name TEXT, phone TEXT); INSERT INTO contacts VALUES ('Ann', '1');")
    db.close()
    return path


def a_directory(tmp_path: Path) -> Path:
    path = tmp_path / "run.db"
    path.mkdir()
    return path


def under_a_regular_file(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("not a directory")
    return tmp_path / "notes.txt" / "run.db"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (random_bytes, "is not a mmsjson bulk journal, or is damaged"),
        (truncated, "is not a mmsjson bulk journal, or is damaged"),
        (another_programs_database, "is another program's SQLite database (tables contacts)"),
        (a_directory, "cannot be opened: Is a directory"),
        (under_a_regular_file, "Not a directory"),
    ],
)
def test_a_file_that_is_not_a_journal_is_refused_with_an_error_naming_it(
    make: Callable[[Path], Path], problem: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    with pytest.raises(JournalError, match=f"^{re.escape(str(path))}: .*{re.escape(problem)}") as refused:
        BulkJournal(path)
    assert not isinstance(refused.value, JournalBusy)


async def test_a_run_given_another_programs_database_sends_nothing_and_leaves_it_unchanged(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, tmp_path: Path
) -> None:
    path = another_programs_database(tmp_path)
    before = path.read_bytes()
    async with make_client() as client:
        with pytest.raises(JournalError, match="another program's SQLite database"):
            await run(client, mms, 5, path)
    assert len(fake.arrivals) == 0
    assert path.read_bytes() == before


def test_a_refused_file_does_not_keep_the_journal_locked(tmp_path: Path) -> None:
    path = random_bytes(tmp_path)
    with pytest.raises(JournalError):
        BulkJournal(path)
    path.unlink()
    BulkJournal(path).close()


async def test_an_empty_file_becomes_a_new_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    path.touch()
    with BulkJournal(path) as journal:
        assert await journal.counts() == {}


async def test_a_journal_written_before_files_were_marked_is_still_used(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO jobs (key, recipient, state, updated_at) VALUES ('k', '17745550001', 'accepted', 0)")
    db.commit()
    db.close()
    with BulkJournal(path) as journal:
        entry = await journal.entry("k")
    assert entry is not None and entry.state == "accepted"

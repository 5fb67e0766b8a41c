"""Bulk and group output: live progress on a terminal, plain lines elsewhere, a summary, a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from mmsjson._cli_output import RunReport
from mmsjson.models import BulkJob, BulkOutcome, BulkProgress, OutcomeStatus
from mmsjson.testing import FakeMMSServer
from tests.cli_support import (  # noqa: F401 - fixtures
    CLI,
    ROOT,
    HeldServer,
    child_env,
    held_bulk_argv,
    keyed_fixture,
    message_fixture,
    run,
)

NUMBERS = [f"177455500{i:02d}" for i in range(1, 9)]


def summary_counts(text: str) -> dict[str, int]:
    return {status: int(count) for status, count in re.findall(r"^  (accepted|rejected|unknown) +(\d+)$", text, re.M)}


@pytest.fixture
def people(tmp_path: Path) -> str:
    path = tmp_path / "people.csv"
    path.write_text("".join(f"{n},ref-{i}\n" for i, n in enumerate(NUMBERS)))
    return str(path)


async def test_the_summary_of_a_piped_run_matches_what_the_server_recorded(
    fake: FakeMMSServer, keyed: list[str], message: str, people: str, tmp_path: Path
) -> None:
    fake.inject_status(400, count=2)
    fake.inject_drop(count=1)
    code, out = await run(
        "bulk", *keyed, "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db")
    )
    served = [r for r in fake.received if r.status == "success"]
    refused = [r for r in fake.received if r.status == "http-error"]
    assert code == 3
    assert summary_counts(out) == {"accepted": len(served) - 1, "rejected": len(refused), "unknown": 1}
    assert "\x1b" not in out and "\r" not in out


async def test_the_summary_lists_only_the_rows_not_accepted(
    fake: FakeMMSServer, keyed: list[str], message: str, people: str, tmp_path: Path
) -> None:
    fake.inject_status(400, count=1)
    code, out = await run(
        "bulk", *keyed, "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db")
    )
    (refused,) = [n for n in NUMBERS if n not in fake.deliveries()]
    assert code == 1 and refused in out
    assert not [n for n in fake.deliveries() if n in out]


async def test_the_report_and_the_json_lines_hold_every_row(
    fake: FakeMMSServer, keyed: list[str], message: str, people: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    code, out = await run(
        "bulk", *keyed, "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db"),
        "--report", str(report), "--json",
    )
    records = [json.loads(line) for line in out.splitlines()]
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert code == 0
    assert sorted(r["to"] for r in rows) == sorted(r["to"] for r in records[:-1]) == NUMBERS
    assert {r["line"] for r in records[:-1]} == set(range(1, len(NUMBERS) + 1))
    assert records[-1]["type"] == "summary" and records[-1]["accepted"] == len(NUMBERS)


async def test_on_a_terminal_the_run_is_drawn_live_and_ends_with_the_summary(
    fake: FakeMMSServer, message: str, people: str, tmp_path: Path
) -> None:
    controller, terminal = pty.openpty()
    env = child_env(MMSJSON_API_KEY=fake.api_key, COLUMNS="120", LINES="40", TERM="xterm")
    child = await asyncio.create_subprocess_exec(
        *CLI, "bulk", "--base-url", fake.base_url, "--service-id", "1", "--sender", "12345",
        "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db"),
        env=env, cwd=ROOT, stdout=terminal, stderr=subprocess.PIPE,
    )
    os.close(terminal)

    def read_all() -> str:
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()

    try:
        shown = await asyncio.to_thread(read_all)
        _, err = await child.communicate()
    finally:
        os.close(controller)
    assert child.returncode == 0, err
    assert "\x1b[" in shown and f"{len(NUMBERS)}/{len(NUMBERS)}" in shown
    assert summary_counts(shown.replace("\r\n", "\n")) == {"accepted": len(NUMBERS), "rejected": 0, "unknown": 0}


async def test_ctrl_c_stops_cleanly_and_the_printed_command_resumes_without_sending_twice(
    message: str, people: str, tmp_path: Path
) -> None:
    server = HeldServer()
    async with server:
        env = child_env(MMSJSON_API_KEY=server.api_key)
        argv = held_bulk_argv(server, message, people, tmp_path / "j.db")
        child = await asyncio.create_subprocess_exec(
            *CLI, *argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert child.stdout is not None
        first = json.loads(await asyncio.wait_for(child.stdout.readline(), 30))
        assert first["type"] == "outcome"  # recorded in the journal before it is reported
        child.send_signal(signal.SIGINT)
        server.release.set()
        _, err = await child.communicate()
        printed = err.decode()
        assert child.returncode == 130, printed
        assert "Traceback" not in printed and "interrupted after" in printed
        command = printed.split("to resume, run the same command again")[1].splitlines()[1].strip()
        assert shlex.split(command)[-len(argv):] == argv
        assert 0 < len(server.deliveries()) < len(NUMBERS)

        resumed = await asyncio.create_subprocess_exec(
            *shlex.split(command), env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _, err = await resumed.communicate()
        assert resumed.returncode == 0, err
    assert sorted(server.deliveries()) == NUMBERS
    assert set(server.deliveries().values()) == {1}


def test_without_a_journal_an_interrupted_run_says_resuming_needs_one() -> None:
    out = io.StringIO()
    report = RunReport(title="group", total=3, out=out, err=out, throughput=10)
    report.start()
    report.stop()
    report.resume(None, None, "mmsjson group ...")
    assert "resuming needs --journal" in out.getvalue() and "mmsjson group" not in out.getvalue()


def test_off_a_terminal_progress_is_a_plain_line_every_ten_seconds() -> None:
    now = [0.0]
    out = io.StringIO()
    report = RunReport(title="bulk", total=4, out=out, err=out, throughput=1, clock=lambda: now[0])
    report.start()
    job = BulkJob(to="17745550001", mms_id="1")
    for index in range(4):
        now[0] += 4.0
        outcome = BulkOutcome(to=job.to, status=OutcomeStatus.ACCEPTED, job=job, index=index)
        report(BulkProgress(started=4, accepted=index + 1, rejected=0, unknown=0, in_flight=0, last=outcome))
    progress = [line for line in out.getvalue().splitlines() if "done," in line]
    assert progress == ["bulk: 3/4 done, 0.2/s, 4.0 s left; 3 accepted, 0 rejected, 0 unknown"]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()

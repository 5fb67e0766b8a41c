"""Adversarial review of the command line and the HTTP transport: bad input, a broken environment,
signals and closed or full outputs must each end in one line on stderr and a documented exit code,
never a traceback or "a bug in mmsjson"."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mmsjson import BulkJournal, MMSClient, ValidationError, check_media
from mmsjson.cli import main
from mmsjson.retry import Verdict, classify
from mmsjson.testing import FakeMMSServer
from mmsjson.transport import AiohttpTransport
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
from tests.conftest import SECRET
from tests.raw_http import Serve, answering, failure_of, read_request, request

LONG_LABEL = "https://" + "a" * 64 + ".example.com/ep/v2/"
NUMBERS = [f"177455500{i:02d}" for i in range(1, 9)]


@pytest.fixture
def people(tmp_path: Path) -> str:
    path = tmp_path / "people.csv"
    path.write_text("".join(f"{n}\n" for n in NUMBERS))
    return str(path)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "a bug in mmsjson" not in err
    return lines[0]


async def test_a_message_file_nested_deeper_than_python_can_parse_is_bad_input(
    keyed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 2
    assert "--message" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("item", ["²=Hi", "1 =Hi"])
async def test_a_custom_text_slide_number_that_is_not_ascii_digits_is_bad_input(
    item: str, keyed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run("send-saved", *keyed, "--mms-id", "1", "--to", "17745559144", "--custom-text", item)
    assert code == 2
    assert "--custom-text" in one_line(capsys.readouterr().err)


def test_a_base_url_whose_host_has_a_label_over_63_characters_is_refused_when_the_client_is_built() -> None:
    with pytest.raises(ValidationError) as caught:
        MMSClient(SECRET, base_url=LONG_LABEL)
    assert caught.value.path == "base_url"


def test_a_base_url_from_the_environment_that_cannot_be_resolved_is_bad_input_not_an_unknown_outcome(
    message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    monkeypatch.setenv("MMSJSON_BASE_URL", LONG_LABEL)
    code = main(["send", "--to", "17745559144", "--message", message, "--service-id", "1",
                 "--sender", "12345"])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "base_url" in line and SECRET not in line


@pytest.mark.parametrize("value", ["0", "", "no"])
async def test_mmsjson_debug_set_to_other_than_1_keeps_an_unexpected_error_to_one_line(
    value: str, keyed: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mmsjson.cli.read_message", broken)
    monkeypatch.setenv("MMSJSON_DEBUG", value)
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", message)
    assert code == 70 and "unexpected RuntimeError: boom" in capsys.readouterr().err


async def start_bulk(
    server: FakeMMSServer, message: str, people: str, tmp_path: Path, *extra: str
) -> tuple[asyncio.subprocess.Process, list[str], dict[str, str]]:
    env = child_env(MMSJSON_API_KEY=server.api_key)
    argv = [*held_bulk_argv(server, message, people, tmp_path / "j.db"), *extra]
    child = await asyncio.create_subprocess_exec(
        *CLI, *argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    return child, argv, env


async def resume_sends_the_rest_once(server: FakeMMSServer, printed: str, argv: list[str],
                                     env: dict[str, str]) -> None:
    command = printed.split("to resume, run the same command again")[1].splitlines()[1].strip()
    assert shlex.split(command)[-len(argv):] == argv
    resumed = await asyncio.create_subprocess_exec(
        *shlex.split(command), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, err = await resumed.communicate()
    assert resumed.returncode == 0, err
    assert sorted(server.deliveries()) == NUMBERS
    assert set(server.deliveries().values()) == {1}


async def test_sigterm_stops_a_bulk_run_like_ctrl_c_and_prints_the_command_that_resumes_it(
    message: str, people: str, tmp_path: Path
) -> None:
    server = HeldServer()
    async with server:
        child, argv, env = await start_bulk(server, message, people, tmp_path)
        assert child.stdout is not None
        assert json.loads(await asyncio.wait_for(child.stdout.readline(), 30))["type"] == "outcome"
        child.send_signal(signal.SIGTERM)
        server.release.set()
        _, err = await child.communicate()
        printed = err.decode()
        assert child.returncode == 130, printed
        assert "Traceback" not in printed and "interrupted after" in printed
        assert 0 < len(server.deliveries()) < len(NUMBERS)
        await resume_sends_the_rest_once(server, printed, argv, env)


def read_line(fd: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        line += chunk
    return line


async def test_a_closed_stdout_stops_a_bulk_run_as_ctrl_c_does_and_exits_74(
    message: str, people: str, tmp_path: Path
) -> None:
    server = HeldServer()
    async with server:
        env = child_env(MMSJSON_API_KEY=server.api_key)
        argv = held_bulk_argv(server, message, people, tmp_path / "j.db")
        reading, writing = os.pipe()
        child = await asyncio.create_subprocess_exec(
            *CLI, *argv, env=env, cwd=ROOT, stdout=writing, stderr=subprocess.PIPE
        )
        os.close(writing)
        first = await asyncio.wait_for(asyncio.to_thread(read_line, reading), 30)
        os.close(reading)  # as `| head -1` does
        assert json.loads(first)["type"] == "outcome"
        server.release.set()
        _, err = await child.communicate()
        printed = err.decode()
        assert child.returncode == 74, printed
        assert "Traceback" not in printed and "a bug in mmsjson" not in printed
        assert "cannot write standard output" in printed and "interrupted after" in printed
        assert 0 < len(server.deliveries()) < len(NUMBERS)
        await resume_sends_the_rest_once(server, printed, argv, env)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_a_report_on_a_full_disk_is_one_line_and_exit_74_with_everyone_sent_to_once(
    message: str, people: str, tmp_path: Path
) -> None:
    async with FakeMMSServer() as server:
        child, _, _ = await start_bulk(server, message, people, tmp_path, "--report", "/dev/full")
        _, err = await child.communicate()
    printed = err.decode()
    assert child.returncode == 74, printed
    assert "Traceback" not in printed and "a bug in mmsjson" not in printed
    assert "cannot write the report /dev/full: No space left on device" in printed
    assert sorted(server.deliveries()) == NUMBERS and set(server.deliveries().values()) == {1}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_a_send_whose_stdout_is_a_full_disk_is_one_line_and_exit_74(
    fake: FakeMMSServer, message: str
) -> None:
    env = child_env(MMSJSON_API_KEY=fake.api_key)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        child = await asyncio.create_subprocess_exec(
            *CLI, "send", "--base-url", fake.base_url, "--service-id", "1", "--sender", "12345",
            "--to", "17745559144", "--message", message,
            env=env, cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
        )
    finally:
        os.close(full)
    _, err = await child.communicate()
    assert child.returncode == 74, err
    assert "cannot write standard output" in one_line(err.decode())


def redirecting_to(location: bytes) -> Serve:
    """A media host that answers every request with a 302 to ``location`` and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    return serve


HOSTILE_LOCATIONS = [b"http://[::1", b"http://" + b"a" * 64 + b".example.com/a.jpg"]


@pytest.mark.parametrize("location", HOSTILE_LOCATIONS, ids=["broken-ipv6", "label-too-long"])
async def test_a_redirect_to_a_url_that_cannot_be_fetched_is_a_problem_not_an_exception(
    raw_server: Any, location: bytes
) -> None:
    check = await check_media(await raw_server(redirecting_to(location)), "image", fetch_seconds=5)
    assert not check.ok and "could not be fetched" in check.problems[0]


@pytest.mark.parametrize("url", ["http://" + "a" * 64 + ".example.com/a.jpg", "http://a..b/a.jpg"])
async def test_a_media_url_whose_host_cannot_be_looked_up_is_a_problem_not_an_exception(url: str) -> None:
    check = await check_media(url, "image", fetch_seconds=5)
    assert not check.ok and "could not be fetched" in check.problems[0]


async def test_check_media_with_a_hostile_redirect_exits_1_with_no_traceback(raw_server: Any) -> None:
    url = await raw_server(redirecting_to(HOSTILE_LOCATIONS[0]))
    code, out = await run("check-media", "--kind", "image", url)
    assert code == 1 and "could not be fetched" in out


def echoing_the_key() -> Serve:
    """An API that accepts every request with an answer echoing the key back."""
    body = json.dumps({
        "status": "success", "to": "17745550001", "tracking-id": f"T-{SECRET}",
        "status-details": f"queued for {SECRET}",
    }).encode()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return serve


async def test_an_answer_echoing_the_key_does_not_bring_it_into_the_output_of_send(
    raw_server: Any, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    url = await raw_server(echoing_the_key())
    code, out = await run("send", "--base-url", url, "--service-id", "1", "--sender", "12345",
                          "--to", "17745550001", "--message", message)
    assert code == 0 and "T-" in out
    assert SECRET not in out + capsys.readouterr().err


async def test_an_answer_echoing_the_key_does_not_bring_it_into_json_lines_or_the_report(
    raw_server: Any, message: str, people: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", SECRET)
    url = await raw_server(echoing_the_key())
    report = tmp_path / "report.csv"
    code, out = await run("bulk", "--base-url", url, "--service-id", "1", "--sender", "12345",
                          "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db"),
                          "--json", "--report", str(report))
    assert code == 0 and out.count('"status": "accepted"') == len(NUMBERS)
    assert SECRET not in out + capsys.readouterr().err + report.read_text(encoding="utf-8")


KEY = SECRET.encode()
ECHOING_REPLIES = {
    "long-header-line": b"HTTP/1.1 200 OK\r\nX-Echo: " + KEY * 400 + b"\r\n\r\n",
    "bad-status": b"HTTP/1.1 2000 " + KEY + b"\r\n\r\n",
    "bad-header": b"HTTP/1.1 200 OK\r\n" + KEY + b"\r\n\r\n",
    "bad-length": b"HTTP/1.1 200 OK\r\nContent-Length: " + KEY + b"\r\n\r\n",
    "not-http": KEY + b"\r\n\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + KEY + b"\r\n",
}


@pytest.mark.parametrize("reply", ECHOING_REPLIES.values(), ids=ECHOING_REPLIES.keys())
async def test_a_malformed_answer_echoing_the_key_leaves_it_out_of_the_error(
    raw_server: Any, reply: bytes
) -> None:
    error = await failure_of(await raw_server(answering(reply)))
    text = f"{error} {error!r}"
    assert SECRET not in text and "\n" not in text
    assert classify(error) is Verdict.UNKNOWN


async def test_a_media_host_answering_garbage_is_one_line_of_problem(raw_server: Any) -> None:
    url = await raw_server(answering_anything(b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n"))
    check = await check_media(url, "image", fetch_seconds=5)
    (problem,) = check.problems
    assert "could not be fetched" in problem and "\n" not in problem and len(problem) < 300


def answering_anything(reply: bytes) -> Serve:
    """A peer that reads a request head (a GET has no body), writes ``reply`` and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        finally:
            writer.close()

    return serve


def contents(files: dict[str, str]) -> dict[str, bytes]:
    return {name: Path(path).read_bytes() for name, path in files.items()}


@pytest.mark.parametrize("option", ["--csv", "--journal", "--message"])
async def test_a_report_naming_an_input_file_is_refused_before_anything_is_sent_or_overwritten(
    option: str, fake: FakeMMSServer, keyed: list[str], message: str, people: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    journal = tmp_path / "j.db"
    files = {"--csv": people, "--journal": str(journal), "--message": message}
    argv = ["bulk", *keyed, "--csv", people, "--message", message, "--journal", str(journal)]
    assert (await run(*argv))[0] == 0
    before = contents(files)
    sent = len(fake.arrivals)
    same = str(tmp_path / "." / Path(files[option]).relative_to(tmp_path))
    code, _ = await run(*argv, "--report", same)
    assert code == 2 and "--report: " in one_line(capsys.readouterr().err)
    assert contents(files) == before
    assert len(fake.arrivals) == sent


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_is_returned_as_it_is_and_never_followed_with_the_key(
    raw_server: Any, status: int
) -> None:
    reached: list[bytes] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.read(65536))
        writer.close()

    target = (await raw_server(elsewhere)).replace("127.0.0.1", "localhost").encode()
    reply = b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, target)
    transport = AiohttpTransport()
    try:
        answer = await transport.post(request(await raw_server(answering(reply))))
    finally:
        await transport.aclose()
    assert answer.status == status and not reached


async def exit_code_with(argv: list[str], env: dict[str, str], **streams: Any) -> int:
    child = await asyncio.create_subprocess_exec(*argv, env=env, cwd=ROOT, **streams)
    return await child.wait()


def broken_pipe() -> int:
    """The writing end of a pipe whose reader is gone, as ``| true`` leaves it."""
    reading, writing = os.pipe()
    os.close(reading)
    return writing


async def test_bad_input_exits_2_even_when_stderr_is_a_broken_pipe(message: str) -> None:
    env = child_env(MMSJSON_API_KEY=SECRET)
    writing = broken_pipe()
    try:
        code = await exit_code_with(
            [*CLI, "send", "--to", "17745559144", "--message", "/nonexistent/m.json"], env,
            stdout=subprocess.DEVNULL, stderr=writing,
        )
    finally:
        os.close(writing)
    assert code == 2


async def test_bad_input_exits_2_even_when_stderr_is_closed(message: str) -> None:
    env = child_env(MMSJSON_API_KEY=SECRET)
    code = await exit_code_with(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", *CLI, "send", "--to", "17745559144", "--message",
         "/nonexistent/m.json"], env, stdout=subprocess.DEVNULL,
    )
    assert code == 2


async def test_a_send_with_stdout_closed_exits_74_and_sends_nothing(
    fake: FakeMMSServer, message: str
) -> None:
    env = child_env(MMSJSON_API_KEY=fake.api_key)
    code = await exit_code_with(
        ["sh", "-c", 'exec "$@" >&-', "sh", *CLI, "send", "--base-url", fake.base_url,
         "--service-id", "1", "--sender", "12345", "--to", "17745559144", "--message", message],
        env, stderr=subprocess.PIPE,
    )
    assert code == 74 and not fake.arrivals


async def test_a_bulk_run_whose_stdout_and_stderr_are_one_broken_pipe_exits_74(
    fake: FakeMMSServer, message: str, people: str, tmp_path: Path
) -> None:
    env = child_env(MMSJSON_API_KEY=fake.api_key)
    writing = broken_pipe()
    try:
        code = await exit_code_with(
            [*CLI, "bulk", "--base-url", fake.base_url, "--service-id", "1", "--sender", "12345",
             "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db"), "--json"],
            env, stdout=writing, stderr=writing,
        )
    finally:
        os.close(writing)
    assert code == 74


async def test_a_journal_that_cannot_be_written_mid_run_stops_it_with_exit_74_and_a_resume_command(
    fake: FakeMMSServer, keyed: list[str], message: str, people: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    writes = 0
    sending = BulkJournal.sending

    async def disk_fills_up(self: BulkJournal, key: str, recipient: str) -> None:
        nonlocal writes
        writes += 1
        if writes > 3:
            raise sqlite3.OperationalError("database or disk is full")
        await sending(self, key, recipient)

    monkeypatch.setattr(BulkJournal, "sending", disk_fills_up)
    argv = ["bulk", *keyed, "--csv", people, "--message", message, "--journal", str(tmp_path / "j.db")]
    code, out = await run(*argv)
    printed = out + capsys.readouterr().err
    assert code == 74, printed
    assert "a bug in mmsjson" not in printed and "database or disk is full" in printed
    assert "to resume, run the same command again" in printed
    monkeypatch.setattr(BulkJournal, "sending", sending)
    assert (await run(*argv))[0] == 0
    assert sorted(fake.deliveries()) == NUMBERS and set(fake.deliveries().values()) == {1}

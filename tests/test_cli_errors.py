"""The mmsjson command never shows a traceback: bad input is one line on stderr and a documented exit code."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from mmsjson import BulkJournal
from mmsjson.cli import main
from mmsjson.flavours.json import dump_mms
from mmsjson.testing import FakeMMSServer
from tests.cli_support import CLI, ROOT, child_env, keyed_fixture, message_fixture, run  # noqa: F401 - fixtures
from tests.conftest import picture_mms


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def people(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("rate", ["0", "nan", "inf", "-5", "fast"])
def test_a_throughput_that_is_not_a_finite_rate_of_at_least_1_is_a_usage_error(
    rate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["send", "--to", "17745559144", "--message", "m.json", "--throughput", rate])
    assert info.value.code == 2
    assert "argument --throughput" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_the_fake_servers_throughput_must_be_a_whole_rate_of_at_least_1(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--throughput", "0"])
    assert info.value.code == 2
    assert "argument --throughput" in one_line(capsys.readouterr().err)


async def test_a_csv_field_over_the_csv_modules_limit_exits_2_and_sends_nothing(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = people(tmp_path, "17745550001,ok\n17745550002," + "x" * 129 * 1024 + "\n")
    code, _ = await run("bulk", *keyed, "--csv", csv, "--message", message, "--journal", str(tmp_path / "j.db"))
    assert code == 2 and not fake.arrivals
    assert "line 2: field larger than field limit" in one_line(capsys.readouterr().err)


async def test_a_csv_that_is_not_utf8_exits_2_naming_the_line(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = people(tmp_path, b"number,reference\n17745550001,caf\xe9\n")
    code, _ = await run("bulk", *keyed, "--csv", csv, "--message", message, "--journal", str(tmp_path / "j.db"))
    assert code == 2 and not fake.arrivals
    assert "is not UTF-8 text: byte 0xe9 (line 2)" in one_line(capsys.readouterr().err)


async def test_a_message_file_that_is_not_utf8_exits_2(
    keyed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{"slide": [{"message-text": "caf\xe9"}]}')
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 2 and "not UTF-8" in one_line(capsys.readouterr().err)


async def test_a_damaged_journal_exits_2_and_is_left_as_it_is(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "run.db"
    journal.write_bytes(b"not a database" * 100)
    csv = people(tmp_path, "17745550001\n")
    code, _ = await run("bulk", *keyed, "--csv", csv, "--message", message, "--journal", str(journal))
    assert code == 2 and not fake.arrivals
    assert "cannot use the journal" in one_line(capsys.readouterr().err)
    assert journal.read_bytes() == b"not a database" * 100


async def test_a_journal_held_by_another_run_exits_4_and_sends_nothing(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = str(tmp_path / "run.db")
    csv = people(tmp_path, "17745550001\n")
    with BulkJournal(journal):
        code, _ = await run("bulk", *keyed, "--csv", csv, "--message", message, "--journal", journal)
    assert code == 4 and not fake.arrivals
    assert "in use by another run" in one_line(capsys.readouterr().err)


async def test_a_lone_surrogate_in_the_message_exits_2(
    keyed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.json"
    document = dump_mms(picture_mms())
    document["message-subject"] = "Hi \ud800"
    path.write_text(json.dumps(document))
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 2 and "lone surrogate" in one_line(capsys.readouterr().err)


async def test_a_lone_surrogate_shared_by_every_bulk_row_exits_2_instead_of_rejecting_each_row(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = people(tmp_path, "17745550001\n17745550002\n")
    code, _ = await run(
        "bulk", *keyed, "--csv", csv, "--message", message, "--journal", str(tmp_path / "j.db"),
        "--client-reference", "ref-\udcff",
    )
    assert code == 2 and not fake.arrivals
    assert "lone surrogate" in one_line(capsys.readouterr().err)


async def test_a_message_file_with_a_byte_order_mark_is_read(
    keyed: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(dump_mms(picture_mms())), encoding="utf-8-sig")
    code, out = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 0 and json.loads(out)["status"] == "success"


async def test_a_csv_with_a_byte_order_mark_and_no_header_is_read(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("17745550001,a-1\n17745550002,a-2\n", encoding="utf-8-sig")
    code, _ = await run("bulk", *keyed, "--csv", str(csv), "--message", message, "--journal", str(tmp_path / "j.db"))
    assert code == 0
    assert sorted(fake.deliveries()) == ["17745550001", "17745550002"]


async def test_bulk_without_a_sender_is_a_usage_error_not_a_rejection_per_row(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without_sender = keyed[:-2]
    csv = people(tmp_path, "17745550001\n17745550002\n")
    code, out = await run(
        "bulk", *without_sender, "--csv", csv, "--message", message, "--journal", str(tmp_path / "j.db")
    )
    assert code == 2 and not fake.arrivals and not out
    assert "--sender: is required" in one_line(capsys.readouterr().err)


async def test_group_without_a_service_id_is_a_usage_error(
    fake: FakeMMSServer, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    monkeypatch.delenv("MMSJSON_SERVICE_ID", raising=False)
    code, _ = await run("group", "--base-url", fake.base_url, "--sender", "12345", "17745550001", "--message", message)
    assert code == 2 and not fake.arrivals
    assert "--service-id: is required" in one_line(capsys.readouterr().err)


async def test_an_unexpected_error_is_one_line_and_exit_70(
    keyed: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(path: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mmsjson.cli.read_message", broken)
    monkeypatch.delenv("MMSJSON_DEBUG", raising=False)
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", message)
    assert code == 70 and "unexpected RuntimeError: boom" in one_line(capsys.readouterr().err)


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bulk", "--message", "m.json"])
    assert info.value.code == 2
    assert "the following arguments are required: --csv" in one_line(capsys.readouterr().err)


async def test_bad_input_in_a_real_process_prints_no_traceback(
    fake: FakeMMSServer, message: str, tmp_path: Path
) -> None:
    env = child_env(MMSJSON_API_KEY=fake.api_key)
    remote = ["--base-url", fake.base_url, "--service-id", "1", "--sender", "12345"]
    big = people(tmp_path, "17745550001," + "x" * 129 * 1024 + "\n", "big.csv")
    latin = people(tmp_path, b"17745550001,caf\xe9\n", "latin.csv")
    cases = [
        ["bulk", *remote, "--csv", big, "--message", message, "--journal", str(tmp_path / "a.db")],
        ["bulk", *remote, "--csv", latin, "--message", message, "--journal", str(tmp_path / "b.db")],
        ["send", *remote, "--to", "17745559144", "--message", message, "--throughput", "nan"],
    ]
    for argv in cases:
        child = await asyncio.create_subprocess_exec(
            *CLI, *argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _, err = await child.communicate()
        assert child.returncode == 2, err
        one_line(err.decode())
    assert not fake.arrivals

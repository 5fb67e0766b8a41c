"""The mmsjson command: exit codes and output a shell script can rely on."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmsjson.cli import main
from mmsjson.testing import FakeMMSServer
from tests.cli_support import keyed_fixture, message_fixture, run  # noqa: F401 - fixtures


def test_demo_needs_no_account_and_shows_every_participant() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmsjson", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for number in ("17745550001", "17745550002", "17745550003", "17745550004"):
        assert done.stdout.count(f"{number}    accepted") == 2


async def test_send_prints_the_answer_and_exits_0(keyed: list[str], message: str) -> None:
    code, out = await run("send", *keyed, "--to", "+1 774 555 9144", "--message", message)
    assert code == 0 and json.loads(out)["status"] == "success"


async def test_a_bad_message_file_exits_2_and_sends_nothing(
    fake: FakeMMSServer, keyed: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"slide": [], "fallback-sms-text": "x"}))
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", str(path))
    assert code == 2 and not fake.arrivals


async def test_without_the_key_in_the_environment_it_exits_2(
    monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    monkeypatch.delenv("MMSJSON_API_KEY", raising=False)
    code, _ = await run("send", "--service-id", "1", "--sender", "12345", "--to", "17745559144", "--message", message)
    assert code == 2


def test_the_key_is_not_taken_as_an_argument() -> None:
    with pytest.raises(SystemExit) as info:
        main(["send", "--api-key", "secret", "--to", "1", "--message", "m.json"])
    assert info.value.code == 2


async def test_group_from_a_csv_reports_each_outcome(keyed: list[str], message: str, tmp_path: Path) -> None:
    people = tmp_path / "people.csv"
    people.write_text("number,name\n17745550001,Ann\n17745550002,Bob\n")
    report = tmp_path / "report.csv"
    code, out = await run("group", *keyed, "--csv", str(people), "--message", message, "--report", str(report))
    assert code == 0 and "accepted  2" in out
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert {(r["to"], r["status"]) for r in rows} == {("17745550001", "accepted"), ("17745550002", "accepted")}


async def test_a_lost_answer_in_a_group_exits_3(fake: FakeMMSServer, keyed: list[str], message: str) -> None:
    fake.inject_drop()
    code, out = await run("group", *keyed, "17745550001", "17745550002", "--message", message)
    assert code == 3 and "unknown" in out


async def test_an_unknown_template_exits_1(keyed: list[str]) -> None:
    code, _ = await run("send-saved", *keyed, "--mms-id", "404", "--to", "17745559144", "--text", "1=Hi")
    assert code == 1


async def test_save_then_send_saved_from_the_shell(fake: FakeMMSServer, keyed: list[str], message: str) -> None:
    code, out = await run("save", *keyed, "--name", "promo", "--message", message)
    mms_id = fake.mms_id_for(json.loads(out)["tracking-id"])
    assert code == 0 and mms_id
    code, out = await run("send-saved", *keyed, "--mms-id", mms_id, "--to", "17745559144", "--text", "1=Hi")
    assert code == 0 and json.loads(out)["mms-id"] == mms_id


async def test_a_journaled_group_rerun_sends_nobody_twice(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path
) -> None:
    journal = str(tmp_path / "group.db")
    argv = ["group", *keyed, "17745550001", "17745550002", "--message", message, "--journal", journal]
    first, _ = await run(*argv)
    again, out = await run(*argv)
    assert (first, again) == (0, 0)
    assert "2 of them recorded by an earlier run in the journal" in out
    assert sorted(fake.deliveries().values()) == [1, 1]


async def test_bulk_from_a_csv_with_a_journal(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text("number,reference\n17745550001,a-1\n17745550002,a-2\n")
    code, out = await run("bulk", *keyed, "--csv", str(people), "--message", message, "--journal", str(tmp_path / "b.db"))
    assert code == 0 and "accepted  2" in out
    assert {r.payload["client-reference"] for r in fake.accepted()} == {"a-1", "a-2"}


async def test_check_media_exits_1_when_a_url_would_be_refused() -> None:
    async with FakeMMSServer() as server:
        gone = server.base_url + "x.jpg"
    code, out = await run("check-media", gone, "--kind", "image")
    assert code == 1 and "refused" in out

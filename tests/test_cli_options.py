"""Command-line options for every documented request field: sender mask, template overrides, CSV columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mmsjson.cli import main
from mmsjson.testing import FakeMMSServer
from tests.cli_support import keyed_fixture, message_fixture, run  # noqa: F401 - fixtures


@pytest.fixture
async def template(fake: FakeMMSServer, keyed: list[str], message: str) -> str:
    code, out = await run("save", *keyed, "--name", "promo", "--message", message)
    mms_id = fake.mms_id_for(json.loads(out)["tracking-id"])
    assert code == 0 and mms_id
    fake.received.clear()
    return mms_id


def sends(fake: FakeMMSServer) -> list[dict[str, object]]:
    return sorted((r.payload for r in fake.accepted()), key=lambda p: str(p["to"]))


def test_a_from_mask_over_50_characters_is_refused_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["send", "--to", "17745559144", "--message", "m.json", "--from-mask", "x" * 51])
    assert info.value.code == 2
    assert "E115" in capsys.readouterr().err


async def test_send_passes_the_from_mask(fake: FakeMMSServer, keyed: list[str], message: str) -> None:
    code, _ = await run("send", *keyed, "--to", "17745559144", "--message", message, "--from-mask", "Pizza Co")
    assert code == 0 and sends(fake)[0]["from-mask"] == "Pizza Co"


async def test_send_saved_passes_the_from_mask_and_every_override(
    fake: FakeMMSServer, keyed: list[str], template: str
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    code, _ = await run(
        "send-saved", *keyed, "--mms-id", template, "--to", "17745559144", "--from-mask", "Pizza Co",
        "--subject", "Today only", "--fallback-sms-text", "See the menu", "--expires-at", expires.isoformat(),
        "--custom-text", "1=Hi Ann", "--text", "2=Bye",
    )
    assert code == 0
    sent = sends(fake)[0]
    assert sent["from-mask"] == "Pizza Co" and sent["message-subject"] == "Today only"
    assert sent["fallback-sms-text"] == "See the menu"
    assert datetime.fromisoformat(str(sent["mms-expiry-timestamp"])) == expires
    assert sent["custom-slides"] == [
        {"custom-message-text": "Hi Ann", "custom-slide": "1"},
        {"custom-message-text": "Bye", "custom-slide": "2"},
    ]


def test_an_expiry_without_a_timezone_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["send-saved", "--mms-id", "1", "--to", "17745559144", "--expires-at", "2026-12-01T09:00:00"])
    assert info.value.code == 2
    assert "has no timezone" in capsys.readouterr().err


async def test_group_with_a_template_passes_the_mask_and_overrides_to_every_participant(
    fake: FakeMMSServer, keyed: list[str], template: str
) -> None:
    code, _ = await run(
        "group", *keyed, "17745550001", "17745550002", "--mms-id", template, "--from-mask", "Pizza Co",
        "--subject", "Today only",
    )
    assert code == 0
    assert [(p["from-mask"], p["message-subject"]) for p in sends(fake)] == [("Pizza Co", "Today only")] * 2


async def test_template_overrides_with_a_message_file_are_a_usage_error(
    fake: FakeMMSServer, keyed: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run("group", *keyed, "17745550001", "--message", message, "--subject", "Hi")
    assert code == 2 and not fake.arrivals
    assert "--subject: applies to a saved template (--mms-id) only" in capsys.readouterr().err


def test_message_and_mms_id_are_mutually_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bulk", "--csv", "p.csv", "--journal", "j.db", "--message", "m.json", "--mms-id", "1"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


async def test_bulk_reads_the_optional_columns_of_each_row(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(
        "to,client_reference,from_mask,service_id,sender,name\n"
        "17745550001,r-1,Pizza Co,7,54321,Ann\n"
        "17745550002,,,,,Bob\n"
    )
    code, _ = await run(
        "bulk", *keyed, "--csv", str(csv), "--message", message, "--journal", str(tmp_path / "j.db"),
        "--from-mask", "Default Co", "--client-reference", "default",
    )
    assert code == 0
    first, second = sends(fake)
    assert (first["client-reference"], first["from-mask"], first["service-id"], first["from"]) == (
        "r-1", "Pizza Co", "7", "54321"
    )
    assert (second["client-reference"], second["from-mask"], second["service-id"], second["from"]) == (
        "default", "Default Co", "1", "12345"
    )


async def test_bulk_needs_no_sender_option_when_every_row_has_one(
    fake: FakeMMSServer, keyed: list[str], message: str, tmp_path: Path
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("number,sender\n17745550001,54321\n17745550002,12345\n")
    without_sender = keyed[:-2]
    code, _ = await run(
        "bulk", *without_sender, "--csv", str(csv), "--message", message, "--journal", str(tmp_path / "j.db")
    )
    assert code == 0 and sorted(str(p["from"]) for p in sends(fake)) == ["12345", "54321"]


async def test_bulk_with_a_template_passes_the_overrides(
    fake: FakeMMSServer, keyed: list[str], template: str, tmp_path: Path
) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("17745550001\n17745550002\n")
    code, _ = await run(
        "bulk", *keyed, "--csv", str(csv), "--mms-id", template, "--journal", str(tmp_path / "j.db"),
        "--custom-text", "1=Hello", "--fallback-sms-text", "See the menu",
    )
    assert code == 0
    assert [p["fallback-sms-text"] for p in sends(fake)] == ["See the menu"] * 2

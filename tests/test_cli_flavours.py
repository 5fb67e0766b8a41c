"""The command line sends through each wire flavour, with each flavour's credentials from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmsjson import MMS, Image, Slide, dump_mms
from mmsjson.testing import FakeMMSServer
from tests.cli_support import ENV_VARIABLES, message_fixture, run  # noqa: F401 - fixtures


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable in (*ENV_VARIABLES, "MMSJSON_SMS_REST_TOKEN", "MMSJSON_SERVICE_PLAN_ID"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


async def test_send_through_the_xml_flavour_posts_an_xml_document(
    fake: FakeMMSServer, clean_env: pytest.MonkeyPatch, message: str
) -> None:
    clean_env.setenv("MMSJSON_API_KEY", fake.api_key)
    code, _ = await run(
        "send", "--flavour", "xml", "--base-url", fake.xml_url, "--service-id", "1",
        "--sender", "12345", "--to", "17745559144", "--message", message,
    )
    assert code == 0
    assert [(r.flavour, r.status) for r in fake.received] == [("xml", "success")]


async def test_bulk_through_sms_rest_packs_the_rows_into_one_batch(
    fake: FakeMMSServer, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = tmp_path / "one-slide.json"
    message.write_text(json.dumps(dump_mms(MMS(
        slides=[Slide(text="Sale", image=Image("https://example.com/a.jpg"))], subject="Sale",
        fallback_sms_text="Sale",
    ))))
    clean_env.setenv("MMSJSON_SMS_REST_TOKEN", fake.api_key)
    clean_env.setenv("MMSJSON_SERVICE_PLAN_ID", fake.service_plan_id)
    people = tmp_path / "people.csv"
    people.write_text("17745550001\n17745550002\n17745550003\n")
    code, out = await run(
        "bulk", "--flavour", "sms-rest", "--base-url", fake.sms_rest_url, "--sender", "12345",
        "--csv", str(people), "--message", str(message), "--journal", f"{tmp_path}/run.db",
    )
    assert code == 0, out
    assert [r.flavour for r in fake.received] == ["sms_rest"]
    assert sorted(fake.deliveries()) == ["17745550001", "17745550002", "17745550003"]


async def test_the_sms_rest_flavour_names_the_missing_credential(
    clean_env: pytest.MonkeyPatch, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run(
        "send", "--flavour", "sms-rest", "--sender", "12345", "--to", "17745559144", "--message", message,
    )
    assert code == 2
    assert "MMSJSON_SMS_REST_TOKEN" in capsys.readouterr().err


async def test_the_flavour_demo_sends_one_message_through_all_three() -> None:
    code, out = await run("demo-flavours")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["json", "xml", "sms-rest"]

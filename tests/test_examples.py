"""The shipped examples run against the fake server, as a user would run them against the sandbox."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mmsjson import MMSClient, load_mms
from mmsjson.testing import FakeMMSServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MESSAGES = sorted((EXAMPLES / "messages").glob("*.json"))


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sandbox_env(fake: FakeMMSServer, monkeypatch: pytest.MonkeyPatch) -> FakeMMSServer:
    """The variables ``mmsjson sandbox`` tells a user to export."""
    monkeypatch.setenv("MMSJSON_API_KEY", fake.api_key)
    monkeypatch.setenv("MMSJSON_BASE_URL", fake.base_url)
    monkeypatch.setenv("MMSJSON_SERVICE_ID", "123")
    monkeypatch.setenv("MMSJSON_SENDER", "28444")
    return fake


def test_there_is_a_message_file_for_every_slide_kind() -> None:
    kinds = {key for path in MESSAGES for slide in json.loads(path.read_text())["slide"] for key in slide}
    assert {"image", "audio", "video", "contact", "calendar", "pdf"} <= kinds


@pytest.mark.parametrize("path", MESSAGES, ids=lambda path: path.stem)
async def test_every_message_file_is_accepted_by_the_fake_server(sandbox_env: FakeMMSServer, path: Path) -> None:
    mms = load_mms(json.loads(path.read_text("utf-8")))  # noqa: ASYNC240
    async with MMSClient(throughput=None) as client:
        sent = await client.send(mms, "17745559144")
    assert sent.tracking_id and sandbox_env.deliveries() == {"17745559144": 1}


async def test_the_web_handler_sends_and_answers_with_the_tracking_id(sandbox_env: FakeMMSServer) -> None:
    async with TestClient(TestServer(example("send_from_web_handler").make_app())) as http:
        answer = await http.post("/notify", data={"to": "+1 774 555 9144"})
        body: dict[str, Any] = await answer.json()
        refused = await http.post("/notify", data={"to": "0017745559144"})
    assert answer.status == 200 and body["tracking_id"]
    assert refused.status == 400
    assert sandbox_env.deliveries() == {"17745559144": 1}


async def test_the_bulk_example_sends_each_row_once_even_when_run_twice(
    sandbox_env: FakeMMSServer, tmp_path: Path
) -> None:
    bulk = example("bulk_with_journal")
    arguments = (EXAMPLES / "people.csv", EXAMPLES / "messages" / "picture.json", tmp_path / "run.db")
    first = await bulk.main(*arguments)
    second = await bulk.main(*arguments)
    assert first == second == {"accepted": 5}
    assert sorted(sandbox_env.deliveries().values()) == [1] * 5


async def test_the_postback_app_stores_and_answers_a_delivery_report(tmp_path: Path) -> None:
    postbacks = example("postback_app")
    app = postbacks.make_app(str(tmp_path / "postbacks.db"))
    report = {"origin": "MMS_MT", "code": "N102", "status": "delivered", "to": "17745559144",
              "from": "28444", "tracking-id": "T1", "timestamp": "2026-11-23T10:00:00Z"}
    async with TestClient(TestServer(app)) as http:
        answer = await http.post("/mms/postbacks", json=report)
        again = await http.post("/mms/postbacks", json=report)
        stored = await app[postbacks.RECEIVER].history()
    assert (answer.status, again.status) == (200, 200)
    assert [event.tracking_id for event in stored] == ["T1"]

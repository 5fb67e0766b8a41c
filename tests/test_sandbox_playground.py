"""The sandbox as a playground: postbacks like the service's, a line per request, faults over HTTP,
and the README's walk-through run command by command."""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mmsjson import DeliveryEvent, MMSClient, PostbackReceiver, TemplateEvent
from mmsjson.testing import FakeMMSServer
from tests.cli_support import ENV_VARIABLES, run
from tests.conftest import picture_mms

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[PostbackReceiver, str]]:
    async with PostbackReceiver(tmp_path / "postbacks.db") as rx:
        yield rx, await rx.start()


async def test_a_save_gets_its_template_id_in_an_n003_postback(receiver: tuple[PostbackReceiver, str]) -> None:
    rx, url = receiver
    async with FakeMMSServer(postback_url=url, postback_delay=0) as server, MMSClient(
        server.api_key, base_url=server.base_url, service_id="1", sender="28444", throughput=None
    ) as client:
        saved = await client.save(picture_mms(), name="promo")
        async with asyncio.timeout(10):
            mms_id = await rx.template_id(saved.tracking_id)
    assert mms_id == server.mms_id_for(saved.tracking_id)


async def test_an_accepted_send_gets_sent_then_delivered_postbacks(receiver: tuple[PostbackReceiver, str]) -> None:
    rx, url = receiver
    async with FakeMMSServer(postback_url=url, postback_delay=0) as server, MMSClient(
        server.api_key, base_url=server.base_url, service_id="1", sender="28444", throughput=None
    ) as client:
        sent = await client.send(picture_mms(), "17745559144", client_reference="order-7")
        events = rx.events()
        async with asyncio.timeout(10):
            first, second = await anext(events), await anext(events)
    assert isinstance(first, DeliveryEvent) and isinstance(second, DeliveryEvent)
    assert [(e.code, e.tracking_id, e.client_reference) for e in (first, second)] == [
        ("N101", sent.tracking_id, "order-7"), ("N102", sent.tracking_id, "order-7"),
    ]
    assert second.outcome == "delivered" and not isinstance(second, TemplateEvent)


async def test_a_postback_not_answered_200_is_sent_again() -> None:
    answers = [500, 200]
    got: list[str] = []
    answered_200 = asyncio.Event()

    async def flaky(request: web.Request) -> web.Response:
        got.append((await request.json())["code"])
        status = answers.pop(0) if answers else 200
        if status == 200:
            answered_200.set()
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/pb", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/pb"
    async with FakeMMSServer(postback_url=url, postback_delay=0, postback_retry_delay=0.01) as server, MMSClient(
        server.api_key, base_url=server.base_url, service_id="1", sender="28444", throughput=None
    ) as client:
        await client.save(picture_mms(), name="promo")
        async with asyncio.timeout(10):
            await answered_200.wait()
    await runner.cleanup()
    assert got == ["N003", "N003"]


async def test_each_request_is_logged_in_one_line() -> None:
    lines: list[str] = []
    async with FakeMMSServer(log=lines.append) as server, MMSClient(
        server.api_key, base_url=server.base_url, service_id="1", sender="28444", throughput=None
    ) as client:
        sent = await client.send(picture_mms(), "17745559144")
    assert len(lines) == 1
    assert re.fullmatch(rf"\d\d:\d\d:\d\d json sendmms to 17745559144 -> success {sent.tracking_id}", lines[0])


async def test_faults_can_be_queued_over_http(fake: FakeMMSServer) -> None:
    async with aiohttp.ClientSession() as http:
        url = fake.base_url.replace("/ep/v2/", "/_fake/faults")
        async with http.post(url, json={"kind": "e113", "count": 2}) as queued:
            assert queued.status == 200
        async with http.post(url, json={"kind": "meteor"}) as refused:
            assert refused.status == 400
    async with MMSClient(
        fake.api_key, base_url=fake.base_url, service_id="1", sender="28444", throughput=None
    ) as client:
        await client.send(picture_mms(), "17745559144")
        assert client.stats.throttled == 2


def walkthrough_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A first hour with the sandbox", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for line in block.splitlines() if line.startswith("mmsjson ")]


async def test_every_command_of_the_readme_walkthrough_runs_against_the_sandbox(
    receiver: tuple[PostbackReceiver, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rx, url = receiver
    commands = walkthrough_commands()
    assert commands[0].startswith("mmsjson sandbox ") and len(commands) >= 5
    async with FakeMMSServer(postback_url=url, postback_delay=0) as sandbox:
        for variable in ENV_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("MMSJSON_API_KEY", sandbox.api_key)
        monkeypatch.setenv("MMSJSON_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("MMSJSON_SERVICE_ID", "123")
        monkeypatch.setenv("MMSJSON_SENDER", "28444")
        monkeypatch.chdir(ROOT)
        for command in commands[1:]:
            code, _ = await run(*shlex.split(command)[1:])
            assert code == 0, command
        assert "template id (mms-id): 10001" in capsys.readouterr().err
        async with asyncio.timeout(10):
            template = await rx.template_id(sandbox.accepted("savemms")[0].tracking_id or "")
    assert template == "10001"
    assert sandbox.deliveries()["17745559144"] == 2

"""Adversarial review of the sandbox's control endpoints: a fault or reset it cannot honour is
refused with HTTP 400 when it is posted, never queued to break a later request with a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mmsjson import MMSClient, OutcomeStatus
from mmsjson.retry import RetryPolicy
from mmsjson.testing import FakeMMSServer
from tests.conftest import picture_mms


@pytest.fixture
async def server() -> AsyncIterator[FakeMMSServer]:
    async with FakeMMSServer() as fake:
        yield fake


async def post(server: FakeMMSServer, path: str, body: bytes) -> tuple[int, Any]:
    url = f"http://{server.host}:{server.port}{path}"
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as response:
        return response.status, await response.json(content_type=None)


async def send_one(server: FakeMMSServer) -> OutcomeStatus:
    async with MMSClient(
        server.api_key, base_url=server.base_url, service_id="1", sender="12345", throughput=None,
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        result = await client.send_group(picture_mms(), ["17745550001"])
    return result.outcomes[0].status


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "delay", "seconds": "soon"}',
        b'{"kind": "delay", "seconds": -1}',
        b'{"kind": "delay", "seconds": NaN}',
        b'{"kind": "delay", "seconds": true}',
        b'{"kind": "status", "http_status": "oops"}',
        b'{"kind": "status", "http_status": 42}',
        b'{"kind": "status", "http_status": 1000}',
        b'{"kind": "e113", "count": true}',
        b'{"kind": ["e113"]}',
    ],
)
async def test_a_fault_the_fake_cannot_honour_is_refused_when_posted(
    server: FakeMMSServer, body: bytes
) -> None:
    status, answer = await post(server, "/_fake/faults", body)
    assert status == 400 and "error" in answer
    assert await send_one(server) is OutcomeStatus.ACCEPTED


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"null", b'"kind"', b"{" * 5000])
async def test_a_fault_that_is_not_a_json_object_is_refused(server: FakeMMSServer, body: bytes) -> None:
    status, answer = await post(server, "/_fake/faults", body)
    assert status == 400 and "error" in answer


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b'{"throughput": "fast"}', b'{"throughput": 0}', b'{"throughput": 1.5}']
)
async def test_a_reset_the_fake_cannot_honour_is_refused_and_changes_nothing(
    server: FakeMMSServer, body: bytes
) -> None:
    status, answer = await post(server, "/_fake/reset", body)
    assert status == 400 and "error" in answer
    assert server.throughput is None
    assert await send_one(server) is OutcomeStatus.ACCEPTED


async def test_a_reset_with_a_whole_throughput_is_taken(server: FakeMMSServer) -> None:
    status, _ = await post(server, "/_fake/reset", b'{"throughput": 7}')
    assert status == 200 and server.throughput == 7


# -- the sandbox's postbacks against a receiver that redirects ------------------------------------


async def test_a_postback_answered_with_a_redirect_is_not_counted_delivered() -> None:
    from aiohttp import web

    from mmsjson.testing.postbacks import PostbackSender

    landed: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        landed.append(request.method)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_route("*", "/landing", landing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sender = PostbackSender(f"http://127.0.0.1:{port}/hook", delay=0, retry_delay=0)
    try:
        sender.accepted({"action": "sendmms", "to": "17745550001", "from": "12345"}, "T1", None)
        await asyncio.gather(*sender._tasks)
    finally:
        await sender.aclose()
        await runner.cleanup()
    assert (sender.delivered, sender.given_up) == (0, 2)
    assert landed == []

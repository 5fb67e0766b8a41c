from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mmsjson import MMS, Audio, Image, MMSClient, Slide
from mmsjson.testing import FakeMMSServer
from tests.schema import assert_valid_request

pytest_plugins = ["tests.redis_fixtures"]

SECRET = "sk-live-0123456789abcdef-SECRET"


def picture_mms(**overrides: Any) -> MMS:
    """A typical three-slide message."""
    fields: dict[str, Any] = {
        "slides": [
            Slide(text="Hello", image=Image("https://example.com/a.jpg")),
            Slide(text="Listen", audio=Audio("https://example.com/a.mp3")),
            Slide(text="Bye"),
        ],
        "subject": "Hi",
        "fallback_sms_text": "See the picture",
    }
    fields.update(overrides)
    return MMS(**fields)


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


@pytest.fixture
def mms() -> MMS:
    return picture_mms()


@pytest.fixture
async def fake() -> AsyncIterator[FakeMMSServer]:
    async with FakeMMSServer() as server:
        yield server
        for received in server.received:
            if received.flavour == "json" and isinstance(received.payload, dict):
                assert_valid_request(received.payload)


@pytest.fixture
def make_client(fake: FakeMMSServer) -> Callable[..., MMSClient]:
    def make(**options: Any) -> MMSClient:
        options.setdefault("throughput", None)
        options.setdefault("service_id", "123")
        options.setdefault("sender", "12345")
        return MMSClient(fake.api_key, base_url=fake.base_url, **options)

    return make


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``start(serve, ssl_context=None)`` runs ``serve`` (see ``tests/raw_http.py``) as a server on
    127.0.0.1 and returns its URL; every server is closed when the test ends."""
    servers: list[asyncio.Server] = []

    async def start(
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        ssl_context: ssl.SSLContext | None = None,
    ) -> str:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/ep/v2/"

    yield start
    for server in servers:
        server.close()

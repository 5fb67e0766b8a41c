"""Raw HTTP peers on loopback for the transport tests: servers that write exactly what a test gives.

The ``raw_server`` fixture (in ``conftest.py``) starts one per call of its ``start(serve)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from mmsjson.errors import TransportError
from mmsjson.transport import AiohttpTransport, PreparedRequest
from tests.conftest import SECRET

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def request(url: str) -> PreparedRequest:
    """A small ``sendmms`` request to ``url`` carrying the test key."""
    return PreparedRequest(
        url=url, body=b'{"action":"sendmms"}', headers={"x-api-key": SECRET},
        recipients=("17745559144",), action="sendmms",
    )


async def read_request(reader: asyncio.StreamReader) -> None:
    """Read one request, head and body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)


def answering(reply: bytes) -> Serve:
    """A peer that reads the request, writes ``reply`` as it is and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(reply)
            await writer.drain()
        finally:
            writer.close()

    return serve


async def failure_of(url: str) -> TransportError:
    """The :class:`TransportError` a fresh transport raises posting :func:`request` to ``url``."""
    transport = AiohttpTransport()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.post(request(url))
    finally:
        await transport.aclose()
    return caught.value

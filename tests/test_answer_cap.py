"""The answer cap bounds what the client holds, however the answer is framed or encoded."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from mmsjson import PreparedRequest
from mmsjson.transport import MAX_ANSWER_BYTES, AiohttpTransport
from tests.conftest import SECRET

BOMB = gzip.compress(b"x" * (64 * MAX_ANSWER_BYTES))


@pytest.fixture
async def compressed_url() -> AsyncIterator[str]:
    """A server answering with a small gzip body, with its true Content-Length, that inflates
    to 64 times the cap."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 400 X\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB)
            + BOMB
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ep/v2/"
    server.close()


async def test_a_compressed_answer_that_inflates_beyond_the_cap_is_read_only_up_to_it(
    compressed_url: str,
) -> None:
    assert len(BOMB) < MAX_ANSWER_BYTES
    transport = AiohttpTransport()
    raw = await transport.post(PreparedRequest(
        url=compressed_url, body=b"{}", headers={"x-api-key": SECRET},
        recipients=("17745559144",), action="sendmms",
    ))
    await transport.aclose()
    assert (raw.status, len(raw.body), raw.truncated) == (400, MAX_ANSWER_BYTES, True)

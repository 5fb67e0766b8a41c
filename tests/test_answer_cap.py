"""The answer cap bounds what the client holds, however the answer is framed or encoded."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable

import pytest

from mmsjson import PreparedRequest
from mmsjson.transport import MAX_ANSWER_BYTES, AiohttpTransport
from tests.conftest import SECRET
from tests.raw_http import Serve, answering

BOMB = gzip.compress(b"x" * (64 * MAX_ANSWER_BYTES))


@pytest.fixture
async def compressed_url(raw_server: Callable[[Serve], Awaitable[str]]) -> str:
    """A server answering with a small gzip body, with its true Content-Length, that inflates
    to 64 times the cap."""
    return await raw_server(answering(
        b"HTTP/1.1 400 X\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB) + BOMB
    ))


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

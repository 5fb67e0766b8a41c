"""The answer deadlines and a caller's own cancellation: neither is mistaken for the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mmsjson import TransportError
from mmsjson.retry import Verdict, classify
from mmsjson.transport import AiohttpTransport
from tests.raw_http import Serve, request


@pytest.fixture
async def hanging_url(raw_server: Callable[[Serve], Awaitable[str]]) -> str:
    """A server that reads the request and never answers."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.Event().wait()

    return await raw_server(serve)


async def test_a_caller_cancelling_as_the_read_deadline_expires_gets_its_cancellation(
    hanging_url: str,
) -> None:
    transport = AiohttpTransport(read_timeout=0.1, answer_timeout=30)
    deadlines = transport._deadlines
    original = deadlines._sweep
    post: asyncio.Task[Any] = asyncio.create_task(transport.post(request(hanging_url)))

    def sweep_then_caller_cancels(loop: asyncio.AbstractEventLoop) -> None:
        original(loop)
        if post in deadlines._expired:
            post.cancel()  # the caller's cancellation, in the same turn of the loop

    deadlines._sweep = sweep_then_caller_cancels  # type: ignore[method-assign]
    try:
        with pytest.raises(asyncio.CancelledError):
            await post
    finally:
        await transport.aclose()


@pytest.fixture
async def silent_tls_url(raw_server: Callable[[Serve], Awaitable[str]]) -> str:
    """A server that takes the TCP connection and never answers the TLS handshake."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    return (await raw_server(serve)).replace("http://", "https://", 1)


async def test_a_read_deadline_passing_while_the_connection_is_made_is_surely_not_sent(
    silent_tls_url: str,
) -> None:
    transport = AiohttpTransport(read_timeout=0.2, connect_timeout=30)
    try:
        with pytest.raises(TransportError) as info:
            await transport.post(request(silent_tls_url))
    finally:
        await transport.aclose()
    assert not info.value.outcome_unknown
    assert classify(info.value) is Verdict.RETRY

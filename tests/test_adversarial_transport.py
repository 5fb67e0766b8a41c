"""Adversarial review of AiohttpTransport against hostile peers on loopback: the answer deadline
must bound one answer and nothing else, and no broken answer may read as surely not accepted."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from mmsjson import TransportError
from mmsjson.retry import Verdict, classify
from mmsjson.transport import AiohttpTransport
from tests.conftest import SECRET
from tests.raw_http import answering, failure_of, read_request, request

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


def sweeps_done(transport: AiohttpTransport) -> asyncio.Event:
    """Set when the answer deadline's sweeper has run and stopped (nothing left to watch)."""
    deadlines = transport._deadlines
    original = deadlines._sweep
    done = asyncio.Event()

    def sweep(loop: asyncio.AbstractEventLoop) -> None:
        original(loop)
        if deadlines._sweeping is None:
            done.set()

    deadlines._sweep = sweep  # type: ignore[method-assign]
    return done


@pytest.mark.parametrize(
    "reply",
    [OK, b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n", b"garbage that is no HTTP\r\n\r\n"],
    ids=["answered", "refused", "garbage"],
)
async def test_the_answer_deadline_never_cancels_the_caller_after_the_post_returned(
    raw_server: Any, reply: bytes
) -> None:
    transport = AiohttpTransport(answer_timeout=2.0)
    done = sweeps_done(transport)
    url = await raw_server(answering(reply))

    async def caller() -> str:
        with contextlib.suppress(TransportError):
            await transport.post(request(url))
        await done.wait()
        return "carried on"

    try:
        assert await asyncio.create_task(caller()) == "carried on"
    finally:
        await transport.aclose()


async def test_a_caller_cancelling_a_later_post_is_not_taken_for_an_expired_answer(
    raw_server: Any,
) -> None:
    transport = AiohttpTransport(answer_timeout=2.0)
    done = sweeps_done(transport)
    url = await raw_server(answering(OK))
    hanging = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        hanging.set()
        await asyncio.Event().wait()

    slow_url = await raw_server(hang)

    async def caller() -> None:
        await transport.post(request(url))
        await done.wait()
        await transport.post(request(slow_url))

    task = asyncio.create_task(caller())
    waiter = asyncio.create_task(hanging.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), "the caller was cancelled by a deadline of a post long finished"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        waiter.cancel()
        await transport.aclose()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\":",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"sta",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"\x00\xff\x16\x03\x01",
    ],
    ids=["short-body", "cut-chunk", "bad-length", "bad-status", "headers-cut", "binary"],
)
async def test_a_broken_answer_after_the_request_was_sent_is_an_unknown_outcome(
    raw_server: Any, reply: bytes
) -> None:
    error = await failure_of(await raw_server(answering(reply)))
    assert classify(error) is Verdict.UNKNOWN
    assert SECRET not in f"{error} {error!r}"


async def test_a_reset_before_the_request_is_read_is_still_unknown_as_it_may_have_arrived(
    raw_server: Any,
) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    transport = AiohttpTransport()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.post(request(await raw_server(reset)))
    finally:
        await transport.aclose()
    assert classify(caught.value) is not Verdict.FINAL

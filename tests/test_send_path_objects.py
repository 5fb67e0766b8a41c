"""The send path's objects built by hand are what their constructors build (issue: the hot path)."""

from __future__ import annotations

import asyncio
import copy
import pickle
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson
import pytest

from mmsjson import MMS, ApiError, Slide, TransportError
from mmsjson.flavours import json as wire
from mmsjson.flavours.json import JsonFlavour, decode_answer
from mmsjson.transport import (
    USER_AGENT,
    AiohttpTransport,
    PreparedRequest,
    RawResponse,
    tls_context,
)
from tests.conftest import SECRET
from tests.raw_http import Serve, answering

FLAVOUR = JsonFlavour(SECRET, "http://127.0.0.1:9/ep/v2/")
MESSAGE = MMS(slides=[Slide(text="Hello")], fallback_sms_text="Hello")


def sendmms() -> PreparedRequest:
    return FLAVOUR.send(MESSAGE, "+1 774 555 9144", service_id="1", sender="12345")


def test_a_sendmms_request_equals_one_built_by_keyword() -> None:
    request = sendmms()
    built = PreparedRequest(
        url="http://127.0.0.1:9/ep/v2/", body=request.body, headers=request.headers,
        recipients=("17745559144",), action="sendmms",
    )
    assert (request == built, repr(request)) == (True, repr(built))
    assert (request.identity, request.cost) == (None, 1)


def test_a_sendmms_request_is_frozen_and_its_repr_shows_neither_key_nor_body() -> None:
    request = sendmms()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.body = b"{}"  # type: ignore[misc]
    assert SECRET not in repr(request)
    assert "17745559144" in repr(request)
    assert "Hello" not in repr(request)


def test_the_request_headers_cannot_be_changed_for_later_requests() -> None:
    headers = sendmms().headers
    with pytest.raises(TypeError):
        headers["x-api-key"] = "another"  # type: ignore[index]
    assert sendmms().headers["x-api-key"] == SECRET


def test_the_request_headers_read_as_the_plain_mapping_they_stand_for() -> None:
    assert dict(sendmms().headers) == {
        "x-api-key": SECRET,
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


def test_today_s_prepared_request_is_built_by_hand() -> None:
    assert wire._REQUEST_BY_HAND, "PreparedRequest changed: teach JsonFlavour.send the change"


ANSWERS: list[tuple[int, bytes, bool]] = [
    (200, b'{"status":"success","tracking-id":"T1"}', False),
    (200, b'{"status":"Success","tracking-id":"T1"}', False),
    (201, b'{"status":"success","tracking-id":"T1","to":"1"}', False),
    (200, b'{"status":"failure","error-code":"E113","error-info":"slow down"}', False),
    (200, b'["status","success"]', False),
    (200, b'{"status":"success"', False),
    (200, b'{"status":"success","tracking-id":"T1"}', True),
    (400, b'{"status":"success","tracking-id":"T1"}', False),
    (503, b"busy", False),
]


def _outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "answer", read()
    except (ApiError, TransportError) as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize(("status", "body", "truncated"), ANSWERS, ids=range(len(ANSWERS)))
def test_an_answer_reads_as_decode_answer_reads_it(status: int, body: bytes, truncated: bool) -> None:
    raw = RawResponse(status, body, 2.0, truncated)
    assert _outcome(lambda: FLAVOUR.read(raw)) == _outcome(
        lambda: decode_answer(status, body, 2.0, truncated=truncated)
    )


def test_a_success_answer_is_read_into_a_send_result() -> None:
    answer = FLAVOUR.read(RawResponse(200, orjson.dumps({"status": "success", "tracking-id": "T1"})))
    assert FLAVOUR.send_result(answer).tracking_id == "T1"





@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("", RawResponse(200, b'{"status":"success"}', None, False)),
        ("Retry-After: 7\r\n", RawResponse(200, b'{"status":"success"}', 7.0, False)),
    ],
)
async def test_the_transport_s_answer_equals_one_built_by_its_constructor(
    raw_server: Callable[[Serve], Awaitable[str]], head: str, expected: RawResponse
) -> None:
    body = b'{"status":"success"}'
    url = await raw_server(answering(
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body
    ))
    transport = AiohttpTransport()
    try:
        raw = await transport.post(attrs.evolve(sendmms(), url=url))
    finally:
        await transport.aclose()
    assert (raw, hash(raw), repr(raw)) == (expected, hash(expected), repr(expected))
    assert not transport._deadlines._heads and not transport._deadlines._bodies


def test_transports_given_no_tls_context_share_one_built_once() -> None:
    first, second = AiohttpTransport(), AiohttpTransport()
    assert first._ssl is second._ssl
    assert isinstance(first._ssl, ssl.SSLContext)
    assert first._ssl.minimum_version is ssl.TLSVersion.TLSv1_2
    assert first._ssl.verify_mode is ssl.CERT_REQUIRED


def test_tls_context_still_gives_a_fresh_context_a_caller_may_change() -> None:
    assert tls_context() is not tls_context()


def test_a_sendmms_request_can_be_copied_and_pickled_as_before() -> None:
    request = sendmms()
    for copied in (copy.deepcopy(request), pickle.loads(pickle.dumps(request))):  # noqa: S301
        assert copied == request
        assert copied.headers["x-api-key"] == SECRET


async def test_a_post_that_fails_leaves_no_deadline_behind() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    transport = AiohttpTransport()
    try:
        with pytest.raises(TransportError):
            await transport.post(attrs.evolve(sendmms(), url=url))
    finally:
        await transport.aclose()
    deadlines = transport._deadlines
    assert not (deadlines._heads or deadlines._bodies or deadlines._expired)


async def test_a_post_its_caller_cancels_leaves_no_deadline_behind() -> None:
    arrived = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        await reader.read()  # until the client drops the connection
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    transport = AiohttpTransport()
    try:
        post = asyncio.create_task(transport.post(attrs.evolve(sendmms(), url=url)))
        await arrived.wait()
        post.cancel()
        with pytest.raises(asyncio.CancelledError):
            await post
    finally:
        await transport.aclose()
        server.close()
    deadlines = transport._deadlines
    assert not (deadlines._heads or deadlines._bodies or deadlines._expired)

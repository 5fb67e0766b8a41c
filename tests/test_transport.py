"""AiohttpTransport against real servers on loopback: what a broken or hostile peer gets us."""

from __future__ import annotations

import asyncio
import socket
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
import trustme

from mmsjson import MMSClient, TransportError, ValidationError
from mmsjson.retry import Verdict, classify, parse_retry_after
from mmsjson.transport import MAX_ANSWER_BYTES, AiohttpTransport
from tests.conftest import SECRET
from tests.raw_http import read_request, request


def answer(status: int, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


async def test_a_refused_connection_surely_sent_nothing_and_may_be_retried() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = AiohttpTransport()
    with pytest.raises(TransportError) as info:
        await transport.post(request(f"http://127.0.0.1:{port}/"))
    await transport.aclose()
    assert classify(info.value) is Verdict.RETRY


async def test_a_connection_closed_after_the_request_is_an_unknown_outcome(raw_server: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    transport = AiohttpTransport()
    with pytest.raises(TransportError) as info:
        await transport.post(request(await raw_server(serve)))
    await transport.aclose()
    assert classify(info.value) is Verdict.UNKNOWN


async def test_a_trickled_answer_hits_the_answer_deadline_and_is_unknown(raw_server: Any) -> None:
    stop = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(1000):
            if stop.is_set():
                break
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.close()

    transport = AiohttpTransport(read_timeout=1.0, answer_timeout=0.2)
    with pytest.raises(TransportError, match="did not complete within 0.2 s") as info:
        await transport.post(request(await raw_server(serve)))
    stop.set()
    await transport.aclose()
    assert classify(info.value) is Verdict.UNKNOWN


@pytest.mark.parametrize("length_header", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_answer_is_read_only_up_to_the_cap(raw_server: Any, length_header: bool) -> None:
    huge = b"<html>" + b"x" * (4 * MAX_ANSWER_BYTES)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if length_header:
            writer.write(answer(400, huge))
        else:
            writer.write(b"HTTP/1.1 400 X\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(huge), 8192):
                part = huge[start:start + 8192]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    transport = AiohttpTransport()
    raw = await transport.post(request(await raw_server(serve)))
    await transport.aclose()
    assert (raw.status, len(raw.body), raw.truncated) == (400, MAX_ANSWER_BYTES, True)
    assert raw.body.startswith(b"<html>")


async def test_retry_after_is_read_in_seconds_and_as_an_http_date(raw_server: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(429, b"slow", "Retry-After: 7"))
        await writer.drain()
        writer.close()

    transport = AiohttpTransport()
    raw = await transport.post(request(await raw_server(serve)))
    await transport.aclose()
    assert raw.retry_after == 7.0
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("not a date") is None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    if maximum is not None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


async def ok_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await read_request(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    writer.write(answer(200, b'{"status":"success","tracking-id":"T1"}'))
    await writer.drain()
    writer.close()


async def test_an_untrusted_certificate_is_a_final_failure_that_says_so(raw_server: Any, ca: trustme.CA) -> None:
    url = await raw_server(ok_once, server_context(ca))
    transport = AiohttpTransport()
    with pytest.raises(TransportError, match="certificate was not accepted") as info:
        await transport.post(request(url))
    await transport.aclose()
    assert classify(info.value) is Verdict.FINAL


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
async def test_a_server_offering_only_tls_1_1_is_a_final_failure_that_names_the_version(
    raw_server: Any, ca: trustme.CA
) -> None:
    try:
        context = server_context(ca, maximum=ssl.TLSVersion.TLSv1_1)
    except ssl.SSLError:
        pytest.fail("this OpenSSL cannot serve TLS 1.1 even at security level 0")
    url = await raw_server(ok_once, context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    trusting.minimum_version = ssl.TLSVersion.TLSv1_2
    transport = AiohttpTransport(ssl=trusting)
    with pytest.raises(TransportError, match="TLS") as info:
        await transport.post(request(url))
    await transport.aclose()
    assert "TLS 1.2" in str(info.value)
    assert classify(info.value) is Verdict.FINAL


async def test_a_context_given_as_ssl_trusts_a_private_ca(raw_server: Any, ca: trustme.CA) -> None:
    url = await raw_server(ok_once, server_context(ca))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    transport = AiohttpTransport(ssl=trusting)
    assert (await transport.post(request(url))).status == 200
    await transport.aclose()


async def test_a_callers_session_keeps_its_own_tls_settings(raw_server: Any, ca: trustme.CA) -> None:
    url = await raw_server(ok_once, server_context(ca))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting)) as session:
        transport = AiohttpTransport(session=session)
        assert (await transport.post(request(url))).status == 200
        await transport.aclose()
        assert not session.closed


async def test_a_failure_chains_no_aiohttp_error_that_holds_the_headers(raw_server: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 2000 Garbage\r\nContent-Length: x\r\n\r\n")
        await writer.drain()
        writer.close()

    transport = AiohttpTransport()
    with pytest.raises(TransportError) as info:
        await transport.post(request(await raw_server(serve)))
    await transport.aclose()
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert SECRET not in repr(info.value.__dict__)


async def test_a_caller_cancelling_a_post_gets_a_cancellation_not_an_unknown_outcome(raw_server: Any) -> None:
    arrived = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await asyncio.sleep(30)

    transport = AiohttpTransport(answer_timeout=60)
    task = asyncio.create_task(transport.post(request(await raw_server(serve))))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await transport.aclose()


async def test_one_late_answer_expires_without_touching_a_prompt_one(raw_server: Any) -> None:
    first_arrived = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if not first_arrived.is_set():
            first_arrived.set()
            await asyncio.sleep(5)
        writer.write(answer(200, b'{"status":"success","tracking-id":"T1"}'))
        await writer.drain()
        writer.close()

    transport = AiohttpTransport(answer_timeout=0.3)
    url = await raw_server(serve)
    slow = asyncio.create_task(transport.post(request(url)))
    await first_arrived.wait()
    prompt = await transport.post(request(url))
    with pytest.raises(TransportError, match="did not complete"):
        await slow
    await transport.aclose()
    assert prompt.status == 200


async def test_an_answer_that_does_not_start_within_the_read_timeout_is_unknown(raw_server: Any) -> None:
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.close()

    transport = AiohttpTransport(read_timeout=0.1, answer_timeout=30)
    with pytest.raises(TransportError, match=r"within the read timeout \(0.1 s\)") as info:
        await transport.post(request(await raw_server(serve)))
    release.set()
    await transport.aclose()
    assert classify(info.value) is Verdict.UNKNOWN


async def test_once_the_answer_has_started_only_the_answer_timeout_bounds_it(raw_server: Any) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"status":"success","tracking-id":"T1"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        await writer.drain()
        await asyncio.sleep(0.3)  # a pause longer than the read timeout, within the answer's
        writer.write(body)
        await writer.drain()
        writer.close()

    transport = AiohttpTransport(read_timeout=0.1, answer_timeout=30)
    raw = await transport.post(request(await raw_server(serve)))
    await transport.aclose()
    assert (raw.status, raw.body) == (200, b'{"status":"success","tracking-id":"T1"}')


def test_a_transport_that_owns_its_session_serves_one_event_loop_after_another() -> None:
    transport = AiohttpTransport()

    async def post_once() -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(answer(200, b'{"status":"success","tracking-id":"T1"}'))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ep/v2/"
        try:
            return (await transport.post(request(url))).status
        finally:
            await transport.aclose()
            server.close()

    assert [asyncio.run(post_once()), asyncio.run(post_once())] == [200, 200]


@pytest.mark.parametrize(
    ("limit", "per_host", "expected"), [(4, 0, 4), (100, 2, 2), (0, 0, 64), (500, 0, 64)]
)
async def test_a_caller_session_keeps_requests_in_flight_within_its_pool(
    limit: int, per_host: int, expected: int
) -> None:
    """A request queued inside aiohttp for a pooled connection would have its answer deadline
    running while unsent, and could expire as an unknown outcome: the in-flight cap stays
    within the pool instead."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = MMSClient(SECRET, base_url="http://127.0.0.1:9/", throughput=None, session=session)
        assert client.max_in_flight == expected


async def test_an_explicit_max_in_flight_above_a_caller_sessions_pool_is_lowered_to_it() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:
        client = MMSClient(
            SECRET, base_url="http://127.0.0.1:9/", throughput=None, session=session, max_in_flight=200
        )
        assert client.max_in_flight == 8


@pytest.mark.parametrize("name", ["connect_timeout", "read_timeout", "answer_timeout"])
@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf"), True, "30"])
def test_a_timeout_that_is_not_a_positive_finite_number_of_seconds_is_refused_naming_it(
    name: str, seconds: object
) -> None:
    options: dict[str, Any] = {name: seconds}
    with pytest.raises(ValidationError, match=rf"^{name}: must be a positive, finite number of seconds"):
        MMSClient(SECRET, base_url="http://127.0.0.1:9/", throughput=None, **options)

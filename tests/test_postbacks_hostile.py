"""The postback receiver against clients that misbehave on the wire, spoken to over a raw socket.

A raw client decides exactly how a body is cut into TCP writes, so these tests can split a body
mid-token, stop sending, or never send a request at all. Between two writes the client lets the
event loop run (the server shares it), so the server reads each piece on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mmsjson.postbacks import DeliveryEvent, PostbackReceiver, UnparsedPostback

MT = {"origin": "MMS_MT", "code": "N102", "status": "delivered", "to": "17745559144", "from": "12345",
      "tracking-id": "T1", "client-reference": "order-7", "sent-as": "MMS", "timestamp": "2026-11-22T10:00:00Z"}
BOUND = 10.0  # a generous ceiling so a broken server fails the test instead of hanging it


async def let_the_server_run() -> None:
    """Yield to the event loop often enough for the server to read what was just sent."""
    for _ in range(20):
        await asyncio.sleep(0)


class RawClient:
    """One TCP connection speaking HTTP/1.1 by hand."""

    def __init__(self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.path = urlsplit(url).path
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(url, reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        await let_the_server_run()

    def head(self, headers: dict[str, str]) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def post_in_pieces(self, pieces: Sequence[bytes]) -> None:
        """Headers with the total Content-Length, then each piece as its own write."""
        await self.send(self.head({"Content-Length": str(sum(map(len, pieces)))}))
        for piece in pieces:
            await self.send(piece)

    async def post_chunked(self, pieces: Sequence[bytes]) -> None:
        """Headers without a length, then each piece as one chunk in its own write."""
        await self.send(self.head({"Transfer-Encoding": "chunked"}))
        for piece in pieces:
            await self.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        await self.send(b"0\r\n\r\n")

    async def response(self) -> tuple[int, bytes]:
        async with asyncio.timeout(BOUND):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), body

    async def closed_by_server(self) -> bool:
        """True once the server closes the connection (EOF or reset), reading and dropping any answer."""
        async with asyncio.timeout(BOUND):
            with contextlib.suppress(ConnectionResetError):
                while await self.reader.read(65536):
                    pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def split(body: bytes, pieces: int) -> list[bytes]:
    """``body`` cut into ``pieces`` parts of about equal size (cuts fall mid-token)."""
    step = -(-len(body) // pieces)
    return [body[i:i + step] for i in range(0, len(body), step)]


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[Any]:
    receivers: list[PostbackReceiver] = []

    async def start(**options: Any) -> tuple[PostbackReceiver, str]:
        receiver = PostbackReceiver(tmp_path / f"p{len(receivers)}.db", **options)
        receivers.append(receiver)
        return receiver, await receiver.start()

    yield start
    for receiver in receivers:
        await receiver.close()


@pytest.fixture
async def clients() -> AsyncIterator[Any]:
    opened: list[RawClient] = []

    async def connect(url: str) -> RawClient:
        opened.append(await RawClient.connect(url))
        return opened[-1]

    yield connect
    for client in opened:
        await client.close()


# -- 1. bodies that arrive in several reads ------------------------------------------------------


async def test_a_body_arriving_in_several_writes_is_read_whole_stored_and_answered_200(
    started: Any, clients: Any,
) -> None:
    rx, url = await started()
    client = await clients(url)
    await client.post_in_pieces(split(json.dumps(MT).encode(), 5))
    assert (await client.response())[0] == 200
    assert [e.tracking_id for e in await rx.history()] == ["T1"]


async def test_a_chunked_body_without_a_length_is_read_whole(started: Any, clients: Any) -> None:
    rx, url = await started()
    client = await clients(url)
    await client.post_chunked(split(json.dumps(MT).encode(), 4))
    assert (await client.response())[0] == 200
    assert rx.stored == 1


async def test_a_body_of_exactly_the_cap_trickled_byte_by_byte_is_accepted(started: Any, clients: Any) -> None:
    body = json.dumps(MT).encode()
    rx, url = await started(max_body=len(body))
    client = await clients(url)
    await client.post_in_pieces(split(body, len(body)))
    assert (await client.response())[0] == 200
    assert rx.stored == 1


async def test_a_declared_length_over_the_cap_gets_413_before_any_body_is_sent(
    started: Any, clients: Any,
) -> None:
    rx, url = await started(max_body=1024)
    client = await clients(url)
    await client.send(client.head({"Content-Length": "1025"}))
    assert (await client.response())[0] == 413
    assert rx.stored == 0


async def test_a_chunked_body_that_grows_over_the_cap_gets_413_and_is_not_stored(
    started: Any, clients: Any,
) -> None:
    rx, url = await started(max_body=1024)
    client = await clients(url)
    await client.post_chunked(split(json.dumps({**MT, "pad": "x" * 2000}).encode(), 6))
    assert (await client.response())[0] == 413
    assert (await rx.history(), await rx.unparsed()) == ([], [])


async def test_a_body_that_stops_arriving_gets_408_at_the_deadline_and_nothing_half_read_is_stored(
    started: Any, clients: Any,
) -> None:
    rx, url = await started(body_timeout=0.2)
    client = await clients(url)
    body = json.dumps(MT).encode()
    await client.send(client.head({"Content-Length": str(len(body))}))
    await client.send(body[:20])
    assert (await client.response())[0] == 408
    assert (await rx.history(), await rx.unparsed()) == ([], [])


async def test_the_receiver_answers_others_while_one_body_trickles(started: Any, clients: Any) -> None:
    rx, url = await started()
    slow, fast = await clients(url), await clients(url)
    body = json.dumps({**MT, "tracking-id": "slow"}).encode()
    await slow.send(slow.head({"Content-Length": str(len(body))}))
    await slow.send(body[:10])
    await fast.post_in_pieces([json.dumps(MT).encode()])
    assert (await fast.response())[0] == 200
    await slow.send(body[10:])
    assert (await slow.response())[0] == 200
    assert sorted(e.tracking_id or "" for e in await rx.history()) == ["T1", "slow"]


# -- 2. bodies that are odd, deep or not notifications at all ------------------------------------

LONE_SURROGATE = b'{"origin": "MMS_MT", "code": "N102", "tracking-id": "T9", "status-details": "\\ud83d"}'


async def test_a_lone_surrogate_escape_is_stored_answered_200_and_handed_over(
    started: Any, clients: Any,
) -> None:
    rx, url = await started()
    events = rx.events()
    client = await clients(url)
    await client.post_in_pieces(split(LONE_SURROGATE, 3))
    assert (await client.response())[0] == 200
    async with asyncio.timeout(BOUND):
        event = await anext(events)
    assert isinstance(event, DeliveryEvent)
    assert (event.tracking_id, event.status_details) == ("T9", "\ud83d")
    assert [e.tracking_id for e in await rx.history()] == ["T9"]


async def test_a_lone_surrogate_delivered_again_is_recognised_as_a_duplicate(started: Any, clients: Any) -> None:
    rx, url = await started()
    for _ in range(2):
        client = await clients(url)
        await client.post_in_pieces(split(LONE_SURROGATE, 2))
        assert (await client.response())[0] == 200
    assert (rx.stored, rx.duplicates) == (1, 1)


async def test_a_lone_surrogate_in_the_tracking_id_is_stored_and_the_event_keeps_it(
    started: Any, clients: Any,
) -> None:
    rx, url = await started()
    events = rx.events()
    client = await clients(url)
    await client.post_in_pieces([b'{"code": "N101", "tracking-id": "T\\udc00", "client-reference": "\\ud800"}'])
    assert (await client.response())[0] == 200
    async with asyncio.timeout(BOUND):
        event = await anext(events)
    assert isinstance(event, DeliveryEvent)
    assert (event.tracking_id, event.client_reference) == ("T\udc00", "\ud800")
    assert rx.stored == 1


async def test_five_thousand_deep_nesting_is_kept_for_the_operator_and_answered_400(
    started: Any, clients: Any,
) -> None:
    rx, url = await started()
    body = b'{"code": "N102", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    client = await clients(url)
    await client.post_in_pieces(split(body, 4))
    assert (await client.response())[0] == 400
    (kept,) = await rx.unparsed()
    assert isinstance(kept, UnparsedPostback)
    assert (kept.body, kept.remote) == (body, "127.0.0.1")
    assert "deep" in kept.problem
    assert await rx.history() == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<xml>nope</xml>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"code": "\xff\xfe"}', "not JSON"),
        (b"", "not JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not JSON"),
    ],
    ids=["xml", "array", "bad-utf8", "empty", "huge-integer"],
)
async def test_a_body_that_is_no_notification_is_kept_with_its_problem_and_answered_400(
    started: Any, clients: Any, body: bytes, problem: str,
) -> None:
    rx, url = await started()
    client = await clients(url)
    await client.post_in_pieces(split(body, 2) if body else [])
    assert (await client.response())[0] == 400
    (kept,) = await rx.unparsed()
    assert kept.body == body
    assert problem in kept.problem


async def test_a_garbage_body_posted_again_is_kept_once_and_never_reaches_the_events(
    started: Any, clients: Any,
) -> None:
    rx, url = await started()
    statuses = []
    for _ in range(3):
        client = await clients(url)
        await client.post_in_pieces([b"not json"])
        statuses.append((await client.response())[0])
    assert statuses == [400, 400, 400]
    assert (len(await rx.unparsed()), await rx.history(), rx.stored) == (1, [], 0)


async def test_unparsed_bodies_are_listed_after_an_id_like_history(started: Any, clients: Any) -> None:
    rx, url = await started()
    for body in (b"one", b"two"):
        client = await clients(url)
        await client.post_in_pieces([body])
        await client.response()
    first, second = await rx.unparsed()
    assert [u.body for u in await rx.unparsed(since_id=first.id)] == [second.body]


# -- 3. idle connections --------------------------------------------------------------------------


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    started: Any, clients: Any,
) -> None:
    _, url = await started(idle_timeout=0.2)
    client = await clients(url)
    assert await client.closed_by_server()


async def test_a_connection_that_sends_half_its_headers_is_closed_after_the_idle_timeout(
    started: Any, clients: Any,
) -> None:
    _, url = await started(idle_timeout=0.2)
    client = await clients(url)
    await client.send(b"POST /postbacks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    assert await client.closed_by_server()


async def test_a_kept_alive_connection_is_closed_when_idle_after_its_request(started: Any, clients: Any) -> None:
    rx, url = await started(idle_timeout=0.2)
    client = await clients(url)
    await client.post_in_pieces([json.dumps(MT).encode()])
    assert (await client.response())[0] == 200
    assert await client.closed_by_server()
    assert rx.stored == 1


@pytest.mark.parametrize("option", ["idle_timeout", "body_timeout", "max_body"])
@pytest.mark.parametrize("value", [0, -1])
def test_limits_must_be_positive(tmp_path: Path, option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        PostbackReceiver(tmp_path / "p.db", **{option: value})  # type: ignore[arg-type]


# -- storage ---------------------------------------------------------------------------------------


async def test_a_store_that_cannot_write_answers_503_so_the_service_retries(started: Any, clients: Any) -> None:
    rx, url = await started()
    rx._store.close()
    client = await clients(url)
    await client.post_in_pieces([json.dumps(MT).encode()])
    assert (await client.response())[0] == 503

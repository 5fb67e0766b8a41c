"""Review of the postback receiver against peers and deployments that break its promises.

Each test here failed before its fix: a body nested deep enough to parse only at some stack depths,
a peer seen through a dual-stack socket, a client address that SQLite cannot hold as text, and
the URL of a receiver started on an IPv6 address, an ``on_event`` that cannot be called, a
store file damaged inside, and waits given up that stayed registered.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mmsjson import StoreError, ValidationError
from mmsjson.postbacks import Postback, PostbackReceiver

MT = {"origin": "MMS_MT", "code": "N102", "status": "delivered", "to": "17745559144", "from": "12345",
      "tracking-id": "T1", "client-reference": "order-7", "sent-as": "MMS", "timestamp": "2026-11-22T10:00:00Z"}
BOUND = 10.0


def nested(depth: int) -> bytes:
    """A notification carrying a field nested ``depth`` arrays deep (Python's json parses it)."""
    return b'{"code": "N102", "tracking-id": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[PostbackReceiver, str]]:
    async with PostbackReceiver(tmp_path / "p.db") as rx:
        yield rx, await rx.start()


async def post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        return response.status


async def from_a_deep_stack(frames: int, call: Callable[[], Awaitable[list[Postback]]]) -> list[Postback]:
    """``call()`` awaited ``frames`` coroutine frames down, as from deep inside an application."""
    if frames == 0:
        return await call()
    return await from_a_deep_stack(frames - 1, call)


# -- nesting: what is stored must be readable again from any caller ------------------------------


async def test_a_body_nested_hundreds_deep_is_kept_for_the_operator_not_stored_as_a_notification(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    assert await post(url, nested(300)) == 400
    (kept,) = await rx.unparsed()
    assert "deep" in kept.problem
    assert await rx.history() == []


async def test_history_reads_from_a_deep_call_stack_after_a_peer_posted_a_deeply_nested_body(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    await post(url, nested(900))
    assert await post(url, json.dumps(MT).encode()) == 200
    history = await from_a_deep_stack(150, rx.history)
    assert [e.tracking_id for e in history] == ["T1"]


async def test_a_notification_nested_as_deep_as_the_spec_allows_is_stored(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    body = {"origin": "MMS_MO", "code": "N401", "from": "17745550001", "tracking-id": "mo1",
            "content": [{"file": "https://files.example/1.jpg"}], "copy-to": [{"number": "10000123434"}],
            "extra": {"a": {"b": [{"c": [1]}]}}}
    assert await post(url, json.dumps(body).encode()) == 200
    assert [e.tracking_id for e in await rx.history()] == ["mo1"]


# -- where a postback comes from ------------------------------------------------------------------


@pytest.fixture
async def dual_stack_url(tmp_path: Path) -> AsyncIterator[Callable[[PostbackReceiver], Awaitable[str]]]:
    """Serve a receiver on an IPv6 socket that also takes IPv4 (as gunicorn's ``[::]`` does), bound
    to loopback only: an IPv4 peer is seen as ``::ffff:127.0.0.1``."""
    runners: list[web.AppRunner] = []

    async def serve(rx: PostbackReceiver) -> str:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::ffff:127.0.0.1", 0))
        except OSError as exc:
            pytest.skip(f"no dual-stack IPv6 socket here: {exc}")
        runner = web.AppRunner(rx.app())
        await runner.setup()
        runners.append(runner)
        await web.SockSite(runner, sock).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}/postbacks"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_an_allowed_ipv4_peer_seen_through_a_dual_stack_socket_is_accepted(
    tmp_path: Path, dual_stack_url: Callable[[PostbackReceiver], Awaitable[str]],
) -> None:
    async with PostbackReceiver(tmp_path / "p.db", allow_from=["127.0.0.0/8"]) as rx:
        assert await post(await dual_stack_url(rx), json.dumps(MT).encode()) == 200
        assert rx.stored == 1


async def test_a_peer_outside_the_allowlist_seen_through_a_dual_stack_socket_is_still_refused(
    tmp_path: Path, dual_stack_url: Callable[[PostbackReceiver], Awaitable[str]],
) -> None:
    async with PostbackReceiver(tmp_path / "p.db", allow_from=["203.0.113.0/24"]) as rx:
        assert await post(await dual_stack_url(rx), json.dumps(MT).encode()) == 403
        assert rx.stored == 0


async def test_a_client_address_taken_from_a_header_with_invalid_utf8_is_stored_not_answered_500(
    tmp_path: Path,
) -> None:
    """A proxy setup often sets ``request.remote`` from ``X-Real-IP``; aiohttp reads a header's
    bytes that are not UTF-8 as lone surrogates, which SQLite cannot store as text."""

    @web.middleware
    async def real_ip(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        remote = request.headers.get("X-Real-IP")
        return await handler(request if remote is None else request.clone(remote=remote))

    async with PostbackReceiver(tmp_path / "p.db") as rx:
        app = web.Application(middlewares=[real_ip])
        app.router.add_post("/postbacks", rx.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
            body = json.dumps(MT).encode()
            writer.write(
                b"POST /postbacks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Real-IP: 10.0.0.\xff\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            async with asyncio.timeout(BOUND):
                status_line = await reader.readline()
            writer.close()
            assert status_line.split()[1] == b"200"
            assert [e.tracking_id for e in await rx.history()] == ["T1"]
        finally:
            await runner.cleanup()


async def test_the_url_of_a_receiver_started_on_an_ipv6_address_can_be_posted_to(tmp_path: Path) -> None:
    async with PostbackReceiver(tmp_path / "p.db") as rx:
        try:
            url = await rx.start(host="::1")
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        assert await post(url, json.dumps(MT).encode()) == 200
        assert rx.stored == 1


# -- the application's callback -------------------------------------------------------------------


async def test_an_on_event_that_is_a_coroutine_not_a_function_is_refused_naming_it(tmp_path: Path) -> None:
    async def handle(event: Postback) -> None:
        pass

    coroutine = handle(None)  # type: ignore[arg-type]  # the mistake: called instead of passed
    try:
        with pytest.raises(ValidationError, match="on_event") as refused:
            PostbackReceiver(tmp_path / "p.db", on_event=coroutine)  # type: ignore[arg-type]
        assert refused.value.path == "on_event"
        assert not (tmp_path / "p.db").exists()
    finally:
        coroutine.close()


# -- the store ------------------------------------------------------------------------------------


async def test_a_store_damaged_inside_is_refused_when_the_receiver_is_made_not_answered_200_into(
    tmp_path: Path,
) -> None:
    """A page overwritten (a disk that lied about a write) leaves the header intact: without a
    check, postbacks got 200 while history() failed with "database disk image is malformed"."""
    path = tmp_path / "p.db"
    async with PostbackReceiver(path) as rx:
        url = await rx.start()
        for i in range(200):
            await post(url, json.dumps({**MT, "tracking-id": f"T{i}", "pad": "x" * 200}).encode())
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size, pages = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
    with path.open("r+b") as file:
        file.seek(page_size * (pages // 2))
        file.write(b"\xff" * page_size)
    with pytest.raises(StoreError, match="damaged"):
        PostbackReceiver(path)


# -- waiting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("given_up", ["while it looks for a stored event", "while it waits for one"])
async def test_a_wait_for_given_up_leaves_no_waiter_behind(
    receiver: tuple[PostbackReceiver, str], given_up: str,
) -> None:
    """An application waiting (with a timeout) for each message's first postback must not grow
    the receiver by one entry for every message whose postback never came."""
    rx, _ = receiver
    waiting = asyncio.create_task(rx.wait_for(tracking_id="never"))
    await asyncio.sleep(0)  # the task starts and asks the store for a stored event
    if given_up == "while it waits for one":
        await rx.history()  # the store answered the task's question before this one
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert rx._waiters == {}

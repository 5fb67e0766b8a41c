"""Review of the postback receiver against peers and deployments that break its promises.

Each test here failed before its fix: a body nested deep enough to parse only at some stack depths.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

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

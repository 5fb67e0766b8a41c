"""The postback receiver on a real loopback server: store first, answer 200, hand over once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mmsjson import TemplateError
from mmsjson.postbacks import DeliveryEvent, InboundEvent, Postback, PostbackReceiver, TemplateEvent

MT = {"origin": "MMS_MT", "code": "N102", "status": "delivered", "to": "17745559144", "from": "12345",
      "tracking-id": "T1", "client-reference": "order-7", "sent-as": "MMS", "timestamp": "2026-11-22T10:00:00Z"}
MO = {"origin": "MMS_MO", "code": "N401", "from": "17745550001", "to": "18885551234", "tracking-id": "mo1",
      "timestamp": "2026-11-22T10:00:00Z", "message-subject": "Question",
      "content": [{"file": "https://files.example/1.jpg"}], "copy-to": [{"number": "10000123434"}]}


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[PostbackReceiver, str]]:
    receiver = PostbackReceiver(tmp_path / "postbacks.db")
    url = await receiver.start()
    yield receiver, url
    await receiver.close()


async def post(url: str, body: Any, session: aiohttp.ClientSession | None = None) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await post(url, data, own)
    async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
        return response.status


async def test_a_delivery_report_is_stored_answered_and_handed_over(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    events = rx.events()
    assert await post(url, MT) == 200
    event = await anext(events)
    assert isinstance(event, DeliveryEvent)
    assert (event.code, event.tracking_id, event.client_reference, event.failed) == ("N102", "T1", "order-7", False)


async def test_an_inbound_group_reply_carries_files_and_the_other_participants(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    events = rx.events()
    await post(url, MO)
    event = await anext(events)
    assert isinstance(event, InboundEvent)
    assert (event.sender, event.files, event.copy_to) == (
        "17745550001", ("https://files.example/1.jpg",), ("10000123434",),
    )


async def test_a_postback_delivered_again_is_answered_200_and_handed_over_once(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    events = rx.events()
    assert [await post(url, MT), await post(url, MT)] == [200, 200]
    first = await anext(events)
    assert isinstance(first, DeliveryEvent) and first.tracking_id == MT["tracking-id"]
    assert (rx.stored, rx.duplicates, rx._queue.qsize() if rx._queue else 0) == (1, 1, 0)


async def test_garbage_gets_400_and_the_receiver_keeps_working(receiver: tuple[PostbackReceiver, str]) -> None:
    rx, url = receiver
    assert await post(url, b"<xml>nope</xml>") == 400
    assert await post(url, b"[1, 2]") == 400
    assert await post(url, MT) == 200
    assert rx.stored == 1


async def test_a_body_over_the_cap_gets_413(tmp_path: Path) -> None:
    async with PostbackReceiver(tmp_path / "p.db", max_body=1024) as rx:
        url = await rx.start()
        assert await post(url, {**MT, "pad": "x" * 2048}) == 413


async def test_a_source_outside_the_allowlist_gets_403(tmp_path: Path) -> None:
    async with PostbackReceiver(tmp_path / "p.db", allow_from=["203.0.113.0/24"]) as rx:
        url = await rx.start()
        assert await post(url, MT) == 403
        assert rx.stored == 0


async def test_a_storm_of_thousands_each_posted_twice_yields_each_event_once_all_answered_200(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    bodies = [{**MT, "tracking-id": f"T{i}"} for i in range(2000)] * 2
    slowest = 0.0
    statuses: list[int] = []

    async def one(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        nonlocal slowest
        started = time.perf_counter()
        statuses.append(await post(url, body, session))
        slowest = max(slowest, time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        await asyncio.gather(*(one(session, body) for body in bodies))
    history = await rx.history()
    assert statuses == [200] * 4000
    assert slowest < 10.0, "the service wants every answer within 10 seconds"
    assert sorted(e.tracking_id or "" for e in history) == sorted(f"T{i}" for i in range(2000))
    assert (rx.stored, rx.duplicates) == (2000, 2000)


async def test_what_was_stored_survives_a_restart_and_is_still_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with PostbackReceiver(path) as first:
        await post(await first.start(), MT)
    async with PostbackReceiver(path) as second:
        url = await second.start()
        assert [e.tracking_id for e in await second.history()] == ["T1"]
        await post(url, MT)
        assert (second.stored, second.duplicates) == (0, 1)


async def test_a_redelivery_serialised_differently_is_still_a_duplicate(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    assert await post(url, json.dumps(MT).encode()) == 200
    assert await post(url, json.dumps(dict(reversed(MT.items())), indent=2).encode()) == 200
    assert (rx.stored, rx.duplicates) == (1, 1)


async def test_a_postback_stored_by_version_0_1_0_is_recognised_when_delivered_again(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with PostbackReceiver(path):
        pass
    canonical = json.dumps(MT, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "INSERT INTO postbacks (digest, received_at, tracking_id, body) VALUES (?, 0, 'T1', ?)",
            (hashlib.sha256(canonical.encode()).hexdigest(), json.dumps(MT).encode()),
        )
    async with PostbackReceiver(path) as rx:
        assert await post(await rx.start(), MT) == 200
        assert (rx.stored, rx.duplicates) == (0, 1)


async def test_waiting_for_a_tracking_id_that_already_arrived_returns_it(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    await post(url, MT)
    async with asyncio.timeout(5):
        assert (await rx.wait_for(tracking_id="T1")).code == "N102"


async def test_waiting_for_a_client_reference_returns_when_it_arrives(
    receiver: tuple[PostbackReceiver, str],
) -> None:
    rx, url = receiver
    waiting = asyncio.create_task(rx.wait_for(client_reference="order-7"))
    await asyncio.sleep(0)
    await post(url, MT)
    async with asyncio.timeout(5):
        assert (await waiting).tracking_id == "T1"


async def test_a_saved_templates_id_arrives_in_its_n003(receiver: tuple[PostbackReceiver, str]) -> None:
    rx, url = receiver
    await post(url, {"code": "N003", "tracking-id": "S1", "mms-id": "35674", "status": "success"})
    async with asyncio.timeout(5):
        assert await rx.template_id("S1") == "35674"
    assert isinstance((await rx.history())[0], TemplateEvent)


async def test_a_failed_template_raises(receiver: tuple[PostbackReceiver, str]) -> None:
    rx, url = receiver
    await post(url, {"code": "E003", "tracking-id": "S2", "status-details": "video transcoding failed"})
    with pytest.raises(TemplateError):
        async with asyncio.timeout(5):
            await rx.template_id("S2")


async def test_an_async_callback_gets_each_event(tmp_path: Path) -> None:
    got: list[Postback] = []

    async def on_event(event: Postback) -> None:
        got.append(event)

    async with PostbackReceiver(tmp_path / "p.db", on_event=on_event) as rx:
        url = await rx.start()
        await post(url, MT)
        await post(url, MO)
    assert [e.code for e in got] == ["N102", "N401"]


async def test_a_blocking_sync_callback_does_not_delay_the_200(tmp_path: Path) -> None:
    release = threading.Event()
    released: list[bool] = []

    def on_event(event: Postback) -> None:
        released.append(release.wait(timeout=5))

    async with PostbackReceiver(tmp_path / "p.db", on_event=on_event) as rx:
        url = await rx.start()
        assert await post(url, MT) == 200
        release.set()
    assert released == [True], "the callback was still waiting when the 200 arrived"


async def test_an_async_callback_does_not_hold_the_answer(tmp_path: Path) -> None:
    answered = asyncio.Event()
    seen_after_answer: list[bool] = []

    async def on_event(event: Postback) -> None:
        await answered.wait()
        seen_after_answer.append(True)

    async with PostbackReceiver(tmp_path / "p.db", on_event=on_event) as rx:
        url = await rx.start()
        async with asyncio.timeout(10):
            assert await post(url, MT) == 200
        answered.set()
    assert seen_after_answer == [True]


async def test_sync_callbacks_get_the_events_one_at_a_time_in_the_order_stored(tmp_path: Path) -> None:
    got: list[str | None] = []
    threads: set[str] = set()

    def on_event(event: Postback) -> None:
        got.append(event.tracking_id)
        threads.add(threading.current_thread().name)

    async with PostbackReceiver(tmp_path / "p.db", on_event=on_event) as rx:
        url = await rx.start()
        async with aiohttp.ClientSession() as session:
            for i in range(5):
                await post(url, {**MT, "tracking-id": f"T{i}"}, session)
    assert got == [f"T{i}" for i in range(5)]
    assert len(threads) == 1 and threading.main_thread().name not in threads


async def test_a_sync_callback_returning_a_coroutine_has_it_run(tmp_path: Path) -> None:
    got: list[str | None] = []

    async def record(event: Postback) -> None:
        got.append(event.code)

    async with PostbackReceiver(tmp_path / "p.db", on_event=lambda event: record(event)) as rx:
        await post(await rx.start(), MT)
    assert got == ["N102"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_callback_that_raises_is_logged_without_the_body_and_the_postback_still_gets_200(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str,
) -> None:
    def sync_callback(event: Postback) -> None:
        raise RuntimeError("callback bug")

    async def async_callback(event: Postback) -> None:
        raise RuntimeError("callback bug")

    caplog.set_level(logging.ERROR, logger="mmsjson.postbacks")
    callback = sync_callback if kind == "sync" else async_callback
    async with PostbackReceiver(tmp_path / "p.db", on_event=callback) as rx:
        url = await rx.start()
        assert [await post(url, MT), await post(url, {**MT, "tracking-id": "T2"})] == [200, 200]
    records = [r for r in caplog.records if r.name == "mmsjson.postbacks"]
    assert len(records) == 2
    assert all("callback bug" in caplog.text and r.exc_info for r in records)
    assert "postback 1 (code 'N102')" in records[0].getMessage()
    assert MT["to"] not in caplog.text and MT["client-reference"] not in caplog.text
    assert rx.stored == 2

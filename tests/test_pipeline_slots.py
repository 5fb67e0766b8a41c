"""The in-flight cap of the send pipeline: never more requests on the wire than slots, none lost."""

from __future__ import annotations

import asyncio

import pytest

from mmsjson import RawResponse, RetryPolicy
from mmsjson._pipeline import ClientStats, Pipeline, _Slots
from mmsjson.flavours import JsonFlavour
from mmsjson.testing import MockTransport
from mmsjson.transport import PreparedRequest

OK = {"status": "success", "tracking-id": "T1"}


def request() -> PreparedRequest:
    return PreparedRequest(
        url="https://api.example.test/ep/v2/", body=b"{}", headers={}, recipients=("1",),
        action="sendmms",
    )


class Gate:
    """A mock handler that holds every request until the test opens the gate; counts the peak
    and says when ``expect`` requests are inside."""

    def __init__(self, expect: int) -> None:
        self.open = asyncio.Event()
        self.full = asyncio.Event()
        self.expect = expect
        self.inside = 0
        self.peak = 0

    async def __call__(self, request: PreparedRequest) -> RawResponse:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        if self.inside >= self.expect:
            self.full.set()
        await self.open.wait()
        self.inside -= 1
        return RawResponse.from_json(OK)


def pipeline(gate: Gate, size: int) -> Pipeline:
    return Pipeline(
        transport=MockTransport(gate), read=JsonFlavour("k").read, limiter=None,
        retry=RetryPolicy(max_attempts=1), max_in_flight=size, stats=ClientStats(),
    )


async def test_no_more_requests_are_on_the_wire_than_slots() -> None:
    gate = Gate(expect=3)
    sends = pipeline(gate, 3)
    tasks = [asyncio.create_task(sends.deliver(request())) for _ in range(10)]
    await gate.full.wait()
    gate.open.set()
    await asyncio.gather(*tasks)
    assert gate.peak == 3


async def test_waiting_requests_get_their_slots_in_the_order_they_came() -> None:
    slots = _Slots(1)
    slots.free -= 1
    order: list[int] = []

    async def take(index: int) -> None:
        await slots.wait()
        order.append(index)
        slots.release()

    tasks = [asyncio.create_task(take(index)) for index in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert (order, slots.free) == ([0, 1, 2, 3, 4], 1)


async def test_a_wait_cancelled_before_its_turn_takes_no_slot() -> None:
    slots = _Slots(1)
    slots.free -= 1
    cancelled = asyncio.create_task(slots.wait())
    waiting = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert len(slots._waiting) == 1, "the cancelled wait is still queued"
    slots.release()
    await waiting
    slots.release()
    assert slots.free == 1


async def test_a_wait_cancelled_as_it_is_handed_a_slot_passes_the_slot_on() -> None:
    slots = _Slots(1)
    slots.free -= 1
    first = asyncio.create_task(slots.wait())
    second = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    slots.release()  # hands the slot to the first waiter...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.sleep(0)
    assert second.done(), "the slot handed to the cancelled wait was lost"
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


async def test_every_slot_comes_back_when_requests_fail_or_are_cancelled() -> None:
    gate = Gate(expect=2)
    sends = pipeline(gate, 2)
    tasks = [asyncio.create_task(sends.deliver(request())) for _ in range(6)]
    await gate.full.wait()
    for task in tasks[::2]:
        task.cancel()
    gate.open.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sends.slots.free == 2

"""Memory per request in flight, and per pending ``send`` when a caller gathers many at once.

    python benchmarks/memory_in_flight.py

A server on 127.0.0.1 reads each request and holds its answer until every request has arrived,
so the client holds ``max_in_flight`` requests on the wire (connections, buffers, the pipeline's
state) and the rest of a ``gather`` waiting for a slot. Python allocations are traced with
tracemalloc (kernel socket buffers are not counted).
"""

from __future__ import annotations

import asyncio
import tracemalloc

from mmsjson import MMS, MMSClient, Slide

ANSWER = b'{"status":"success","to":"17745559144","tracking-id":"T","status-details":"q"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER), ANSWER,
)


async def measure(in_flight: int, gathered: int) -> tuple[float, float]:
    arrived = asyncio.Event()
    release = asyncio.Event()
    release.set()
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            count += 1
            if count == in_flight:
                arrived.set()
            await release.wait()
            writer.write(RESPONSE)
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mms = MMS(slides=[Slide(text="Hello")], fallback_sms_text="Hello")
    async with MMSClient(
        "key", base_url=f"http://127.0.0.1:{port}/ep/v2/", service_id="1", sender="12345",
        throughput=None, max_in_flight=in_flight,
    ) as client:
        await client.send(mms, "17745559144")
        count = 0
        release.clear()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        sends = [asyncio.ensure_future(client.send(mms, "17745559144")) for _ in range(gathered)]
        await arrived.wait()
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        release.set()
        await asyncio.gather(*sends)
    server.close()
    return held / in_flight if gathered == in_flight else held, float(held)


async def main() -> None:
    per_slot, _ = await measure(64, 64)
    _, with_waiting = await measure(64, 64 + 2000)
    per_pending = (with_waiting - per_slot * 64) / 2000
    print(f"per request in flight (64 on the wire): {per_slot / 1024:.1f} KiB")
    print(f"per pending send (2,000 waiting for a slot): {per_pending / 1024:.2f} KiB")


if __name__ == "__main__":
    asyncio.run(main())

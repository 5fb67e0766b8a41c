"""The fake API in a process of its own with a given key, for benchmarks (the sandbox makes its own).

    python benchmarks/fake_server.py PORT KEY

Prints ``listening on URL`` once it serves, then serves until terminated. It records only arrival
times; benchmarks set its limit and read its figures over ``/_fake/reset`` and ``/_fake/stats``.
"""

from __future__ import annotations

import asyncio
import sys

from mmsjson.testing import FakeMMSServer


async def serve(port: int, key: str) -> None:
    async with FakeMMSServer(api_key=key, port=port, record=False) as server:
        print(f"listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))

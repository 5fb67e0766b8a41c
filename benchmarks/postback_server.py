"""The postback receiver in a process of its own, for run.py: postback_server.py PORT DB."""

from __future__ import annotations

import asyncio
import sys

from mmsjson.postbacks import PostbackReceiver


async def main(port: int, path: str) -> None:
    async with PostbackReceiver(path) as receiver:
        url = await receiver.start(port=port)
        print(f"listening {url}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))

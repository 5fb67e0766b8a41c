"""A postback receiver mounted in your own aiohttp app, next to your other routes.

Every postback is stored in SQLite before the service gets its 200, redeliveries are answered and
not handed over twice, and events reach your code as typed objects.

    python examples/postback_app.py     # then give the service http://<your host>:8082/mms/postbacks
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mmsjson import DeliveryEvent, Postback, PostbackReceiver

RECEIVER = web.AppKey("receiver", PostbackReceiver)


def on_event(event: Postback) -> None:
    """Runs in a worker thread of its own, after the 200: slow work here never delays the answer."""
    if isinstance(event, DeliveryEvent):
        print(f"{event.tracking_id}: {event.outcome} ({event.code})")


async def postback(request: web.Request) -> web.StreamResponse:
    return await request.app[RECEIVER].handle(request)


def make_app(database: str = "postbacks.db") -> web.Application:
    async def receiver(app: web.Application) -> AsyncIterator[None]:
        async with PostbackReceiver(database, on_event=on_event) as rx:
            app[RECEIVER] = rx
            yield

    app = web.Application()
    app.cleanup_ctx.append(receiver)
    app.router.add_post("/mms/postbacks", postback)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8082, keepalive_timeout=15)

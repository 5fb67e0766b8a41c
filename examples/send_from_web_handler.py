"""Send an MMS from an aiohttp web handler: one MMSClient for the whole app, shared by every request.

Run it against the sandbox (``mmsjson sandbox`` prints the variables to export)::

    export MMSJSON_API_KEY=... MMSJSON_BASE_URL=http://127.0.0.1:8080/ep/v2/
    export MMSJSON_SERVICE_ID=123 MMSJSON_SENDER=28444
    python examples/send_from_web_handler.py            # then: curl -d to=17745559144 localhost:8081/notify
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from mmsjson import MMSClient, MMSError, ValidationError, load_mms

CLIENT = web.AppKey("client", MMSClient)
MESSAGE = load_mms(json.loads((Path(__file__).parent / "messages" / "picture.json").read_text("utf-8")))


async def mms_client(app: web.Application) -> AsyncIterator[None]:
    """One client, and so one limiter and one connection pool, for the life of the app."""
    async with MMSClient(throughput=20) as client:
        app[CLIENT] = client
        yield


async def notify(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        sent = await request.app[CLIENT].send(MESSAGE, to=str(form.get("to", "")))
    except ValidationError as error:
        return web.json_response({"error": str(error)}, status=400)
    except MMSError as error:
        return web.json_response({"error": str(error)}, status=502)
    return web.json_response({"tracking_id": sent.tracking_id})


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(mms_client)
    app.router.add_post("/notify", notify)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8081)

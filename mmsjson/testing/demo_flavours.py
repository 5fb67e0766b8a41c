"""The same MMS sent through all three flavours against the local fake server (or a sandbox).

``await three_flavours(out)`` starts a :class:`~mmsjson.testing.FakeMMSServer` (or uses the one
given), builds one message once, and sends it to the same people through the MMS JSON API, the
older XML API and SMS REST ``mt_media`` batches, printing one line per flavour. The CLI's demo can
call it; :func:`sandbox_lines` is what a sandbox prints so each flavour can be pointed at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from mmsjson.client import MMSClient
from mmsjson.flavours.choose import API_KEY_ENV, SERVICE_PLAN_ENV, SMS_REST_TOKEN_ENV, flavour_from_name
from mmsjson.models import MMS, Image, OutcomeStatus, Slide
from mmsjson.testing.server import FakeMMSServer

__all__ = ["DEMO_PEOPLE", "demo_message", "sandbox_lines", "three_flavours"]

DEMO_PEOPLE = ("17745550001", "17745550002", "17745550003")


def demo_message() -> MMS:
    """One slide with an image, a text and a subject: what all three flavours can carry."""
    return MMS(
        slides=[Slide(text="Spring sale: 20% off today", image=Image("https://example.com/sale.jpg"))],
        subject="Spring sale",
        fallback_sms_text="Spring sale: 20% off today at https://example.com/s",
    )


def sandbox_lines(server: FakeMMSServer) -> list[str]:
    """Where each flavour reaches ``server``, and the environment the CLI reads for it."""
    return [
        f"MMS JSON API:  {server.base_url}",
        f"XML API:       {server.xml_url}",
        f"SMS REST:      {server.sms_rest_url}{server.service_plan_id}/batches",
        f"export {API_KEY_ENV}={server.api_key}",
        f"export {SMS_REST_TOKEN_ENV}={server.api_key}",
        f"export {SERVICE_PLAN_ENV}={server.service_plan_id}",
    ]


async def _send_through(
    name: str, server: FakeMMSServer, mms: MMS, people: Sequence[str], out: TextIO
) -> bool:
    base_url = {"json": server.base_url, "xml": server.xml_url, "sms-rest": server.sms_rest_url}[name]
    flavour = flavour_from_name(
        name, api_key=server.api_key, base_url=base_url, service_plan_id=server.service_plan_id,
    )
    before = len(server.arrivals)
    async with MMSClient(flavour=flavour, service_id="12345", sender="12345", throughput=None) as client:
        result = await client.send_batch(mms, people)
    requests = len(server.arrivals) - before
    accepted = sum(o.status is OutcomeStatus.ACCEPTED for o in result.outcomes)
    ids = sorted({o.tracking_id for o in result.outcomes if o.tracking_id})
    out.write(
        f"{name:<9} {accepted}/{len(people)} accepted in {requests} request(s); "
        f"tracking ids: {', '.join(ids)}\n"
    )
    return result.ok


async def three_flavours(
    out: TextIO, *, server: FakeMMSServer | None = None, people: Sequence[str] = DEMO_PEOPLE
) -> int:
    """Send :func:`demo_message` to ``people`` through each flavour; 0 if all were accepted."""
    own = server is None
    fake = server or FakeMMSServer()
    if own:
        await fake.start()
    try:
        mms = demo_message()
        out.write(f"one message, three flavours, {len(people)} people:\n")
        results = [await _send_through(n, fake, mms, people, out) for n in ("json", "xml", "sms-rest")]
    finally:
        if own:
            await fake.stop()
    return 0 if all(results) else 1

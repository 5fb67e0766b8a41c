"""The same message through all three flavours against one fake server."""

from __future__ import annotations

import io

from mmsjson.testing import FakeMMSServer
from mmsjson.testing.demo_flavours import DEMO_PEOPLE, sandbox_lines, three_flavours


async def test_the_demo_sends_one_message_through_all_three_flavours() -> None:
    out = io.StringIO()
    async with FakeMMSServer() as server:
        assert await three_flavours(out, server=server) == 0
    flavours = [r.flavour for r in server.received]
    assert (flavours.count("json"), flavours.count("xml"), flavours.count("sms_rest")) == (3, 3, 1)
    assert server.deliveries() == dict.fromkeys(DEMO_PEOPLE, 3)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["json", "xml", "sms-rest"]
    assert "3/3 accepted in 1 request(s)" in lines[3]


async def test_the_sandbox_lines_name_every_flavours_endpoint_and_variable() -> None:
    async with FakeMMSServer() as server:
        text = "\n".join(sandbox_lines(server))
    for expected in ("/ep/v2/", "/ep/v1/", "/xms/v1/fakeplan/batches", "MMSJSON_SMS_REST_TOKEN",
                     "MMSJSON_SERVICE_PLAN_ID", "MMSJSON_API_KEY"):
        assert expected in text

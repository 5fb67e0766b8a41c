"""The fake server on its own: raw requests in, the documented answers out."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from mmsjson import MMS, MMSClient, Slide
from mmsjson.testing import FakeMMSServer
from mmsjson.testing.rules import Refusal, check_request

SEND: dict[str, Any] = {
    "action": "sendmms", "service-id": "1", "to": "17745559144", "from": "12345",
    "fallback-sms-text": "fb", "slide": [{"message-text": "hi", "image": {"url": "https://e.com/a.jpg"}}],
}


@pytest.fixture
async def server() -> AsyncIterator[FakeMMSServer]:
    async with FakeMMSServer() as fake:
        yield fake


async def post(server: FakeMMSServer, payload: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    sent_headers = {"x-api-key": server.api_key, "Content-Type": "application/json; charset=utf-8", **headers}
    async with aiohttp.ClientSession() as session:
        data = payload if isinstance(payload, bytes) else None
        async with session.post(
            server.base_url, json=None if data else payload, data=data, headers=sent_headers
        ) as response:
            return response.status, await response.json(content_type=None)


def changed(**fields: Any) -> dict[str, Any]:
    payload = copy.deepcopy(SEND)
    for key, value in fields.items():
        if value is None:
            payload.pop(key.replace("_", "-"), None)
        else:
            payload[key.replace("_", "-")] = value
    return payload


async def test_a_valid_send_gets_the_documented_success_shape(server: FakeMMSServer) -> None:
    status, answer = await post(server, SEND)
    assert status == 200
    assert set(answer) == {"status", "to", "tracking-id", "status-details"}
    assert answer["status"] == "success"


async def test_a_wrong_key_is_e104(server: FakeMMSServer) -> None:
    _, answer = await post(server, SEND, **{"x-api-key": "nope"})
    assert (answer["status"], answer["error-code"]) == ("failure", "E104")


async def test_broken_json_is_e108(server: FakeMMSServer) -> None:
    _, answer = await post(server, b"{not json")
    assert answer["error-code"] == "E108"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (changed(action="sendMMS"), "E107"),
        (changed(to="+17745559144"), "E110"),
        (changed(to="0017745559144"), "E110"),
        (changed(**{"from": "abc"}), "E111"),
        (changed(slide=[]), "E312"),
        (changed(slide=[{"message-text": "x"}] * 9), "E225"),
        (changed(slide=[{}]), "E313"),
        (changed(slide=[{"image": {"url": "https://e.com/a"}, "video": {"url": "https://e.com/v"}}]), "E227"),
        (changed(slide=[{"audio": {"url": "https://e.com/a"}, "video": {"url": "https://e.com/v"}}]), "E226"),
        (changed(slide=[{"pdf": {"url": "https://e.com/a"}, "image": {"url": "https://e.com/v"}}]), "E224"),
        (changed(slide=[{"pdf": {"url": "https://e.com/a"}, "contact": {"url": "https://e.com/v"}}]), "E223"),
        (changed(slide=[{"message-text": "x" * 5001}]), "E228"),
        (changed(message_subject="s" * 81), "E314"),
        (changed(fallback_sms_text=None), "E100"),
        (changed(client_reference="r" * 65), "E100"),
        (changed(mms_expiry_timestamp="2999-01-01T00:00:00Z"), "E100"),
        (changed(service_id=None), "E100"),
        ({"action": "savemms", "slide": SEND["slide"], "fallback-sms-text": "x"}, "E311"),
        ({"action": "sendsavedmms", "mms-id": "9", "service-id": "1", "to": "17745559144", "from": "28444"}, "E241"),
        (changed(api_key="secret"), "E100"),
        (changed(bogus="x"), "E100"),
        (changed(slide=[{"excel": {"url": "https://e.com/s.xlsx"}}]), "E100"),
        (changed(slide=[{"image": {"url": "https://e.com/a", "alt": "x"}}]), "E100"),
        (changed(cache_content="false"), "E100"),
        (changed(to="7745559144"), "E110"),
        (changed(to_displayonly="17745550002,7745550003"), "E110"),
        (changed(**{"from": "1234"}), "E111"),
        (changed(**{"from": "7745559144"}), "E111"),
        (changed(message_subject="Sale \N{PARTY POPPER}"), "E314"),
        (changed(message_subject="Call 1\ufe0f\u20e3"), "E314"),
        (changed(message_subject="Tea \u2615"), "E314"),
        (changed(from_mask="M" * 51), "E115"),
        (changed(slide=[{"image": {"url": "https://e.com/a\u00a0b.jpg"}}]), "E229"),
        (changed(slide=[{"image": {"url": "https://e.com/a\u200bb.jpg"}}]), "E229"),
        (changed(fallback_sms_link_expiration="2999-01-01T00:00:00Z"), "E100"),
        ({"action": "sendsavedmms", "mms-id": "9", "service-id": "1", "to": "17745559144", "from": "28444",
          "slide": SEND["slide"]}, "E100"),
    ],
)
async def test_each_documented_rule_is_refused_with_its_code(
    server: FakeMMSServer, payload: dict[str, Any], code: str
) -> None:
    _, answer = await post(server, payload)
    assert (answer["status"], answer["error-code"]) == ("failure", code), answer


async def test_a_saved_template_can_be_sent_by_its_id(server: FakeMMSServer) -> None:
    save = {"action": "savemms", "name": "t", "slide": SEND["slide"], "fallback-sms-text": "x"}
    _, saved = await post(server, save)
    mms_id = server.mms_id_for(saved["tracking-id"])
    send = {"action": "sendsavedmms", "mms-id": mms_id, "service-id": "1", "to": "17745559144", "from": "28444"}
    _, answer = await post(server, send)
    assert (answer["status"], answer["mms-id"], answer["from"]) == ("success", mms_id, "28444")


async def test_a_custom_slide_beyond_the_template_is_refused(server: FakeMMSServer) -> None:
    save = {"action": "savemms", "name": "t", "slide": SEND["slide"], "fallback-sms-text": "x"}
    _, saved = await post(server, save)
    send = {
        "action": "sendsavedmms", "mms-id": server.mms_id_for(saved["tracking-id"]), "service-id": "1",
        "to": "17745559144", "from": "28444",
        "custom-slides": [{"custom-message-text": "x", "custom-slide": "2"}],
    }
    _, answer = await post(server, send)
    assert answer["error-code"] == "E100"


async def test_throughput_is_enforced_over_a_sliding_second() -> None:
    async with FakeMMSServer(throughput=5) as server:
        answers = await asyncio.gather(*(post(server, SEND) for _ in range(8)))
    codes = sorted(a.get("error-code", "ok") for _, a in answers)
    assert codes == ["E113"] * 3 + ["ok"] * 5
    assert server.e113_count == 3


async def test_an_injected_e113_storm_refuses_the_next_requests(server: FakeMMSServer) -> None:
    server.inject_e113(2)
    codes = [(await post(server, SEND))[1].get("error-code") for _ in range(3)]
    assert codes == ["E113", "E113", None]


async def test_an_injected_status_answers_html(server: FakeMMSServer) -> None:
    server.inject_status(503)
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base_url, json=SEND, headers={"x-api-key": server.api_key}) as response,
    ):
        assert (response.status, response.content_type) == (503, "text/html")
    assert not server.accepted()


async def test_an_injected_drop_accepts_the_request_but_answers_nothing(server: FakeMMSServer) -> None:
    server.inject_drop()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(server, SEND)
    assert server.deliveries() == {"17745559144": 1}


async def test_it_records_what_it_received(server: FakeMMSServer) -> None:
    await post(server, SEND)
    await post(server, changed(to="1"))
    assert [(r.status, r.error_code) for r in server.received] == [("success", None), ("failure", "E110")]


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "6834002"},
        {"to_displayonly": "6903123,442079460000"},
        {"from": "18885551234"},
        {"from": "123456"},
        {"message_subject": "Acme\u00a9 \u2122 20\u00b0 \u263a"},
        {"message_subject": "Sale\nToday only"},
        {"fallback_sms_text": None, "disable_fallback_sms": True},
    ],
    ids=["7-digit number", "display-only numbers", "toll-free sender", "6-digit short code",
         "symbols in subject", "multi-line subject", "fallback off"],
)
async def test_what_the_documents_allow_is_accepted(server: FakeMMSServer, fields: dict[str, Any]) -> None:
    _, answer = await post(server, changed(**fields))
    assert answer["status"] == "success", answer


async def test_a_template_may_be_saved_without_fallback_text(server: FakeMMSServer) -> None:
    _, answer = await post(server, {"action": "savemms", "name": "t", "slide": SEND["slide"]})
    assert answer["status"] == "success", answer


async def test_a_saved_template_without_fallback_text_needs_it_at_send_time(server: FakeMMSServer) -> None:
    _, saved = await post(server, {"action": "savemms", "name": "t", "slide": SEND["slide"]})
    send = {"action": "sendsavedmms", "mms-id": server.mms_id_for(saved["tracking-id"]), "service-id": "1",
            "to": "17745559144", "from": "28444"}
    _, refused = await post(server, send)
    _, accepted = await post(server, {**send, "fallback-sms-text": "see the picture"})
    assert (refused.get("error-code"), accepted["status"]) == ("E100", "success")


def test_one_year_of_link_expiration_is_a_calendar_year_across_a_leap_day() -> None:
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    check_request(changed(fallback_sms_link_expiration="2028-03-01T12:00:00Z"), {}, now=now)
    with pytest.raises(Refusal, match="more than 1 year"):
        check_request(changed(fallback_sms_link_expiration="2028-03-01T12:05:00Z"), {}, now=now)


async def test_the_client_saves_content_without_fallback_text_and_the_fake_accepts_it(
    make_client: Callable[..., MMSClient],
) -> None:
    async with make_client() as client:
        result = await client.save(MMS(slides=[Slide(text="Menu")]), name="menu")
    assert result.tracking_id

"""Fields the documents define reach the wire exactly, from every way of sending (issue: faithful)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mmsjson import (
    MMS,
    BulkJob,
    Calendar,
    Contact,
    MMSClient,
    RawResponse,
    Slide,
    ValidationError,
)
from mmsjson.flavours.json import decode_answer, save_request, send_request, send_saved_request
from mmsjson.testing import FakeMMSServer
from tests.conftest import in_days, picture_mms
from tests.schema import assert_valid_request

ROUTE: dict[str, Any] = {"service_id": "123", "sender": "12345"}


async def saved_template(client: MMSClient, fake: FakeMMSServer, mms: MMS) -> str:
    await client.save(mms, name="promo")
    template = fake.accepted()[-1].payload
    return next(mms_id for mms_id, saved in fake.templates.items() if saved == template)


async def test_from_mask_given_to_send_goes_on_the_wire(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        await client.send(mms, "17745559144", from_mask="ACME")
    assert fake.accepted()[0].payload["from-mask"] == "ACME"


async def test_a_bulk_job_overrides_service_id_sender_and_from_mask(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    job = BulkJob(to="17745559144", mms=mms, service_id="777", sender="28444", from_mask="ACME")
    async with make_client() as client:
        [outcome] = [o async for o in client.send_bulk([job])]
    payload = fake.accepted()[0].payload
    assert outcome.status == "accepted"
    assert (payload["service-id"], payload["from"], payload["from-mask"]) == ("777", "28444", "ACME")


async def test_a_bulk_job_for_a_template_carries_the_sendsavedmms_overrides(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    expiry = in_days(1)
    async with make_client() as client:
        mms_id = await saved_template(client, fake, mms)
        job = BulkJob(
            to="17745559144", mms_id=mms_id, subject="Hi Ann", fallback_sms_text="See it",
            expires_at=expiry, custom_texts={1: "Hello Ann"},
        )
        [outcome] = [o async for o in client.send_bulk([job])]
    payload = fake.accepted()[-1].payload
    assert outcome.status == "accepted"
    assert (payload["message-subject"], payload["fallback-sms-text"]) == ("Hi Ann", "See it")
    assert payload["custom-slides"] == [{"custom-message-text": "Hello Ann", "custom-slide": "1"}]
    assert "mms-expiry-timestamp" in payload


@pytest.mark.parametrize("override", ["subject", "fallback_sms_text", "custom_texts"])
async def test_template_overrides_on_a_content_job_are_refused(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS, override: str
) -> None:
    value: Any = {1: "x"} if override == "custom_texts" else "x"
    job = BulkJob(to="17745559144", mms=mms, **{override: value})
    async with make_client() as client:
        [outcome] = [o async for o in client.send_bulk([job])]
    assert outcome.status == "rejected" and isinstance(outcome.error, ValidationError)
    assert outcome.error.path == override and not fake.arrivals


async def test_a_group_send_of_a_template_carries_the_overrides(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        mms_id = await saved_template(client, fake, mms)
        result = await client.send_group(
            mms_id, ["17745550001", "17745550002"], subject="Team", from_mask="ACME",
            fallback_sms_text="See it",
        )
    sends = fake.accepted()[1:]
    assert result.ok
    assert {(r.payload["message-subject"], r.payload["from-mask"]) for r in sends} == {("Team", "ACME")}


async def test_a_group_send_of_content_refuses_template_overrides(
    make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        with pytest.raises(ValidationError, match="^subject: applies to a saved template"):
            await client.send_group(mms, ["17745550001"], subject="Team")


def test_contact_and_calendar_slides_are_objects_with_a_url_on_the_wire() -> None:
    mms = MMS(
        slides=[
            Slide(text="Card", contact=Contact("https://e.com/c.vcf")),
            Slide(calendar=Calendar("https://e.com/c.ics")),
        ],
        fallback_sms_text="x",
    )
    payload = send_request(mms, to="17745559144", **ROUTE)
    assert_valid_request(payload)
    assert payload["slide"] == [
        {"message-text": "Card", "contact": {"url": "https://e.com/c.vcf"}},
        {"calendar": {"url": "https://e.com/c.ics"}},
    ]


def test_savemms_refuses_cache_content() -> None:
    with pytest.raises(ValidationError, match="^cache_content: applies to sendmms only"):
        save_request(picture_mms(cache_content=True), name="promo")


def test_sendsavedmms_fallback_overrides_go_on_the_wire() -> None:
    payload = send_saved_request(
        "35674", to="17745559144", fallback_sms_text="See it", disable_fallback_sms=False,
        disable_fallback_sms_link=True, **ROUTE,
    )
    assert_valid_request(payload)
    assert (
        payload["fallback-sms-text"], payload["disable-fallback-sms"], payload["disable-fallback-sms-link"]
    ) == ("See it", False, True)


@pytest.mark.parametrize("word", ["success", "Success", "SUCCESS", "sUcCeSs"])
def test_success_is_read_in_any_case(word: str) -> None:
    raw = RawResponse.from_json({"status": word, "tracking-id": "T1"})
    assert decode_answer(raw.status, raw.body)["tracking-id"] == "T1"

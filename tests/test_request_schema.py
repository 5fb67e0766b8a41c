"""The project's own request schema: strict, self-contained, and true to the documents' examples."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.schema import SCHEMA_PATH, assert_valid_request, request_errors, request_schema

#: The OpenAPI's sendMMS example with its placeholders filled in.
SENDMMS: dict[str, Any] = {
    "action": "sendmms",
    "service-id": "12345",
    "to": "17745559144",
    "from": "28444",
    "from-mask": "ACME",
    "message-subject": "The subject",
    "fallback-sms-text": "See the MMS",
    "disable-fallback-sms-link": False,
    "disable-fallback-sms": False,
    "fallback-sms-link-expiration": "2030-01-01T00:00:00Z",
    "mms-expiry-timestamp": "2030-01-01T00:00:00+02:00",
    "client-reference": "order-7",
    "cache-content": True,
    "slide": [
        {"image": {"url": "https://e.com/a.jpg"}, "message-text": "Image"},
        {"audio": {"url": "https://e.com/a.mp3"}, "message-text": "Audio"},
        {"video": {"url": "https://e.com/v.mp4"}, "message-text": "Video"},
        {"contact": {"url": "https://e.com/c.vcf"}, "message-text": "Contact"},
        {"calendar": {"url": "https://e.com/c.ics"}, "message-text": "Calendar"},
        {"pdf": {"url": "https://e.com/d.pdf"}, "message-text": "PDF"},
    ],
}
#: The OpenAPI's saveMMS example with its placeholders filled in.
SAVEMMS: dict[str, Any] = {
    "action": "savemms",
    "name": "promo",
    **{k: SENDMMS[k] for k in (
        "message-subject", "fallback-sms-text", "disable-fallback-sms-link", "disable-fallback-sms",
        "fallback-sms-link-expiration", "client-reference", "slide",
    )},
}
#: The XML sendSavedMMS example's values in the OpenAPI's sendsavedMMS shape.
SENDSAVEDMMS: dict[str, Any] = {
    "action": "sendsavedmms",
    "mms-id": "35674",
    "service-id": "12345",
    "to": "14044790000",
    "from": "28444",
    "to-displayonly": "17745550002,17745550003",
    "message-subject": "My custom subject",
    "fallback-sms-text": "See the MMS",
    "disable-fallback-sms": False,
    "client-reference": "order-7",
    "custom-slides": [{"custom-message-text": "My custom text in first slide", "custom-slide": "1"}],
}
EXAMPLES = {"sendmms": SENDMMS, "savemms": SAVEMMS, "sendsavedmms": SENDSAVEDMMS}


def changed(example: dict[str, Any], **fields: Any) -> dict[str, Any]:
    payload = copy.deepcopy(example)
    for key, value in fields.items():
        if value is None:
            payload.pop(key.replace("_", "-"), None)
        else:
            payload[key.replace("_", "-")] = value
    return payload


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(request_schema())


def test_the_schema_lives_in_the_repository() -> None:
    assert SCHEMA_PATH.parent.name == "tests"
    assert SCHEMA_PATH.is_file()


def test_every_definition_cites_its_source() -> None:
    missing = [name for name, part in request_schema()["$defs"].items() if "$comment" not in part]
    assert not missing


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_the_documents_examples_validate(action: str) -> None:
    assert_valid_request(EXAMPLES[action])


def test_the_whole_schema_accepts_each_action() -> None:
    validator = jsonschema.Draft202012Validator(request_schema())
    assert all(validator.is_valid(example) for example in EXAMPLES.values())


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_a_bogus_key_is_refused(action: str) -> None:
    assert request_errors(changed(EXAMPLES[action], bogus="x"))


def test_an_excel_slide_is_refused() -> None:
    assert request_errors(changed(SENDMMS, slide=[{"excel": {"url": "https://e.com/s.xlsx"}}]))


def test_a_500_character_subject_is_refused() -> None:
    assert request_errors(changed(SENDMMS, message_subject="s" * 500))


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "+17745559144"}, {"to": "0017745559144"}, {"to": "1234567890123456"}, {"to": "17745"},
        {"from": "1234"}, {"from": "ACME"}, {"to_displayonly": "17745550002, 17745550003"},
        {"service_id": 12345}, {"service_id": " "}, {"from_mask": "M" * 51}, {"client_reference": "r" * 65},
        {"disable_fallback_sms": "false"}, {"mms_expiry_timestamp": "2030-01-01"}, {"name": "t"},
        {"slide": []}, {"slide": [{"message-text": "x"}] * 9}, {"slide": [{}]},
        {"slide": [{"message-text": "x" * 5001}]},
        {"slide": [{"image": {"url": "https://e.com/a"}, "video": {"url": "https://e.com/v"}}]},
        {"slide": [{"audio": {"url": "https://e.com/a"}, "video": {"url": "https://e.com/v"}}]},
        {"slide": [{"pdf": {"url": "https://e.com/a"}, "image": {"url": "https://e.com/i"}}]},
        {"slide": [{"pdf": {"url": "https://e.com/a"}, "contact": {"url": "https://e.com/c"}}]},
        {"slide": [{"image": {"url": "ftp://e.com/a"}}]},
        {"slide": [{"image": {"url": "https://e.com/a\u00a0b"}}]},
        {"slide": [{"image": {"url": "https://e.com/a", "type": "image/png"}}]},
        {"fallback_sms_text": None},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_sendmms_refuses_what_the_documents_refuse(fields: dict[str, Any]) -> None:
    assert request_errors(changed(SENDMMS, **fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "6834002"}, {"from": "123456"}, {"from": "18885551234"},
        {"message_subject": "Acme\u00a9\u2122 20\u00b0\nToday"},
        {"fallback_sms_text": None, "disable_fallback_sms": True},
        {"slide": [{"image": {"url": "https://e.com/a"}, "audio": {"url": "https://e.com/b"}}]},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_sendmms_accepts_what_the_documents_allow(fields: dict[str, Any]) -> None:
    assert_valid_request(changed(SENDMMS, **fields))


@pytest.mark.parametrize(
    "fields",
    [{"service_id": "1"}, {"to": "17745559144"}, {"mms_expiry_timestamp": "2030-01-01T00:00:00Z"},
     {"cache_content": True}, {"name": None}, {"name": " "}, {"slide": None}],
    ids=lambda fields: next(iter(fields)),
)
def test_savemms_refuses_what_belongs_to_a_send(fields: dict[str, Any]) -> None:
    assert request_errors(changed(SAVEMMS, **fields))


def test_savemms_does_not_need_fallback_text() -> None:
    assert_valid_request(changed(SAVEMMS, fallback_sms_text=None, disable_fallback_sms=None))


@pytest.mark.parametrize(
    "fields",
    [
        {"slide": SENDMMS["slide"]}, {"mms_id": None}, {"cache_content": True},
        {"custom_slides": [{"custom-message-text": "x", "custom-slide": 1}]},
        {"custom_slides": [{"custom-message-text": "x", "custom-slide": "9"}]},
        {"custom_slides": [{"custom-message-text": "x"}]},
        {"custom_slides": [{"custom-message-text": "x" * 5001, "custom-slide": "1"}]},
        {"fallback_sms_text": None},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_sendsavedmms_refuses_what_the_documents_refuse(fields: dict[str, Any]) -> None:
    assert request_errors(changed(SENDSAVEDMMS, **fields))


def test_sendsavedmms_may_leave_the_fallback_to_the_template() -> None:
    assert_valid_request(changed(SENDSAVEDMMS, fallback_sms_text=None, disable_fallback_sms=None))


def test_an_unknown_action_is_refused() -> None:
    assert request_errors(changed(SENDMMS, action="sendMMS"))

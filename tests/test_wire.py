"""The exact JSON of each action, the round trip of the API's own form, and response parsing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsjson import MMS, Image, Pdf, Slide, ValidationError, Video, dump_mms, load_mms, normalize_number
from mmsjson.flavours.json import (
    content_fragment,
    join_body,
    save_request,
    send_envelope,
    send_request,
    send_saved_request,
    structure_save_result,
    structure_send_result,
)
from tests.conftest import in_days, picture_mms
from tests.schema import assert_valid_request

ROUTE: dict[str, Any] = {"service_id": "123", "sender": "12345"}


def test_sendmms_is_exactly_the_documented_json() -> None:
    assert send_request(picture_mms(), to="+1 774 555 9144", client_reference="order-7", **ROUTE) == {
        "action": "sendmms",
        "service-id": "123",
        "to": "17745559144",
        "from": "12345",
        "client-reference": "order-7",
        "message-subject": "Hi",
        "fallback-sms-text": "See the picture",
        "slide": [
            {"message-text": "Hello", "image": {"url": "https://example.com/a.jpg"}},
            {"message-text": "Listen", "audio": {"url": "https://example.com/a.mp3"}},
            {"message-text": "Bye"},
        ],
    }


def test_unset_fields_are_left_out() -> None:
    payload = send_request(MMS(slides=[Slide(text="a")], disable_fallback_sms=True), to="17745559144", **ROUTE)
    assert set(payload) == {"action", "service-id", "to", "from", "slide", "disable-fallback-sms"}


def test_switches_set_to_false_are_sent_as_false() -> None:
    mms = picture_mms(disable_fallback_sms=False, disable_fallback_sms_link=False, cache_content=False)
    payload = send_request(mms, to="17745559144", **ROUTE)
    assert (payload["disable-fallback-sms"], payload["disable-fallback-sms-link"], payload["cache-content"]) == (
        False, False, False,
    )


def test_datetimes_are_iso_8601_in_utc() -> None:
    local = in_days(1).astimezone(timezone(timedelta(hours=2)))
    payload = send_saved_request("1", to="17745559144", expires_at=local, **ROUTE)
    assert payload["mms-expiry-timestamp"].endswith("Z")
    assert datetime.fromisoformat(payload["mms-expiry-timestamp"]) == local


def test_to_displayonly_is_the_others_comma_separated() -> None:
    payload = send_request(
        picture_mms(), to="17745550001", to_displayonly=["+1 774 555 0002", "17745550003"], **ROUTE
    )
    assert payload["to-displayonly"] == "17745550002,17745550003"


def test_the_recipient_may_not_be_listed_as_display_only() -> None:
    with pytest.raises(ValidationError, match="lists the recipient"):
        send_request(picture_mms(), to="17745550001", to_displayonly=["17745550001"], **ROUTE)


def test_savemms_is_exactly_the_documented_json() -> None:
    assert save_request(picture_mms(subject=None), name="promo") == {
        "action": "savemms",
        "name": "promo",
        "fallback-sms-text": "See the picture",
        "slide": [
            {"message-text": "Hello", "image": {"url": "https://example.com/a.jpg"}},
            {"message-text": "Listen", "audio": {"url": "https://example.com/a.mp3"}},
            {"message-text": "Bye"},
        ],
    }


def test_a_template_needs_a_name() -> None:
    with pytest.raises(ValidationError, match="^name: "):
        save_request(picture_mms(), name=" ")


def test_a_template_does_not_take_a_send_expiry() -> None:
    with pytest.raises(ValidationError, match="^expires_at: applies to a send"):
        save_request(picture_mms(expires_at=in_days(1)), name="promo")


def test_sendsavedmms_is_exactly_the_documented_json() -> None:
    payload = send_saved_request(
        "35674", to="17745559144", custom_texts={2: "Bye Ann", 1: "Hi Ann"}, subject="For Ann", **ROUTE
    )
    assert payload == {
        "action": "sendsavedmms",
        "mms-id": "35674",
        "service-id": "123",
        "to": "17745559144",
        "from": "12345",
        "message-subject": "For Ann",
        "custom-slides": [
            {"custom-message-text": "Hi Ann", "custom-slide": "1"},
            {"custom-message-text": "Bye Ann", "custom-slide": "2"},
        ],
    }


@pytest.mark.parametrize("texts", [{0: "x"}, {9: "x"}, {"1": "x"}, {1: "x" * 5001}])
def test_custom_texts_must_map_slides_1_to_8_to_short_texts(texts: Any) -> None:
    with pytest.raises(ValidationError, match=r"^custom_texts\["):
        send_saved_request("1", to="17745559144", custom_texts=texts, **ROUTE)


def test_a_client_reference_over_64_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match="^client_reference: has 65 characters"):
        send_request(picture_mms(), to="17745559144", client_reference="r" * 65, **ROUTE)


def test_service_id_and_sender_are_required() -> None:
    with pytest.raises(ValidationError, match="^service_id: is required"):
        send_request(picture_mms(), to="17745559144", service_id=None, sender="12345")


@pytest.mark.parametrize(
    "payload",
    [
        send_request(picture_mms(), to="17745559144", to_displayonly=["17745550002"], **ROUTE),
        save_request(picture_mms(), name="promo", client_reference="c"),
        send_saved_request("1", to="17745559144", custom_texts={1: "x"}, subject="s", **ROUTE),
    ],
    ids=["sendmms", "savemms", "sendsavedmms"],
)
def test_every_action_validates_against_the_openapi_document(payload: dict[str, Any]) -> None:
    assert_valid_request(payload)


def test_a_body_joined_from_a_fragment_equals_the_whole_request() -> None:
    mms = picture_mms()
    envelope = send_envelope(mms, to="17745559144", **ROUTE)
    body = join_body(envelope, content_fragment(mms))
    assert json.loads(body) == send_request(mms, to="17745559144", **ROUTE)


def test_the_api_form_round_trips() -> None:
    mms = picture_mms(expires_at=in_days(1), cache_content=True, disable_fallback_sms_link=True)
    assert load_mms(json.loads(json.dumps(dump_mms(mms)))) == mms


def test_a_full_request_document_loads_as_its_content() -> None:
    document = send_request(picture_mms(), to="17745559144", client_reference="r", **ROUTE)
    assert load_mms(document) == picture_mms()


def test_a_misspelt_key_is_refused_not_dropped() -> None:
    with pytest.raises(ValidationError, match="unknown keys.*fallbak-sms-text"):
        load_mms({"slide": [{"message-text": "a"}], "fallbak-sms-text": "x"})


def test_a_bad_slide_in_a_document_is_named_by_position() -> None:
    document = {"slide": [{"message-text": "a"}, {"image": {"url": "ftp://x"}}], "fallback-sms-text": "x"}
    with pytest.raises(ValidationError, match=r"^slides\[1\]\.image\.url: "):
        load_mms(document)


def test_a_string_where_a_bool_belongs_is_refused() -> None:
    with pytest.raises(ValidationError, match="^disable-fallback-sms: must be a JSON bool"):
        load_mms({"slide": [{"message-text": "a"}], "fallback-sms-text": "x", "disable-fallback-sms": "false"})


def test_a_send_answer_keeps_unknown_keys_in_raw() -> None:
    answer = {"status": "success", "tracking-id": "T1", "to": "17745559144", "new-field": 3}
    result = structure_send_result(answer)
    assert (result.tracking_id, result.to, result.raw["new-field"]) == ("T1", "17745559144", 3)


def test_a_send_saved_answer_gives_template_and_sender() -> None:
    answer = {"status": "success", "tracking-id": "T", "mms-id": "35674", "from": "28444", "to": "1"}
    result = structure_send_result(answer)
    assert (result.mms_id, result.sender) == ("35674", "28444")


def test_a_save_answer_may_carry_the_template_id() -> None:
    assert structure_save_result({"status": "success", "tracking-id": "T", "mms-id": "9"}).mms_id == "9"


# -- properties ---------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
_url = st.builds(lambda host, path: f"https://{host}.example/{path}", st.from_regex(r"[a-z]{1,10}", fullmatch=True),
                 st.from_regex(r"[a-z0-9]{0,12}", fullmatch=True))
_media_slide = st.one_of(
    st.builds(lambda u, t: Slide(text=t, image=Image(u)), _url, st.none() | _text.filter(bool)),
    st.builds(lambda u, t: Slide(text=t, video=Video(u)), _url, st.none() | _text.filter(bool)),
    st.builds(lambda u, t: Slide(text=t, pdf=Pdf(u)), _url, st.none() | _text.filter(bool)),
    st.builds(lambda t: Slide(text=t), _text.filter(bool)),
)
_subject = st.none() | st.text(st.characters(max_codepoint=0x2000, blacklist_categories=["Cs", "So"],
                                             blacklist_characters="\r\n"), max_size=80)
valid_mms = st.builds(
    lambda slides, subject, fallback: MMS(slides=slides, subject=subject, fallback_sms_text=fallback),
    st.lists(_media_slide, min_size=1, max_size=8), _subject, _text.filter(bool),
)


@given(valid_mms)
def test_any_valid_message_round_trips_through_json(mms: MMS) -> None:
    assert load_mms(json.loads(json.dumps(dump_mms(mms)))) == mms


@given(valid_mms)
def test_any_valid_message_gives_a_request_the_openapi_accepts(mms: MMS) -> None:
    assert_valid_request(send_request(mms, to="17745559144", **ROUTE))


@given(st.lists(_media_slide, min_size=9, max_size=12))
def test_any_message_of_more_than_8_slides_is_refused(slides: list[Slide]) -> None:
    with pytest.raises(ValidationError):
        MMS(slides=slides, fallback_sms_text="x")


@given(st.text(min_size=81, max_size=200))
def test_any_subject_over_80_characters_is_refused(subject: str) -> None:
    with pytest.raises(ValidationError):
        MMS(slides=[Slide(text="a")], fallback_sms_text="x", subject=subject)


@given(st.text(st.characters(categories=["Lu", "Ll"]), min_size=1))
def test_any_number_with_letters_is_refused(letters: str) -> None:
    with pytest.raises(ValidationError, match="other than digits"):
        normalize_number("1774555" + letters)

"""The fast paths write exactly what the plain encoder writes (issue: the hot path)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsjson import MMS, Audio, Image, Slide, ValidationError, models
from mmsjson.flavours import json as json_flavour
from mmsjson.flavours.json import JsonFlavour, content_fragment, converter, send_request
from mmsjson.models import MEDIA_KINDS

FLAVOUR = JsonFlavour("key", "http://127.0.0.1:9/ep/v2/")
NUMBERS = ["17745550001", "17745550002", "447700900123", "6834002", "+1 (774) 555-0003"]

def _media(kind: str, url: str) -> dict[str, Any]:
    """Keyword arguments giving a slide one media item of ``kind``."""
    return {kind: MEDIA_KINDS[kind].cls(url)}


texts = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
)
slides = st.lists(
    st.builds(
        Slide,
        text=texts,
        image=st.none() | st.just(Image("https://example.com/a.jpg")),
        audio=st.none() | st.just(Audio("https://example.com/ü.mp3?q=\\\"x\"")),
    )
    | st.builds(
        lambda kind, text: Slide(text=text, **_media(kind, "https://u@e.com:81/d")),
        st.sampled_from(["video", "contact", "calendar", "pdf"]), st.none() | texts,
    ),
    min_size=1, max_size=8,
)
switches = st.none() | st.booleans()
moments = st.none() | st.integers(1, 3600).map(
    lambda seconds: datetime.now(UTC) + timedelta(days=1, seconds=seconds, microseconds=7)
)
messages = st.builds(
    MMS, slides=slides, subject=st.none() | st.text("abc ©°\"\\\n", max_size=80),
    fallback_sms_text=texts, disable_fallback_sms=switches, disable_fallback_sms_link=switches,
    cache_content=switches, expires_at=moments, fallback_sms_link_expiration=moments,
)
routes = st.fixed_dictionaries({
    "service_id": st.sampled_from(["1", "12345", "demo \"x\""]),
    "sender": st.sampled_from(["12345", "28444", "18885550000"]),
    "from_mask": st.none() | st.text("ACMEé\"", min_size=1, max_size=50),
    "client_reference": st.none() | texts,
})


@settings(max_examples=200, deadline=None)
@given(
    mms=messages, route=routes, to=st.sampled_from(NUMBERS),
    others=st.none() | st.lists(st.sampled_from(NUMBERS[:3]), max_size=3),
)
def test_a_spliced_sendmms_body_is_byte_for_byte_what_the_standard_library_encodes(
    mms: MMS, route: dict[str, Any], to: str, others: list[str] | None
) -> None:
    if others is not None and to in others:
        others = [n for n in others if n != to]
    request = send_request(mms, to=to, to_displayonly=others, **route)
    expected = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()
    first = FLAVOUR.send(mms, to, to_displayonly=others, **route).body
    again = FLAVOUR.send(mms, to, to_displayonly=others, **route).body
    assert first == again == expected
    assert json.loads(first)["to"] == json.loads(expected)["to"]


def test_a_second_recipient_of_the_same_message_gets_its_own_number_and_the_same_content() -> None:
    mms = MMS(slides=[Slide(text="Hi")], fallback_sms_text="x")
    route = {"service_id": "1", "sender": "12345"}
    one = json.loads(FLAVOUR.send(mms, "17745550001", **route).body)
    two = json.loads(FLAVOUR.send(mms, "17745550002", **route).body)
    assert (one.pop("to"), two.pop("to")) == ("17745550001", "17745550002")
    assert one == two


@pytest.mark.parametrize("kind", sorted(MEDIA_KINDS))
def test_the_hot_path_writes_each_media_kind_as_the_converter_does(kind: str) -> None:
    slide = Slide(text="t", **_media(kind, "https://e.com/m"))
    mms = MMS(slides=[slide, Slide(**_media(kind, "https://e.com/n"))])
    expected = json.dumps(converter.unstructure(mms), ensure_ascii=False, separators=(",", ":"))
    assert content_fragment(mms) == expected.encode()[1:-1]


@pytest.mark.parametrize("field", ["service_id", "sender", "from_mask", "client_reference"])
def test_a_list_given_as_a_route_value_is_refused_naming_the_field(field: str) -> None:
    mms = MMS(slides=[Slide(text="Hi")], fallback_sms_text="x")
    route: dict[str, Any] = {"service_id": "1", "sender": "12345", field: ["12345"]}
    with pytest.raises(ValidationError, match=rf"^{field}: must be "):
        FLAVOUR.send(mms, "17745550001", **route)


def test_a_message_without_fallback_text_is_refused_for_every_recipient() -> None:
    mms = MMS(slides=[Slide(text="Hi")])
    for to in ("17745550001", "17745550002"):
        with pytest.raises(ValidationError, match=r"^fallback_sms_text: is required to send"):
            FLAVOUR.send(mms, to, service_id="1", sender="12345")


def test_an_expiry_that_has_passed_is_refused_for_a_further_recipient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mms = MMS(slides=[Slide(text="Hi")], fallback_sms_text="x", expires_at=datetime.now(UTC) + timedelta(days=1))
    FLAVOUR.send(mms, "17745550001", service_id="1", sender="12345")
    later = datetime.now(UTC) + timedelta(days=2)
    check = models.check_deadlines
    monkeypatch.setattr(json_flavour, "check_deadlines", lambda e, f: check(e, f, now=later))
    with pytest.raises(ValidationError, match=r"^expires_at: .* is in the past"):
        FLAVOUR.send(mms, "17745550002", service_id="1", sender="12345")


def test_something_other_than_an_mms_is_refused_by_the_hot_path() -> None:
    with pytest.raises(ValidationError, match=r"^mms: must be an MMS, not dict$"):
        FLAVOUR.send({"slides": []}, "17745550001", service_id="1", sender="12345")  # type: ignore[arg-type]


@pytest.mark.parametrize("after", [True, 1.0])
def test_a_service_id_equal_to_a_cached_one_but_of_another_type_is_checked_again(after: object) -> None:
    """``True == 1`` and ``1.0 == 1``: the caches must not let them pass as the int 1 did."""
    mms = MMS(slides=[Slide(text="Hi")], fallback_sms_text="x")
    flavour = JsonFlavour("key", "http://127.0.0.1:9/ep/v2/")
    flavour.send(mms, "17745550001", service_id=1, sender="12345")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^service_id: "):
        flavour.send(mms, "17745550002", service_id=after, sender="12345")  # type: ignore[arg-type]

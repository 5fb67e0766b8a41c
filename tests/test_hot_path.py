"""The fast paths write exactly what the plain encoder writes (issue: the hot path)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mmsjson import MMS, Audio, Image, Slide
from mmsjson.flavours.json import JsonFlavour, send_request

FLAVOUR = JsonFlavour("key", "http://127.0.0.1:9/ep/v2/")
NUMBERS = ["17745550001", "17745550002", "447700900123", "6834002", "+1 (774) 555-0003"]

texts = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
)
slides = st.lists(
    st.builds(
        Slide,
        text=texts,
        image=st.none() | st.just(Image("https://example.com/a.jpg")),
        audio=st.none() | st.just(Audio("https://example.com/ü.mp3?q=\\\"x\"")),
    ),
    min_size=1, max_size=8,
)
messages = st.builds(
    MMS, slides=slides, subject=st.none() | st.text("abc ©°\"\\\n", max_size=80),
    fallback_sms_text=texts,
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

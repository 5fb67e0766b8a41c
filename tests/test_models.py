"""Every rule of the guide and the OpenAPI is refused on construction, naming the field."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsjson import MMS, Audio, BulkJob, Calendar, Contact, Image, Pdf, Slide, ValidationError, Video
from mmsjson.flavours.json import save_request, send_request, send_saved_request
from mmsjson.models import check_deadlines, check_fallback_for_send
from tests.conftest import in_days, picture_mms
from tests.schema import assert_valid_request

ROUTE: dict[str, Any] = {"service_id": "123", "sender": "12345"}

IMG, AUD, VID = Image("https://e.com/a.jpg"), Audio("https://e.com/a.mp3"), Video("https://e.com/v.mp4")
CARD, CAL, PDF = Contact("https://e.com/c.vcf"), Calendar("https://e.com/c.ics"), Pdf("https://e.com/d.pdf")


def one(slide: Slide, **fields: object) -> MMS:
    return MMS(slides=[slide], fallback_sms_text="fallback", **fields)  # type: ignore[arg-type]


def test_a_typical_message_builds() -> None:
    assert len(picture_mms().slides) == 3


def test_slides_given_as_a_list_are_kept_as_a_tuple() -> None:
    assert isinstance(picture_mms().slides, tuple)


def test_no_slides_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^slides: has 0 slides; an MMS has 1 to 8$"):
        MMS(slides=[], fallback_sms_text="x")


def test_nine_slides_are_refused() -> None:
    with pytest.raises(ValidationError, match="has 9 slides"):
        MMS(slides=[Slide(text=str(i)) for i in range(9)], fallback_sms_text="x")


def test_eight_slides_are_allowed() -> None:
    assert len(MMS(slides=[Slide(text=str(i)) for i in range(8)], fallback_sms_text="x").slides) == 8


def test_an_empty_slide_is_refused_by_position() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[1\]: .*empty slide"):
        MMS(slides=[Slide(text="a"), Slide()], fallback_sms_text="x")


def test_video_with_image_names_the_slide_and_the_rule() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[2\]: video cannot share a slide with image$"):
        MMS(slides=[Slide(text="a"), Slide(text="b"), Slide(image=IMG, video=VID)], fallback_sms_text="x")


def test_video_with_audio_is_refused() -> None:
    with pytest.raises(ValidationError, match="video cannot share a slide with audio"):
        one(Slide(audio=AUD, video=VID))


def test_image_with_audio_and_text_is_allowed() -> None:
    assert one(Slide(text="t", image=IMG, audio=AUD)).slides[0].media == (IMG, AUD)


def test_video_with_text_is_allowed() -> None:
    assert one(Slide(text="t", video=VID)).slides[0].video == VID


@pytest.mark.parametrize("obj", [CARD, CAL, PDF], ids=lambda o: o.kind)
@pytest.mark.parametrize("media", [IMG, AUD, VID], ids=lambda m: m.kind)
def test_an_object_never_shares_a_slide_with_image_audio_or_video(obj: object, media: object) -> None:
    slide = Slide(**{obj.kind: obj, media.kind: media})  # type: ignore[attr-defined, arg-type]
    with pytest.raises(ValidationError, match="objects go alone"):
        one(slide)


def test_two_objects_never_share_a_slide() -> None:
    with pytest.raises(ValidationError, match="one object per slide"):
        one(Slide(contact=CARD, pdf=PDF))


@pytest.mark.parametrize("obj", [CARD, CAL, PDF], ids=lambda o: o.kind)
def test_an_object_with_text_is_allowed(obj: object) -> None:
    one(Slide(text="see attached", **{obj.kind: obj}))  # type: ignore[attr-defined, arg-type]


def test_text_of_5000_characters_is_allowed() -> None:
    one(Slide(text="x" * 5000))


def test_text_over_5000_characters_is_refused_with_its_path() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[0\]\.text: has 5001 characters"):
        one(Slide(text="x" * 5001))


@pytest.mark.parametrize(
    "url", ["ftp://e.com/a.jpg", "/a.jpg", "e.com/a.jpg", "https:///a.jpg", "https://e.com/a b.jpg"]
)
def test_media_urls_must_be_absolute_http(url: str) -> None:
    with pytest.raises(ValidationError, match=r"^image\.url: "):
        Image(url)


def test_media_of_the_wrong_kind_is_refused_by_position() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[0\]\.image: must be Image\(url\), not Video"):
        one(Slide(image=VID))  # type: ignore[arg-type]


def test_subject_of_80_characters_is_allowed() -> None:
    one(Slide(text="a"), subject="s" * 80)


def test_subject_over_80_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^subject: has 81 characters"):
        one(Slide(text="a"), subject="s" * 81)


def test_emoji_in_the_subject_is_refused() -> None:
    with pytest.raises(ValidationError, match="emoji"):
        one(Slide(text="a"), subject="Sale \N{PARTY POPPER}")


def test_the_emoji_rule_names_the_document_it_comes_from() -> None:
    with pytest.raises(ValidationError, match=r"^subject: contains the emoji .* sendSavedMMS guide"):
        one(Slide(text="a"), subject="Sale \N{PARTY POPPER}")


@pytest.mark.parametrize(
    "emoji",
    [
        "1\ufe0f\u20e3",  # keycap one, fully qualified
        "#\u20e3",  # keycap number sign, unqualified
        "\u00a9\ufe0f",  # copyright sign in emoji presentation
        "\u2615",  # hot beverage: emoji presentation by default
        "\U0001f1eb\U0001f1f7",  # flag of France
        "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
        "\U0001f469\u200d\U0001f4bb",  # woman technologist (ZWJ sequence)
    ],
)
def test_every_kind_of_emoji_in_the_subject_is_refused(emoji: str) -> None:
    with pytest.raises(ValidationError, match="emoji"):
        one(Slide(text="a"), subject=f"Offer {emoji}")


@pytest.mark.parametrize("symbol", ["\u00a9", "\u2122", "\u00b0", "\u20ac", "\u2192", "\u263a", "\u00e9"])
def test_symbols_that_are_not_emoji_are_allowed_in_the_subject(symbol: str) -> None:
    assert one(Slide(text="a"), subject=f"Acme{symbol} 20 off").subject == f"Acme{symbol} 20 off"


def test_a_subject_of_several_lines_is_allowed() -> None:
    assert one(Slide(text="a"), subject="Sale\nToday only").subject == "Sale\nToday only"


def test_content_without_fallback_text_builds() -> None:
    assert MMS(slides=[Slide(text="a")]).fallback_sms_text is None


def test_sending_content_without_fallback_text_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"^fallback_sms_text: is required to send"):
        check_fallback_for_send(MMS(slides=[Slide(text="a")]))


def test_sendmms_without_fallback_text_is_refused_before_io() -> None:
    with pytest.raises(ValidationError, match=r"^fallback_sms_text: is required"):
        send_request(MMS(slides=[Slide(text="a")]), to="17745559144", **ROUTE)


def test_content_without_fallback_text_can_be_saved_as_a_template() -> None:
    payload = save_request(MMS(slides=[Slide(text="a")]), name="promo")
    assert "fallback-sms-text" not in payload
    assert_valid_request(payload)


def test_fallback_text_may_be_left_out_when_fallback_is_disabled() -> None:
    assert MMS(slides=[Slide(text="a")], disable_fallback_sms=True).fallback_sms_text is None


def test_expiry_within_3_days_is_allowed() -> None:
    one(Slide(text="a"), expires_at=in_days(2.9))


def test_expiry_beyond_3_days_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^expires_at: .* more than 3 days ahead"):
        one(Slide(text="a"), expires_at=in_days(3.1))


def test_expiry_in_the_past_is_refused() -> None:
    with pytest.raises(ValidationError, match="in the past"):
        one(Slide(text="a"), expires_at=in_days(-1))


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        one(Slide(text="a"), expires_at=datetime.now() + timedelta(hours=1))


def test_fallback_link_expiration_beyond_a_year_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^fallback_sms_link_expiration: .* more than 1 year"):
        one(Slide(text="a"), fallback_sms_link_expiration=in_days(367))


def test_one_year_ahead_counts_the_leap_day() -> None:
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    check_deadlines(None, datetime(2028, 3, 1, 12, tzinfo=UTC), now=now)  # 366 days
    with pytest.raises(ValidationError, match="more than 1 year ahead"):
        check_deadlines(None, datetime(2028, 3, 1, 12, 0, 1, tzinfo=UTC), now=now)


def test_one_year_from_29_february_ends_on_28_february() -> None:
    now = datetime(2028, 2, 29, 12, tzinfo=UTC)
    check_deadlines(None, datetime(2029, 2, 28, 12, tzinfo=UTC), now=now)
    with pytest.raises(ValidationError, match="more than 1 year ahead"):
        check_deadlines(None, datetime(2029, 3, 1, tzinfo=UTC), now=now)


def test_one_year_ahead_is_judged_in_utc() -> None:
    east = timezone(timedelta(hours=14))
    now = datetime(2027, 3, 1, 6, tzinfo=east)  # 28 February 2027, 16:00 UTC
    check_deadlines(None, datetime(2028, 2, 28, 16, tzinfo=UTC), now=now)
    with pytest.raises(ValidationError, match="more than 1 year ahead"):
        check_deadlines(None, datetime(2028, 2, 28, 16, 0, 1, tzinfo=UTC), now=now)


def test_a_switch_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="disable_fallback_sms: must be True, False or None"):
        one(Slide(text="a"), disable_fallback_sms="yes")


def test_validation_errors_are_value_errors_too() -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        MMS(slides=[], fallback_sms_text="x")


def test_models_are_frozen() -> None:
    mms = picture_mms()
    with pytest.raises(AttributeError):
        mms.subject = "changed"  # type: ignore[misc]


# -- text that cannot be encoded as UTF-8 -------------------------------------------------------

LONE = "bad\ud800text"


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: one(Slide(text=LONE)), "slides[0].text"),
        (lambda: one(Slide(text="a"), subject=LONE), "subject"),
        (lambda: MMS(slides=[Slide(text="a")], fallback_sms_text=LONE), "fallback_sms_text"),
        (lambda: Image(f"https://e.com/{LONE}"), "image.url"),
        (lambda: send_request(picture_mms(), to="17745559144", client_reference=LONE, **ROUTE), "client_reference"),
        (lambda: send_request(picture_mms(), to="17745559144", from_mask=LONE, **ROUTE), "from_mask"),
        (lambda: save_request(picture_mms(), name=LONE), "name"),
        (lambda: send_saved_request("1", to="17745559144", custom_texts={1: LONE}, **ROUTE), "custom_texts[1]"),
        (lambda: send_saved_request("1", to="17745559144", fallback_sms_text=LONE, **ROUTE), "fallback_sms_text"),
        (lambda: send_saved_request(LONE, to="17745559144", **ROUTE), "mms_id"),
    ],
    ids=[
        "slide text", "subject", "fallback text", "url", "client reference", "from mask",
        "template name", "custom text", "saved fallback text", "mms id",
    ],
)
def test_text_that_cannot_be_encoded_as_utf8_is_refused_naming_the_field(
    build: Callable[[], object], path: str
) -> None:
    with pytest.raises(ValidationError, match="lone surrogate U\\+D800") as info:
        build()
    assert info.value.path == path


# -- wrong input types --------------------------------------------------------------------------


@pytest.mark.parametrize("slides", [None, 5, "text", b"bytes", {"text": "a"}, {Slide(text="a")}])
def test_slides_that_are_not_a_list_are_refused_naming_the_field(slides: object) -> None:
    with pytest.raises(ValidationError, match="^slides: must be a list"):
        MMS(slides=slides, fallback_sms_text="x")  # type: ignore[arg-type]


def test_one_slide_not_in_a_list_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match="put the one Slide in a list"):
        MMS(slides=Slide(text="a"), fallback_sms_text="x")  # type: ignore[arg-type]


def test_slides_from_a_generator_are_kept_as_a_tuple_in_order() -> None:
    mms = MMS(slides=(Slide(text=str(i)) for i in range(3)), fallback_sms_text="x")
    assert [s.text for s in mms.slides] == ["0", "1", "2"]


def test_a_list_as_sender_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="^sender: must be a phone number as a string, not list"):
        send_request(picture_mms(), to="17745559144", service_id="1", sender=["12345"])  # type: ignore[arg-type]


@pytest.mark.parametrize("others", [5, "17745550002,17745550003", {"17745550002": 1}])
def test_display_only_participants_that_are_not_a_list_are_refused(others: object) -> None:
    with pytest.raises(ValidationError, match="^to_displayonly: must be a list of numbers"):
        send_request(picture_mms(), to="17745559144", to_displayonly=others, **ROUTE)  # type: ignore[arg-type]


def test_bytes_as_from_mask_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="^from_mask: must be a string, not bytes"):
        send_request(picture_mms(), to="17745559144", from_mask=b"ACME", **ROUTE)  # type: ignore[arg-type]


def test_a_from_mask_over_50_characters_is_refused() -> None:
    with pytest.raises(ValidationError, match="^from_mask: has 51 characters"):
        send_request(picture_mms(), to="17745559144", from_mask="M" * 51, **ROUTE)


def test_a_bulk_job_without_display_only_participants_may_say_none() -> None:
    assert BulkJob(to="17745559144", mms_id="1", to_displayonly=None).to_displayonly == ()


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"to_displayonly": 5}, "to_displayonly"),
        ({"to_displayonly": "17745550002"}, "to_displayonly"),
        ({"to": 17745559144}, "to"),
        ({"mms": "not an MMS"}, "mms"),
        ({"mms_id": 35674}, "mms_id"),
        ({"client_reference": 7}, "client_reference"),
        ({"custom_texts": [1]}, "custom_texts"),
        ({"key": ["k"]}, "key"),
    ],
)
def test_a_bulk_job_of_wrong_types_is_refused_naming_the_field(fields: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as info:
        BulkJob(**{"to": "17745559144", "mms_id": "1", **fields})  # type: ignore[arg-type]
    assert info.value.path == path


def test_a_switch_of_a_saved_send_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="^disable_fallback_sms_link: must be True, False or None"):
        send_saved_request("1", to="17745559144", disable_fallback_sms_link="no", **ROUTE)  # type: ignore[arg-type]


@pytest.mark.parametrize("service_id", [[1], 1.5, True, b"123", " "])
def test_a_service_id_that_is_not_a_campaign_id_is_refused(service_id: object) -> None:
    with pytest.raises(ValidationError, match="^service_id: "):
        send_request(picture_mms(), to="17745559144", service_id=service_id, sender="12345")  # type: ignore[arg-type]


def test_a_service_id_given_as_an_int_is_written_in_digits() -> None:
    payload = send_request(picture_mms(), to="17745559144", service_id=12345, sender="12345")  # type: ignore[arg-type]
    assert payload["service-id"] == "12345"


@pytest.mark.parametrize(
    "space", ["\u00a0", "\u3000", "\u2028", "\u200b", "\u0000", "\u0085", "\ufeff"],
    ids=["nbsp", "ideographic space", "line separator", "zero width space", "nul", "next line", "bom"],
)
@pytest.mark.parametrize("where", ["https://e.com/a{}b.jpg", "https://e{}.com/a.jpg", "https://e.com/a.jpg?q={}"])
def test_a_url_with_unicode_whitespace_or_a_control_character_is_refused(space: str, where: str) -> None:
    with pytest.raises(ValidationError, match=r"^image\.url: "):
        Image(where.format(space))


def test_a_url_with_non_ascii_letters_is_allowed() -> None:
    assert Image("https://e.com/caf\u00e9.jpg").url == "https://e.com/caf\u00e9.jpg"


# -- any input: a ValidationError or a request the schema accepts -------------------------------
# Each example starts from valid arguments and spoils none, one or a few of them with a value of a
# wrong type or an edge value, so both the refusals and the accepted requests are exercised.

_junk: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.binary(max_size=4),
    st.lists(st.integers() | st.text(max_size=3), max_size=3),
    st.dictionaries(st.integers() | st.text(max_size=2), st.text(max_size=3), max_size=2),
    st.builds(object), st.datetimes(), st.just(IMG), st.just(Slide(text="a")),
)
_text = st.text(st.characters(codec="utf-8"), max_size=20)
_edge_text = st.sampled_from(["", " ", "\N{PARTY POPPER}", "1\ufe0f\u20e3", "\u00a9 \u00b0", "a\nb", "\ud800", "x" * 5001])
_url = st.builds(
    "https://{}.example/{}".format,
    st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.from_regex(r"[a-z0-9._~%-]{0,12}", fullmatch=True),
)
_edge_url = st.sampled_from(["ftp://e.com/a", "https://e.com/a\u00a0b", "https://e.com/\u2028", "https://e.com/\x00", "/a.jpg"])
_KINDS: dict[str, type[Any]] = {
    "image": Image, "audio": Audio, "video": Video, "contact": Contact, "calendar": Calendar, "pdf": Pdf,
}


@attrs.frozen
class _Made:
    """A media object to construct inside the test (its constructor may refuse the url)."""

    kind: str
    url: object

    def make(self) -> object:
        return _KINDS[self.kind](self.url)


def _made(kind: str) -> st.SearchStrategy[_Made]:
    return st.builds(_Made, st.just(kind), _url)


def _spoil(valid: st.SearchStrategy[dict[str, Any]], spoilers: dict[str, st.SearchStrategy[Any]]) -> Any:
    @st.composite
    def spoiled(draw: st.DrawFn) -> dict[str, Any]:
        fields = draw(valid)
        if draw(st.integers(0, 9)) < 2:
            for name in draw(st.lists(st.sampled_from(sorted(spoilers)), min_size=1, max_size=2, unique=True)):
                fields[name] = draw(spoilers[name])
        return fields

    return spoiled()


_any_media = st.sampled_from(sorted(_KINDS)).flatmap(
    lambda kind: st.builds(_Made, st.just(kind), _url | _edge_url | _junk)
)
_slide_spec = _spoil(
    st.one_of(
        st.fixed_dictionaries({"text": _text.filter(bool)}),
        st.fixed_dictionaries({"image": _made("image")}, optional={"text": _text, "audio": _made("audio")}),
        st.fixed_dictionaries({"video": _made("video")}, optional={"text": _text}),
        st.sampled_from(["contact", "calendar", "pdf"]).flatmap(
            lambda kind: st.fixed_dictionaries({kind: _made(kind)}, optional={"text": _text})
        ),
    ),
    {"text": _edge_text | _junk, **{kind: _any_media | _junk for kind in _KINDS}},
)
_switch = st.none() | st.booleans()
_mms_spec = _spoil(
    st.fixed_dictionaries(
        {"slides": st.lists(_slide_spec, min_size=1, max_size=8), "fallback_sms_text": _text.filter(bool)},
        optional={
            "subject": _text,
            "disable_fallback_sms": _switch, "disable_fallback_sms_link": _switch, "cache_content": _switch,
            "expires_at": st.floats(0.1, 2.9).map(in_days),
            "fallback_sms_link_expiration": st.floats(1, 360).map(in_days),
        },
    ),
    {
        "slides": st.lists(_slide_spec, max_size=10) | st.lists(_slide_spec, max_size=2).map(iter) | _junk,
        "subject": _edge_text | st.text(min_size=79, max_size=82) | _junk,
        "fallback_sms_text": st.none() | _edge_text | _junk,
        "disable_fallback_sms": _junk, "disable_fallback_sms_link": _junk, "cache_content": _junk,
        "expires_at": st.floats(-1, 4).map(in_days) | _junk,
        "fallback_sms_link_expiration": st.floats(-1, 370).map(in_days) | _junk,
    },
)
_number = st.sampled_from(["17745559144", "+1 774 555 0002", "1 (774) 555-0003", "6834002", "442079460000"])
_edge_number = st.sampled_from(["7745559144", "1234", "0044207946000", "+", "1774555914412345", "1774\ud800"])
_route_spec = _spoil(
    st.fixed_dictionaries(
        {"to": _number, "service_id": st.sampled_from(["123", 123]), "sender": _number | st.just("12345")},
        optional={
            "to_displayonly": st.none() | st.lists(_number, max_size=3),
            "from_mask": st.none() | st.just("ACME"),
            "client_reference": st.none() | _text,
        },
    ),
    {
        "to": _edge_number | _junk, "service_id": _junk, "sender": _edge_number | _junk,
        "to_displayonly": st.lists(_edge_number | _junk, min_size=1, max_size=2) | _junk,
        "from_mask": _edge_text | st.text(min_size=50, max_size=51) | _junk,
        "client_reference": _edge_text | st.text(min_size=64, max_size=65) | _junk,
    },
)


def _build(value: Any) -> Any:
    """Construct what a spec describes: media, then slides, then the message."""
    if isinstance(value, _Made):
        return value.make()
    if isinstance(value, dict):
        return {name: _build(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_build(item) for item in value]
    return value


def _mms(spec: dict[str, Any]) -> Any:
    slides = spec.get("slides")
    if isinstance(slides, list):
        slides = [Slide(**_build(item)) if isinstance(item, dict) else item for item in slides]
    return MMS(**{**_build(spec), "slides": slides})


@settings(max_examples=300, deadline=None)
@given(_mms_spec, _route_spec)
def test_any_input_to_the_constructors_gives_a_validation_error_or_a_valid_request(
    mms_spec: dict[str, Any], route: dict[str, Any]
) -> None:
    try:
        payload = send_request(_mms(mms_spec), **route)
    except ValidationError:
        return
    assert_valid_request(payload)


@settings(max_examples=200, deadline=None)
@given(
    _spoil(
        st.fixed_dictionaries(
            {"to": _number},
            optional={
                "to_displayonly": st.none() | st.lists(_number, max_size=3),
                "client_reference": st.none() | _text,
                "custom_texts": st.none() | st.dictionaries(st.integers(1, 8), _text, min_size=1, max_size=3),
                "key": st.none() | _text,
            },
        ),
        {
            "to": _edge_number | _junk, "to_displayonly": _junk, "client_reference": _edge_text | _junk,
            "custom_texts": st.dictionaries(st.integers(0, 9) | _text, _edge_text | _junk, max_size=2) | _junk,
            "key": _junk,
        },
    ),
    st.one_of(st.tuples(_mms_spec, st.none()), st.tuples(st.none(), st.sampled_from(["35674", " "]) | _junk)),
)
def test_any_bulk_job_gives_a_validation_error_or_a_valid_request(
    fields: dict[str, Any], content: tuple[dict[str, Any] | None, Any]
) -> None:
    mms_spec, mms_id = content
    try:
        mms = None if mms_spec is None else _mms(mms_spec)
        job = BulkJob(**fields, mms=mms, mms_id=mms_id)
        route: dict[str, Any] = {
            "to": job.to, "to_displayonly": job.to_displayonly, "client_reference": job.client_reference,
            **ROUTE,
        }
        if job.mms is not None:
            payload = send_request(job.mms, **route)
        else:
            payload = send_saved_request(job.mms_id, custom_texts=job.custom_texts, **route)  # type: ignore[arg-type]
    except ValidationError:
        return
    assert_valid_request(payload)


# -- the fast paths judge as the full rules do --------------------------------------------------

_url_chars = st.sampled_from([*"ab.:/?#@1 ", "%20", "x-y", "é"])


@settings(max_examples=300)
@given(
    scheme=st.sampled_from(["http://", "https://", "https:/", "ftp://", ""]),
    rest=st.lists(_url_chars, max_size=12).map("".join),
)
def test_a_url_is_accepted_exactly_when_the_full_pattern_accepts_it(scheme: str, rest: str) -> None:
    from mmsjson.models import _ABSOLUTE_URL

    url = scheme + rest
    accepted = bool(_ABSOLUTE_URL.fullmatch(url))
    for _ in range(2):  # the second time it may come from the remembered URLs
        try:
            Image(url)
        except ValidationError:
            assert not accepted, url
        else:
            assert accepted, url


def test_a_refused_url_is_refused_again() -> None:
    for _ in range(2):
        with pytest.raises(ValidationError, match=r"^image\.url: .* must be an absolute http"):
            Image("https:///a.jpg")


def test_a_url_with_a_user_and_a_port_is_allowed() -> None:
    assert Image("https://ann@e.com:8443/a.jpg").url == "https://ann@e.com:8443/a.jpg"


class _MyImage(Image):
    """A user's subclass of Image: the fast path takes exact classes only, the rules take any."""


def test_a_subclass_of_image_may_share_a_slide_with_audio() -> None:
    assert one(Slide(image=_MyImage("https://e.com/a.jpg"), audio=AUD)).slides[0].audio == AUD


def test_a_subclass_of_image_cannot_share_a_slide_with_video() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[0\]: video cannot share a slide with image$"):
        one(Slide(image=_MyImage("https://e.com/a.jpg"), video=VID))


def test_audio_given_as_the_image_is_refused_by_position() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[0\]\.image: must be Image\(url\), not Audio"):
        one(Slide(image=AUD, audio=AUD))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["disable_fallback_sms", "disable_fallback_sms_link", "cache_content"])
def test_each_switch_must_be_a_bool_and_is_named(name: str) -> None:
    with pytest.raises(ValidationError, match=rf"^{name}: must be True, False or None, not 1$"):
        one(Slide(text="a"), **{name: 1})


def test_a_non_ascii_fallback_text_is_allowed() -> None:
    assert MMS(slides=[Slide(text="a")], fallback_sms_text="Grüße").fallback_sms_text == "Grüße"


def test_a_fallback_text_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^fallback_sms_text: must be a string, not int$"):
        MMS(slides=[Slide(text="a")], fallback_sms_text=3)  # type: ignore[arg-type]


def test_the_first_field_in_order_is_the_one_refused() -> None:
    with pytest.raises(ValidationError, match=r"^slides\[0\]: a slide needs text"):
        MMS(slides=[Slide()], subject=3, fallback_sms_text=4, cache_content=5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^subject: "):
        MMS(slides=[Slide(text="a")], subject=3, fallback_sms_text=4)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^fallback_sms_text: "):
        MMS(slides=[Slide(text="a")], fallback_sms_text=4, disable_fallback_sms=5)  # type: ignore[arg-type]


def test_slides_given_as_a_generator_are_taken() -> None:
    assert len(MMS(slides=(Slide(text=t) for t in "ab"), fallback_sms_text="x").slides) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"to": 17745559144}, "to: must be a phone number as a string, not int"),
        ({"mms": "not an MMS"}, "mms: must be an MMS, not str"),
        ({"mms_id": 35674}, "mms_id: must be the template's id as a string, not int"),
        ({"client_reference": 7}, "client_reference: must be a string, not int"),
        ({"custom_texts": [1]}, "custom_texts: must be a mapping of slide numbers to texts, not list"),
        ({"key": ["k"]}, "key: must be a string, not list"),
        ({"service_id": 1}, "service_id: must be a string, not int"),
        ({"sender": 12345}, "sender: must be a short code or number as a string, not int"),
        ({"from_mask": b"ACME"}, "from_mask: must be a string, not bytes"),
        ({"subject": 1}, "subject: must be a string, not int"),
        ({"fallback_sms_text": 1}, "fallback_sms_text: must be a string, not int"),
        ({"expires_at": "tomorrow"}, "expires_at: must be a datetime, not str"),
    ],
)
def test_a_bulk_job_says_what_type_each_field_must_be(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        BulkJob(**{"to": "17745559144", "mms_id": "1", **fields})  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_bulk_job_with_several_wrong_types_names_the_first_field() -> None:
    with pytest.raises(ValidationError) as info:
        BulkJob(to="17745559144", mms_id=1, expires_at="x", sender=2)  # type: ignore[arg-type]
    assert info.value.path == "mms_id"


def test_a_bulk_job_takes_subclasses_of_its_field_types() -> None:
    class Number(str):
        pass

    job = BulkJob(to=Number("17745559144"), mms_id=Number("1"), custom_texts={1: "hi"})
    assert job.to == "17745559144"


def test_a_bulk_job_takes_each_field_as_a_keyword_with_the_fields_default() -> None:
    parameters = list(inspect.signature(BulkJob).parameters.values())
    fields = attrs.fields(BulkJob)
    assert [p.name for p in parameters] == [f.name for f in fields]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    assert [p.default for p in parameters] == [
        inspect.Parameter.empty if f.default is attrs.NOTHING else f.default for f in fields
    ]


def test_a_bulk_job_keeps_display_only_participants_as_a_tuple_also_when_evolved() -> None:
    job = BulkJob(to="17745559144", mms_id="1", to_displayonly=["17745550002"])
    assert job.to_displayonly == ("17745550002",)
    assert attrs.evolve(job, to="17745550003") == BulkJob(
        to="17745550003", mms_id="1", to_displayonly=("17745550002",)
    )

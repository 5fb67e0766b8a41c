"""Every rule of the guide and the OpenAPI is refused on construction, naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mmsjson import MMS, Audio, Calendar, Contact, Image, Pdf, Slide, ValidationError, Video
from tests.conftest import in_days, picture_mms

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


def test_fallback_text_is_required_while_fallback_is_on() -> None:
    with pytest.raises(ValidationError, match=r"^fallback_sms_text: is required"):
        MMS(slides=[Slide(text="a")])


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
    with pytest.raises(ValidationError, match=r"^fallback_sms_link_expiration: .* 365 days"):
        one(Slide(text="a"), fallback_sms_link_expiration=in_days(366))


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

"""The message builder: media objects, slides, the MMS content, and the results of sends.

Everything is a frozen attrs class checked on construction, so a message the API would reject is
refused with a :class:`~mmsjson.errors.ValidationError` before any network I/O. A slide's rules are
checked when it is placed in an :class:`MMS`, so the error can name its position
(``slides[2]: video cannot share a slide with image``).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import attrs
from attrs import field, frozen

from mmsjson.errors import MMSError, ValidationError

__all__ = [
    "Audio",
    "BulkJob",
    "BulkOutcome",
    "BulkProgress",
    "Calendar",
    "Contact",
    "GroupResult",
    "Image",
    "MAX_SLIDES",
    "MAX_SUBJECT_LENGTH",
    "MAX_TEXT_LENGTH",
    "MEDIA_KINDS",
    "MMS",
    "Media",
    "MediaKind",
    "Outcome",
    "OutcomeStatus",
    "Pdf",
    "SaveResult",
    "SendResult",
    "Slide",
    "Video",
    "check_client_reference",
    "check_custom_texts",
    "check_deadlines",
    "check_subject",
]

MAX_SLIDES = 8
MAX_TEXT_LENGTH = 5000
MAX_SUBJECT_LENGTH = 80
MAX_CLIENT_REFERENCE_LENGTH = 64
MAX_EXPIRY = timedelta(days=3)
MAX_LINK_EXPIRATION = timedelta(days=365)


_ABSOLUTE_URL = re.compile(r"https?://(?:[^\s/?#@]*@)?[^\s/?#@:]+(?::[0-9]*)?(?:[/?#]\S*)?", re.ASCII)


def _check_url(instance: Media, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is str and _ABSOLUTE_URL.fullmatch(value):
        return
    path = f"{instance.kind}.url"
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a URL string, not {type(value).__name__}")
    if any(ch.isspace() for ch in value):
        raise ValidationError(path, f"{value!r} contains whitespace; percent-encode it")
    raise ValidationError(path, f"{value!r} must be an absolute http:// or https:// URL with a host")


@frozen
class Media:
    """A file the service fetches from a public URL when it builds the MMS."""

    kind: ClassVar[str] = "media"
    url: str = field(validator=_check_url)

    @property
    def is_object(self) -> bool:
        """Whether this is an object (contact card, calendar, document) rather than image/audio/video."""
        return MEDIA_KINDS[self.kind].is_object


@frozen
class Image(Media):
    """A .jpg, .png or .gif picture; may share a slide with audio."""

    kind: ClassVar[str] = "image"


@frozen
class Audio(Media):
    """An .mp3, .wav or .amr sound; may share a slide with an image."""

    kind: ClassVar[str] = "audio"


@frozen
class Video(Media):
    """An .mp4, .mpeg, .avi, .wmv, .mov or .3gp video; only text may share its slide."""

    kind: ClassVar[str] = "video"


@frozen
class Contact(Media):
    """A vCard (.vcf); an object, alone on its slide apart from text."""

    kind: ClassVar[str] = "contact"


@frozen
class Calendar(Media):
    """An iCalendar file (.ics); an object, alone on its slide apart from text."""

    kind: ClassVar[str] = "calendar"


@frozen
class Pdf(Media):
    """A PDF document; an object, alone on its slide apart from text."""

    kind: ClassVar[str] = "pdf"


@frozen(kw_only=True)
class MediaKind:
    """One kind of slide media, as every part of the SDK sees it.

    ``name`` is the :class:`Slide` field and the class's ``kind``; ``json_key`` the key of the
    slide object in the JSON API (OpenAPI ``Slide``); ``xml_element`` the element in the XML
    flavour; ``is_object`` whether it must go alone on its slide (guide: "objects"); and
    ``content_types`` the MIME types the service takes for it (guide: supported media), which
    the media pre-flight checks.
    """

    name: str
    cls: type[Media]
    json_key: str
    xml_element: str
    is_object: bool
    content_types: frozenset[str]


#: Every slide media kind: add a kind here, as a class above and as a :class:`Slide` field.
MEDIA_KINDS: Mapping[str, MediaKind] = {
    kind.name: kind
    for kind in (
        MediaKind(
            name="image", cls=Image, json_key="image", xml_element="image", is_object=False,
            content_types=frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif"}),
        ),
        MediaKind(
            name="audio", cls=Audio, json_key="audio", xml_element="audio", is_object=False,
            content_types=frozenset(
                {"audio/mp3", "audio/mpeg", "audio/x-wave", "audio/x-wav", "audio/wav", "audio/amr"}
            ),
        ),
        MediaKind(
            name="video", cls=Video, json_key="video", xml_element="video", is_object=False,
            content_types=frozenset({
                "video/mp4", "video/mpeg", "video/x-msvideo", "video/x-ms-wmv",
                "video/quicktime", "video/3gpp",
            }),
        ),
        MediaKind(
            name="contact", cls=Contact, json_key="contact", xml_element="vcard", is_object=True,
            content_types=frozenset({"text/vcard", "text/v-card", "text/x-vcard"}),
        ),
        MediaKind(
            name="calendar", cls=Calendar, json_key="calendar", xml_element="ical", is_object=True,
            content_types=frozenset({"text/calendar"}),
        ),
        MediaKind(
            name="pdf", cls=Pdf, json_key="pdf", xml_element="pdf", is_object=True,
            content_types=frozenset({"application/pdf", "application/x-pdf"}),
        ),
    )
}


def _optional_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(attribute.name, f"must be a string, not {type(value).__name__}")


@frozen(kw_only=True)
class Slide:
    """One slide: optional text and the media that may go together.

    Image and audio may share a slide; video goes alone; a contact, calendar or PDF object goes
    alone; text may join any of them. The rules are checked when the slide is placed in an
    :class:`MMS`.
    """

    text: str | None = None
    image: Image | None = None
    audio: Audio | None = None
    video: Video | None = None
    contact: Contact | None = None
    calendar: Calendar | None = None
    pdf: Pdf | None = None

    @property
    def media(self) -> tuple[Media, ...]:
        """The media on this slide, in the order of :data:`MEDIA_KINDS`."""
        return tuple(m for name in _SLIDE_MEDIA if (m := getattr(self, name)) is not None)

    def check(self) -> None:
        """Raise :class:`ValidationError` (path relative to the slide) if the API would refuse it."""
        text = self.text
        if text is not None:
            if type(text) is not str:
                raise ValidationError("text", f"must be a string, not {type(text).__name__}")
            if len(text) > MAX_TEXT_LENGTH:
                raise ValidationError(
                    "text", f"has {len(text)} characters, at most {MAX_TEXT_LENGTH} are allowed"
                )
        media = []
        for name, kind in _SLIDE_MEDIA.items():
            item = getattr(self, name)
            if item is not None:
                if not isinstance(item, kind):
                    raise ValidationError(
                        name, f"must be {kind.__name__}(url), not {type(item).__name__}"
                    )
                media.append(item)
        if len(media) < 2:
            if not media and not text:
                raise ValidationError("", "a slide needs text or media; an empty slide is refused")
            return
        kinds = [m.kind for m in media]
        objects = [m.kind for m in media if m.is_object]
        if len(objects) > 1:
            raise ValidationError(
                "", f"{objects[1]} cannot share a slide with {objects[0]}: one object per slide"
            )
        if objects:
            other = next(k for k in kinds if k != objects[0])
            raise ValidationError(
                "", f"{objects[0]} cannot share a slide with {other}: objects go alone"
            )
        if "video" in kinds:
            other = next(k for k in kinds if k != "video")
            raise ValidationError("", f"video cannot share a slide with {other}")


_SLIDE_MEDIA: dict[str, type[Media]] = {name: kind.cls for name, kind in MEDIA_KINDS.items()}


def _check_slides(instance: MMS, attribute: attrs.Attribute[Any], value: tuple[Slide, ...]) -> None:
    if not 1 <= len(value) <= MAX_SLIDES:
        raise ValidationError(
            "slides", f"has {len(value)} slides; an MMS has 1 to {MAX_SLIDES}"
        )
    for index, slide in enumerate(value):
        if not isinstance(slide, Slide):
            raise ValidationError(
                f"slides[{index}]", f"must be a Slide, not {type(slide).__name__}"
            )
        try:
            slide.check()
        except ValidationError as exc:
            raise exc.within(f"slides[{index}]") from None


def check_subject(value: object, path: str = "subject") -> None:
    """Refuse a subject the API or the carriers' MMSCs would reject (long, multi-line, emoji)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_SUBJECT_LENGTH:
        raise ValidationError(
            path,
            f"has {len(value)} characters, at most {MAX_SUBJECT_LENGTH} are allowed "
            "(40 or fewer deliver best)",
        )
    if "\n" in value or "\r" in value:
        raise ValidationError(path, "must be one line")
    if value.isascii():
        return
    for ch in value:
        if ord(ch) > 0xFFFF or unicodedata.category(ch) == "So":
            raise ValidationError(
                path, f"contains the symbol {ch!r}; carriers reject emoji in subjects"
            )


def check_client_reference(value: object, path: str = "client_reference") -> None:
    """Refuse a client reference that is not a string of at most 64 characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_CLIENT_REFERENCE_LENGTH:
        raise ValidationError(
            path,
            f"has {len(value)} characters, at most {MAX_CLIENT_REFERENCE_LENGTH} are allowed",
        )


def _check_deadline(value: datetime | None, path: str, limit: timedelta, now: datetime) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise ValidationError(path, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            path, "must be timezone-aware, e.g. datetime.now(timezone.utc) + timedelta(days=1)"
        )
    if value <= now:
        raise ValidationError(path, f"{value.isoformat()} is in the past")
    if value - now > limit:
        raise ValidationError(
            path, f"{value.isoformat()} is more than {limit.days} days ahead; the API allows "
            f"at most {limit.days}"
        )


def check_deadlines(
    expires_at: datetime | None,
    fallback_sms_link_expiration: datetime | None,
    now: datetime | None = None,
) -> None:
    """Refuse an expiry more than 3 days ahead or a fallback link expiration beyond 1 year."""
    now = now or datetime.now(UTC)
    _check_deadline(expires_at, "expires_at", MAX_EXPIRY, now)
    _check_deadline(
        fallback_sms_link_expiration, "fallback_sms_link_expiration", MAX_LINK_EXPIRATION, now
    )


def _subject(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_subject(value)


def _check_bool(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be True, False or None, not {value!r}")


def _to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@frozen(kw_only=True)
class MMS:
    """The content of a multimedia message: slides, subject and fallback SMS settings.

    Who receives it (``to``), who sends it and the client reference are given per send.
    ``fallback_sms_text`` is required unless ``disable_fallback_sms`` is true: it is what the
    recipient gets when their phone or carrier cannot take MMS. ``expires_at`` (at most 3 days
    ahead) stops delivery attempts; ``fallback_sms_link_expiration`` (at most 1 year ahead) ends
    the fallback link. ``None`` leaves a setting to the service.
    """

    slides: tuple[Slide, ...] = field(converter=_to_tuple, validator=_check_slides)
    subject: str | None = field(default=None, validator=_subject)
    fallback_sms_text: str | None = field(default=None, validator=_optional_str)
    disable_fallback_sms: bool | None = field(default=None, validator=_check_bool)
    disable_fallback_sms_link: bool | None = field(default=None, validator=_check_bool)
    fallback_sms_link_expiration: datetime | None = None
    expires_at: datetime | None = None
    cache_content: bool | None = field(default=None, validator=_check_bool)

    def __attrs_post_init__(self) -> None:
        if not self.disable_fallback_sms and not self.fallback_sms_text:
            raise ValidationError(
                "fallback_sms_text",
                "is required unless disable_fallback_sms=True: it is sent when the phone "
                "cannot receive MMS",
            )
        if self.expires_at is not None or self.fallback_sms_link_expiration is not None:
            check_deadlines(self.expires_at, self.fallback_sms_link_expiration)


def check_custom_texts(value: Mapping[int, str] | None, path: str = "custom_texts") -> None:
    """Refuse custom slide texts that do not map slide numbers 1..8 to texts of at most 5,000."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ValidationError(path, "must map slide numbers (1-8) to texts, e.g. {1: 'Hi Ann'}")
    for number, text in value.items():
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValidationError(f"{path}[{number!r}]", "slide numbers are integers 1 to 8")
        if not 1 <= number <= MAX_SLIDES:
            raise ValidationError(f"{path}[{number}]", "slide numbers run from 1 to 8")
        if not isinstance(text, str):
            raise ValidationError(f"{path}[{number}]", "must be a string")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValidationError(
                f"{path}[{number}]",
                f"has {len(text)} characters, at most {MAX_TEXT_LENGTH} are allowed",
            )


@frozen(kw_only=True)
class SendResult:
    """The API accepted a ``sendmms`` or ``sendsavedmms`` request and queued it."""

    tracking_id: str
    to: str | None = None
    mms_id: str | None = None
    sender: str | None = None
    status_details: str | None = None
    raw: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)


@frozen(kw_only=True)
class SaveResult:
    """The API accepted a ``savemms`` request; ``mms_id`` is set when the answer carried it.

    The template's ``mms-id`` otherwise arrives later in an N003 postback for this tracking id.
    """

    tracking_id: str
    mms_id: str | None = None
    status_details: str | None = None
    raw: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)


class OutcomeStatus(enum.StrEnum):
    """What became of one recipient's request."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@frozen(kw_only=True)
class Outcome:
    """One recipient's outcome: accepted with a tracking id, rejected with an error, or unknown.

    ``unknown`` means the request may have been accepted but no answer came back; it was not
    resent, so that nobody gets the same MMS twice.
    """

    to: str
    status: OutcomeStatus
    tracking_id: str | None = None
    error: MMSError | None = field(default=None, eq=False)
    attempts: int = 0

    @property
    def code(self) -> str | None:
        """The API's error code when rejected by the API (``E113``, ``E110``...)."""
        return getattr(self.error, "code", None)

    @property
    def info(self) -> str | None:
        """What went wrong, in words, when not accepted."""
        return None if self.error is None else str(self.error)


@frozen(kw_only=True)
class GroupResult:
    """The outcome of a group send: one request per participant, one outcome each."""

    outcomes: tuple[Outcome, ...]

    @property
    def accepted(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is OutcomeStatus.ACCEPTED)

    @property
    def rejected(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is OutcomeStatus.REJECTED)

    @property
    def unknown(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.status is OutcomeStatus.UNKNOWN)

    @property
    def ok(self) -> bool:
        """True when every participant's request was accepted."""
        return all(o.status is OutcomeStatus.ACCEPTED for o in self.outcomes)

    def __getitem__(self, number: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.to == number:
                return outcome
        raise KeyError(number)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@frozen(kw_only=True)
class BulkJob:
    """One request of a bulk run: a recipient and either content or a saved template's id.

    Jobs are checked when the run reaches them; a bad job gets a ``rejected`` outcome carrying a
    :class:`ValidationError` and the run goes on. ``key`` identifies the job in a journal; by
    default it is derived from the recipient and content.
    """

    to: str
    mms: MMS | None = None
    mms_id: str | None = None
    to_displayonly: tuple[str, ...] = field(default=(), converter=_strings)
    client_reference: str | None = None
    custom_texts: Mapping[int, str] | None = None
    key: str | None = None


@frozen(kw_only=True)
class BulkOutcome(Outcome):
    """A bulk job's outcome; ``index`` is the job's position in the stream of jobs.

    ``replayed`` is true when the outcome comes from the journal of an earlier run and nothing was
    sent this time.
    """

    job: BulkJob = field(eq=False, repr=False)
    index: int
    replayed: bool = False


@frozen(kw_only=True)
class BulkProgress:
    """Counts so far in a bulk run, and the outcome that was just recorded."""

    started: int
    accepted: int
    rejected: int
    unknown: int
    in_flight: int
    last: BulkOutcome

    @property
    def done(self) -> int:
        return self.accepted + self.rejected + self.unknown

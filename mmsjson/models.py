"""The message builder: media objects, slides, the MMS content, and the results of sends.

Everything is a frozen attrs class checked on construction, so a message the API would reject is
refused with a :class:`~mmsjson.errors.ValidationError` before any network I/O. A slide's rules are
checked when it is placed in an :class:`MMS`, so the error can name its position
(``slides[2]: video cannot share a slide with image``). What depends on the action is checked by
the ``check_*`` functions when a request is built: content may be saved as a template without
fallback text, but not sent without it (:func:`check_fallback_for_send`).
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
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
    "check_fallback_for_send",
    "check_from_mask",
    "check_mms_id",
    "check_send_saved_options",
    "check_service_id",
    "check_subject",
    "check_switch",
    "check_template_name",
    "check_text",
]

MAX_SLIDES = 8
MAX_TEXT_LENGTH = 5000
MAX_SUBJECT_LENGTH = 80
MAX_CLIENT_REFERENCE_LENGTH = 64
MAX_FROM_MASK_LENGTH = 50
MAX_EXPIRY = timedelta(days=3)


def _check_utf8(value: str, path: str) -> None:
    """Refuse text that cannot travel as UTF-8 (a lone surrogate), naming where it is."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            path,
            f"has a lone surrogate U+{ord(value[exc.start]):04X} at position {exc.start}, which "
            "cannot be encoded as UTF-8 (was it decoded with errors='surrogateescape'?)",
        ) from None


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(path, f"must be a string, not {type(value).__name__}")
    _check_utf8(value, path)
    return value


def check_text(value: object, path: str) -> None:
    """Refuse an optional text that is not a string or cannot be encoded as UTF-8."""
    if value is not None:
        _string(value, path)


_ABSOLUTE_URL = re.compile(r"https?://(?:[^\s/?#@]*@)?[^\s/?#@:]+(?::[0-9]*)?(?:[/?#]\S*)?", re.ASCII)
#: The start of the usual absolute URL (no user, no port): with no space after it, it matches
#: :data:`_ABSOLUTE_URL` too, and costs half as much to try.
_PLAIN_URL = re.compile(r"https?://[^\s/?#@:]+(?:[/?#]|\Z)", re.ASCII)
#: Unicode whitespace, controls, format characters, surrogates and private use: never in a URL.
_NOT_IN_URL = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"})


#: ASCII URLs that passed :func:`_check_url`: a URL used again (a campaign's picture) costs a
#: look-up. Forgotten all at once when full.
_CHECKED_URLS: dict[str, None] = {}
_CHECKED_URLS_SIZE = 1024


def _check_url(instance: Media, attribute: attrs.Attribute[str], value: object) -> None:
    if type(value) is str:
        if value in _CHECKED_URLS:
            return
        if value.isascii() and value.isprintable() and (
            (" " not in value and _PLAIN_URL.match(value)) or _ABSOLUTE_URL.fullmatch(value)
        ):
            if len(_CHECKED_URLS) >= _CHECKED_URLS_SIZE:
                _CHECKED_URLS.clear()
            _CHECKED_URLS[value] = None
            return
    path = f"{instance.kind}.url"
    if type(value) is str and _ABSOLUTE_URL.fullmatch(value):
        _check_utf8(value, path)
        for position, ch in enumerate(value):
            if unicodedata.category(ch) in _NOT_IN_URL:
                raise ValidationError(
                    path,
                    f"{value!r} has U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character')})"
                    f" at position {position}; percent-encode it (the service refuses such URLs)",
                )
        return
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
            if not text.isascii():
                _check_utf8(text, "text")
        if self.video is None and self.contact is None and self.calendar is None and self.pdf is None:
            image, audio = self.image, self.audio
            if image is None and audio is None:
                if not text:
                    raise ValidationError("", "a slide needs text or media; an empty slide is refused")
                return
            if (image is None or type(image) is Image) and (audio is None or type(audio) is Audio):
                return
        self._check_media()

    def _check_media(self) -> None:
        """The media rules in full, for a slide the quick path of :meth:`check` did not pass.

        That path passes text with at most an :class:`Image` and an :class:`Audio` (exactly those
        classes); anything else, a subclass or a mistake included, is judged here.
        """
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


def _slide_tuple(value: Iterable[Slide]) -> tuple[Slide, ...]:
    """The slides as a tuple: a list, a tuple or any other ordered iterable (a generator) is taken."""
    if type(value) is list:
        return tuple(value)
    if type(value) is tuple:
        return value
    if isinstance(value, Slide):
        raise ValidationError("slides", "must be a list of slides; put the one Slide in a list")
    if isinstance(value, str | bytes | Mapping | set | frozenset) or not isinstance(value, Iterable):
        raise ValidationError(
            "slides", f"must be a list of 1 to {MAX_SLIDES} slides, not {type(value).__name__}"
        )
    return tuple(value)


def _check_slides(value: tuple[Slide, ...]) -> None:
    """Refuse too few or too many slides, or a slide the API would refuse, naming its position."""
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


@functools.lru_cache(maxsize=256)
def _first_emoji(text: str) -> str | None:
    """The first emoji in ``text``: an emoji-presentation character or sequence, or a keycap.

    Characters that are emoji only when followed by U+FE0F (©, ™, ☺) are text as written, and
    pass; with U+FE0F they are emoji. The ``emoji`` package is imported at first use.
    """
    import emoji  # imported at first use: it would add ~30 ms to `import mmsjson`

    unqualified = emoji.STATUS["unqualified"]
    for match in emoji.emoji_list(text):
        found = match["emoji"]
        status = emoji.EMOJI_DATA.get(found, {}).get("status")
        if status != unqualified or "\u20e3" in found:
            return str(found)
    return None


def check_subject(value: object, path: str = "subject") -> None:
    """Refuse a subject the API or the carriers' MMSCs would reject: over 80 characters, or emoji.

    The limit is the OpenAPI's (40 or fewer deliver best); the emoji rule is the sendSavedMMS
    guide's ("shouldn't contain emoji/Unicode characters": carriers' MMSCs reject them). Other
    symbols (©, ™, °) and line breaks are not refused: no document forbids them.
    """
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
    if value.isascii():
        return
    _check_utf8(value, path)
    found = _first_emoji(value)
    if found is not None:
        raise ValidationError(
            path,
            f"contains the emoji {found!r}; the sendSavedMMS guide says subjects must not carry "
            "emoji, as carriers' MMSCs reject them",
        )


def check_client_reference(value: object, path: str = "client_reference") -> None:
    """Refuse a client reference that is not a string of at most 64 characters."""
    if value is None:
        return
    reference = _string(value, path)
    if len(reference) > MAX_CLIENT_REFERENCE_LENGTH:
        raise ValidationError(
            path,
            f"has {len(reference)} characters, at most {MAX_CLIENT_REFERENCE_LENGTH} are allowed",
        )


def check_from_mask(value: object, path: str = "from_mask") -> None:
    """Refuse an alphanumeric sender mask that is empty or over 50 characters (E115)."""
    if value is None:
        return
    mask = _string(value, path)
    if not mask.strip():
        raise ValidationError(path, "is empty; leave it out (None) to send without a mask")
    if len(mask) > MAX_FROM_MASK_LENGTH:
        raise ValidationError(
            path, f"has {len(mask)} characters, at most {MAX_FROM_MASK_LENGTH} are allowed"
        )


def check_service_id(value: object, path: str = "service_id") -> str:
    """The service (campaign) id as the string the API takes; an int is written in digits."""
    if value is None or value == "":
        raise ValidationError(path, "is required: pass it to MMSClient or to the call")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str):
        raise ValidationError(
            path, f"must be the campaign id as a string, e.g. '12345', not {type(value).__name__}"
        )
    if not value.strip():
        raise ValidationError(path, "is blank; give the campaign id, e.g. '12345'")
    _check_utf8(value, path)
    return value


def check_template_name(value: object, path: str = "name") -> None:
    """Refuse a template name that is not a non-blank string (E311: template name required)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(path, "a template needs a non-empty name")
    _check_utf8(value, path)


def check_mms_id(value: object, path: str = "mms_id") -> None:
    """Refuse a template id that is not a non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(path, "must be the template's id as a non-empty string")
    _check_utf8(value, path)


def check_switch(value: object, path: str) -> None:
    """Refuse an optional switch that is not ``True``, ``False`` or ``None``."""
    if value is not None and not isinstance(value, bool):
        raise ValidationError(path, f"must be True, False or None, not {value!r}")


def _one_year_after(moment: datetime) -> datetime:
    """The same moment one calendar year later; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


def _check_deadline(value: object, path: str, latest: datetime, limit: str, now: datetime) -> None:
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
    if value > latest:
        raise ValidationError(
            path,
            f"{value.isoformat()} is more than {limit} ahead; the API allows at most {limit} "
            f"(now: until {latest.isoformat()})",
        )


def check_deadlines(
    expires_at: datetime | None,
    fallback_sms_link_expiration: datetime | None,
    now: datetime | None = None,
) -> None:
    """Refuse an expiry more than 3 days ahead or a fallback link expiration beyond 1 year.

    One year is a calendar year, so it spans 366 days when it crosses 29 February.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    _check_deadline(expires_at, "expires_at", now + MAX_EXPIRY, "3 days", now)
    _check_deadline(
        fallback_sms_link_expiration, "fallback_sms_link_expiration", _one_year_after(now),
        "1 year", now,
    )


@frozen(kw_only=True)
class MMS:
    """The content of a multimedia message: slides, subject and fallback SMS settings.

    ``slides`` is a list (or any ordered iterable, e.g. a generator) of 1 to 8 slides, kept as a
    tuple. Who receives it (``to``), who sends it and the client reference are given per send.
    ``fallback_sms_text`` is what the recipient gets when their phone or carrier cannot take MMS:
    sending the content (``sendmms``) requires it unless ``disable_fallback_sms`` is true, saving
    it as a template does not (see :func:`check_fallback_for_send`). ``expires_at`` (at most 3
    days ahead) stops delivery attempts; ``fallback_sms_link_expiration`` (at most 1 calendar year
    ahead) ends the fallback link. ``None`` leaves a setting to the service.
    """

    slides: tuple[Slide, ...] = field(converter=_slide_tuple)
    subject: str | None = None
    fallback_sms_text: str | None = None
    disable_fallback_sms: bool | None = None
    disable_fallback_sms_link: bool | None = None
    fallback_sms_link_expiration: datetime | None = None
    expires_at: datetime | None = None
    cache_content: bool | None = None

    def __attrs_post_init__(self) -> None:
        """Check every field in order, in one call rather than one validator per field."""
        _check_slides(self.slides)
        subject, text = self.subject, self.fallback_sms_text
        if subject is not None and not (
            type(subject) is str and subject.isascii() and len(subject) <= MAX_SUBJECT_LENGTH
        ):
            check_subject(subject)
        if text is not None and not (type(text) is str and text.isascii()):
            check_text(text, "fallback_sms_text")
        if self.disable_fallback_sms is not None:
            check_switch(self.disable_fallback_sms, "disable_fallback_sms")
        if self.disable_fallback_sms_link is not None:
            check_switch(self.disable_fallback_sms_link, "disable_fallback_sms_link")
        if self.cache_content is not None:
            check_switch(self.cache_content, "cache_content")
        if self.expires_at is not None or self.fallback_sms_link_expiration is not None:
            check_deadlines(self.expires_at, self.fallback_sms_link_expiration)


def check_fallback_for_send(mms: object) -> None:
    """Refuse to send (``sendmms``) content without fallback text while fallback SMS is on.

    The guide and the OpenAPI's sendMMS require ``fallback-sms-text`` unless
    ``disable-fallback-sms`` is true; saving a template (``savemms``) does not require it.
    """
    if not isinstance(mms, MMS):
        raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
    if not mms.disable_fallback_sms and not mms.fallback_sms_text:
        raise ValidationError(
            "fallback_sms_text",
            "is required to send unless disable_fallback_sms=True: it is sent when the phone "
            "cannot receive MMS (a template may be saved without it)",
        )


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
        _check_utf8(text, f"{path}[{number}]")


def check_send_saved_options(
    *,
    custom_texts: Mapping[int, str] | None = None,
    subject: str | None = None,
    fallback_sms_text: str | None = None,
    disable_fallback_sms: bool | None = None,
    disable_fallback_sms_link: bool | None = None,
    fallback_sms_link_expiration: datetime | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Refuse the overrides of a ``sendsavedmms`` request that the API would refuse.

    ``fallback_sms_text`` is required only when ``disable_fallback_sms=False`` is given: otherwise
    the template's own setting and text apply (the OpenAPI's sendSavedMMS).
    """
    check_custom_texts(custom_texts)
    check_subject(subject)
    check_text(fallback_sms_text, "fallback_sms_text")
    check_switch(disable_fallback_sms, "disable_fallback_sms")
    check_switch(disable_fallback_sms_link, "disable_fallback_sms_link")
    check_deadlines(expires_at, fallback_sms_link_expiration)
    if disable_fallback_sms is False and not fallback_sms_text:
        raise ValidationError(
            "fallback_sms_text", "is required when disable_fallback_sms=False is given"
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


def _participants(value: Iterable[str] | None) -> tuple[str, ...]:
    """Display-only participants as a tuple: ``None`` is none; one string is refused, not split."""
    if value is None:
        return ()
    if type(value) is tuple:
        return value
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(
            "to_displayonly",
            f"must be a list of numbers, not {type(value).__name__}, e.g. ['17745550002']",
        )
    return tuple(value)


#: What each type-checked field of a :class:`BulkJob` must be, in field order: the type and its
#: words in the error.
_BULK_JOB_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("to", str, "a phone number as a string"),
    ("mms", MMS, "an MMS"),
    ("mms_id", str, "the template's id as a string"),
    ("client_reference", str, "a string"),
    ("custom_texts", Mapping, "a mapping of slide numbers to texts"),
    ("key", str, "a string"),
    ("service_id", str, "a string"),
    ("sender", str, "a short code or number as a string"),
    ("from_mask", str, "a string"),
    ("subject", str, "a string"),
    ("fallback_sms_text", str, "a string"),
    ("expires_at", datetime, "a datetime"),
)


def _check_bulk_job_types(job: BulkJob) -> None:
    """Refuse the first field (in field order) that is neither ``None`` nor of its type."""
    for name, kind, words in _BULK_JOB_TYPES:
        value = getattr(job, name)
        if value is not None and not isinstance(value, kind):
            raise ValidationError(name, f"must be {words}, not {type(value).__name__}")


@frozen(kw_only=True, init=False)
class BulkJob:
    """One request of a bulk run: a recipient and either content or a saved template's id.

    Wrong types (a list as ``to``, a number as ``mms_id``) are refused on construction. The rest is
    checked when the run reaches the job; a bad job gets a ``rejected`` outcome carrying a
    :class:`ValidationError` and the run goes on. ``key`` identifies the job in a journal; by
    default it is derived from the recipient and content.

    ``service_id``, ``sender`` and ``from_mask`` override the client's for this job. ``subject``,
    ``fallback_sms_text``, ``expires_at`` and ``custom_texts`` override a saved template's
    (``mms_id`` jobs only: content given as ``mms`` carries its own).
    """

    to: str
    mms: MMS | None = None
    mms_id: str | None = None
    #: The converter (like ``__attrs_post_init__``) is for the ``__init__`` attrs writes for a
    #: subclass; ``BulkJob``'s own does both inline.
    to_displayonly: tuple[str, ...] = field(default=(), converter=_participants)
    client_reference: str | None = None
    custom_texts: Mapping[int, str] | None = None
    key: str | None = None
    service_id: str | None = None
    sender: str | None = None
    from_mask: str | None = None
    subject: str | None = None
    fallback_sms_text: str | None = None
    expires_at: datetime | None = None

    def __init__(
        self,
        *,
        to: str,
        mms: MMS | None = None,
        mms_id: str | None = None,
        to_displayonly: Iterable[str] | None = (),
        client_reference: str | None = None,
        custom_texts: Mapping[int, str] | None = None,
        key: str | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        subject: str | None = None,
        fallback_sms_text: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        # Written out, not generated by attrs: a bulk run builds a job per recipient, and attrs's
        # __init__ for a frozen class (object.__setattr__ per field) took about 0.8 µs more per
        # job in a live run. A test holds these parameters to the fields.
        (set_to, set_mms, set_mms_id, set_to_displayonly, set_client_reference, set_custom_texts,
         set_key, set_service_id, set_sender, set_from_mask, set_subject, set_fallback_sms_text,
         set_expires_at) = _BULK_JOB_SLOTS
        set_to(self, to)
        set_mms(self, mms)
        set_mms_id(self, mms_id)
        set_to_displayonly(
            self, to_displayonly if type(to_displayonly) is tuple else _participants(to_displayonly)
        )
        set_client_reference(self, client_reference)
        set_custom_texts(self, custom_texts)
        set_key(self, key)
        set_service_id(self, service_id)
        set_sender(self, sender)
        set_from_mask(self, from_mask)
        set_subject(self, subject)
        set_fallback_sms_text(self, fallback_sms_text)
        set_expires_at(self, expires_at)
        if not (
            type(to) is str and (mms is None or type(mms) is MMS)
            and (mms_id is None or type(mms_id) is str)
            and (client_reference is None or type(client_reference) is str)
            and (key is None or type(key) is str)
            and custom_texts is None and service_id is None and sender is None
            and from_mask is None and subject is None and fallback_sms_text is None
            and expires_at is None
        ):
            _check_bulk_job_types(self)

    def __attrs_post_init__(self) -> None:
        """The type checks, for a subclass whose ``__init__`` attrs generates."""
        _check_bulk_job_types(self)

    @property
    def template_overrides(self) -> dict[str, Any]:
        """The saved-template overrides this job sets (``custom_texts``, ``subject``...)."""
        fields = {
            "custom_texts": self.custom_texts, "subject": self.subject,
            "fallback_sms_text": self.fallback_sms_text, "expires_at": self.expires_at,
        }
        return {name: value for name, value in fields.items() if value is not None}


#: ``BulkJob``'s slot setters in field order, for its ``__init__``.
_BULK_JOB_SLOTS: tuple[Callable[[BulkJob, Any], None], ...] = tuple(
    getattr(BulkJob, a.name).__set__ for a in attrs.fields(BulkJob)
)


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

"""The fake server's request checks, written from the API documents alone.

These deliberately share no code with :mod:`mmsjson.models`, :mod:`mmsjson.numbers` or
:mod:`mmsjson.flavours.json`: the fake must catch the client's mistakes, not repeat them. Each check answers
with the error code the documents give for it (``status-and-postback-codes.md``): a request whose
shape the documents do not define (an unknown key such as ``bogus`` or a slide's ``excel``, a
wrong type, a missing field) is E100, "invalid request".

Where the documents leave a judgement open, the fake's own reading is stated here once:

- numbers: digits only, no ``+`` or ``00``, and possible in their country code by libphonenumber's
  numbering plan (``phonenumbers``), since the guide asks for "the country code and phone number";
- senders: a 5 or 6 digit short code, or a long number read as above;
- subjects: at most 80 characters; emoji are refused with E314 (the XML sendSavedMMS guide: no
  emoji, the carriers' MMSCs reject them). The fake counts as emoji U+FE0F (emoji presentation),
  U+20E3 (keycap), every character of U+1F000..U+1FAFF and the BMP characters whose default
  presentation is emoji (UTS #51 ``Emoji_Presentation``). Other symbols and line breaks pass;
- one year for ``fallback-sms-link-expiration`` is a calendar year.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Refusal", "check_request"]

_SHORT_CODE = re.compile(r"[1-9][0-9]{4,5}")
_DIGITS = re.compile(r"[1-9][0-9]{0,14}")
_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")
_MEDIA = ("image", "audio", "video", "contact", "calendar", "pdf")
_OBJECTS = frozenset({"contact", "calendar", "pdf"})
_SLIDE_KEYS = frozenset({*_MEDIA, "message-text"})
_COMMON = frozenset({
    "action", "message-subject", "fallback-sms-text", "disable-fallback-sms",
    "disable-fallback-sms-link", "fallback-sms-link-expiration", "client-reference",
})
_SEND = frozenset({"service-id", "to", "from", "from-mask", "to-displayonly", "mms-expiry-timestamp"})
#: The keys the OpenAPI defines per action, and the guide's ``to-displayonly`` for the two sends.
_KEYS = {
    "sendmms": _COMMON | _SEND | {"cache-content", "slide"},
    "savemms": _COMMON | {"name", "slide"},
    "sendsavedmms": _COMMON | _SEND | {"mms-id", "custom-slides"},
}
_REQUIRED = {
    "sendmms": ("service-id", "to", "from", "slide"),
    "savemms": ("name",),
    "sendsavedmms": ("mms-id", "service-id", "to", "from"),
}
_STRINGS = (
    "service-id", "to", "from", "from-mask", "message-subject", "fallback-sms-text",
    "client-reference", "name", "mms-id", "to-displayonly", "fallback-sms-link-expiration",
    "mms-expiry-timestamp",
)
_BOOLEANS = ("disable-fallback-sms", "disable-fallback-sms-link", "cache-content")
#: UTS #51 emoji-data.txt, Emoji_Presentation=Yes, Basic Multilingual Plane (first, last).
_BMP_EMOJI_RANGES = (
    (0x231A, 0x231B), (0x23E9, 0x23EC), (0x23F0, 0x23F0), (0x23F3, 0x23F3), (0x25FD, 0x25FE),
    (0x2614, 0x2615), (0x2648, 0x2653), (0x267F, 0x267F), (0x2693, 0x2693), (0x26A1, 0x26A1),
    (0x26AA, 0x26AB), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26CE, 0x26CE), (0x26D4, 0x26D4),
    (0x26EA, 0x26EA), (0x26F2, 0x26F3), (0x26F5, 0x26F5), (0x26FA, 0x26FA), (0x26FD, 0x26FD),
    (0x2705, 0x2705), (0x270A, 0x270B), (0x2728, 0x2728), (0x274C, 0x274C), (0x274E, 0x274E),
    (0x2753, 0x2755), (0x2757, 0x2757), (0x2795, 0x2797), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55),
)
_BMP_EMOJI = frozenset(chr(c) for first, last in _BMP_EMOJI_RANGES for c in range(first, last + 1))
_NOT_IN_URL = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"})


class Refusal(Exception):
    """A request the service would refuse, with its error code and info."""

    def __init__(self, code: str, info: str) -> None:
        super().__init__(f"{code}: {info}")
        self.code = code
        self.info = info


@functools.lru_cache(maxsize=4096)
def _possible(digits: str) -> bool:
    """Whether ``digits`` (no ``+``) is a possible international number."""
    if not _DIGITS.fullmatch(digits):
        return False
    import phonenumbers  # loaded with the first request, not with the module

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def _emoji(text: str) -> bool:
    return any(
        ch in _BMP_EMOJI or ch in "\ufe0f\u20e3" or 0x1F000 <= ord(ch) <= 0x1FAFF for ch in text
    )


def _calendar_year_after(moment: datetime) -> datetime:
    year, month, day = moment.year + 1, moment.month, moment.day
    if (month, day) == (2, 29):
        day = 28
    return moment.replace(year=year, month=month, day=day)


def _when(payload: dict[str, Any], key: str, latest: datetime, words: str) -> None:
    value = payload.get(key)
    if value is None:
        return
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal("E100", f"{key} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > latest:
        raise Refusal("E100", f"{key} is more than {words} ahead")


def _url(kind: str, number: int, url: str) -> None:
    if not _URL.fullmatch(url):
        raise Refusal("E229", f"{kind} url in slide {number} is not absolute http(s)")
    if any(unicodedata.category(ch) in _NOT_IN_URL for ch in url):
        raise Refusal("E229", f"{kind} url in slide {number} has whitespace or a control character")


def _slides(slides: Any) -> None:
    if not isinstance(slides, list) or not slides:
        raise Refusal("E312", "no slides")
    if len(slides) > 8:
        raise Refusal("E225", "too many slides")
    for number, slide in enumerate(slides, start=1):
        if not isinstance(slide, dict):
            raise Refusal("E100", f"slide {number} is not an object")
        unknown = set(slide) - _SLIDE_KEYS
        if unknown:
            raise Refusal("E100", f"slide {number} has keys the API does not define: {sorted(unknown)}")
        text = slide.get("message-text")
        if text is not None and not isinstance(text, str):
            raise Refusal("E100", f"message-text in slide {number} is not a string")
        if text is not None and len(text) > 5000:
            raise Refusal("E228", f"text in slide {number} is over 5000 characters")
        kinds = [k for k in _MEDIA if k in slide]
        if not kinds and not text:
            raise Refusal("E313", f"slide {number} is empty")
        for kind in kinds:
            media = slide[kind]
            if not isinstance(media, dict) or set(media) != {"url"} or not isinstance(media["url"], str):
                raise Refusal("E100", f"{kind} in slide {number} must be an object with only a url")
            _url(kind, number, media["url"])
        objects = [k for k in kinds if k in _OBJECTS]
        if len(objects) > 1:
            raise Refusal("E223", f"more than one object in slide {number}")
        if objects and len(kinds) > 1:
            raise Refusal("E224", f"audio/video/image not allowed with an object in slide {number}")
        if "video" in kinds and "audio" in kinds:
            raise Refusal("E226", f"audio and video in slide {number}")
        if "video" in kinds and "image" in kinds:
            raise Refusal("E227", f"video and image in slide {number}")


def _numbers(payload: dict[str, Any]) -> None:
    if "to" in payload and not _possible(payload["to"]):
        raise Refusal("E110", "invalid to number")
    if "from" in payload:
        sender = payload["from"]
        if not (_SHORT_CODE.fullmatch(sender) or (len(sender) > 6 and _possible(sender))):
            raise Refusal("E111", "invalid from number")
    if "to-displayonly" in payload:
        for number in payload["to-displayonly"].split(","):
            if not _possible(number):
                raise Refusal("E110", f"invalid number {number!r} in to-displayonly")


def _custom_slides(custom: Any, template: dict[str, Any]) -> None:
    if not isinstance(custom, list):
        raise Refusal("E100", "custom-slides must be a list")
    for item in custom:
        if not isinstance(item, dict) or set(item) != {"custom-message-text", "custom-slide"}:
            raise Refusal("E100", "each custom slide has custom-message-text and custom-slide")
        number, text = item["custom-slide"], item["custom-message-text"]
        if not isinstance(number, str) or not number.isdigit() or not isinstance(text, str):
            raise Refusal("E100", "custom-slide must be a slide number as a string, with a text")
        if not 1 <= int(number) <= len(template.get("slide", [])):
            raise Refusal("E100", f"custom-slide {number} is not a slide of the template")
        if len(text) > 5000:
            raise Refusal("E228", "custom text is over 5000 characters")


def check_request(
    payload: Any, templates: dict[str, dict[str, Any]], now: datetime | None = None
) -> None:
    """Raise :class:`Refusal` if the service would refuse ``payload``."""
    now = now or datetime.now(UTC)
    if not isinstance(payload, dict):
        raise Refusal("E108", "the body is not a JSON object")
    if "api-key" in payload or "api_key" in payload or "x-api-key" in payload:
        raise Refusal("E100", "the API key belongs in the x-api-key header, not the body")
    action = payload.get("action")
    if action not in _REQUIRED:
        raise Refusal("E107", f"invalid action {action!r}")
    unknown = set(payload) - _KEYS[action]
    if unknown:
        raise Refusal("E100", f"{action} does not define the keys {sorted(unknown)}")
    for key in _REQUIRED[action]:
        if key not in payload:
            raise Refusal("E311" if key == "name" else "E100", f"{key} is required")
    for key in _STRINGS:
        if key in payload and not isinstance(payload[key], str):
            raise Refusal("E100", f"{key} must be a string")
    for key in _BOOLEANS:
        if key in payload and not isinstance(payload[key], bool):
            raise Refusal("E100", f"{key} must be true or false")
    _numbers(payload)
    subject = payload.get("message-subject")
    if subject is not None and (len(subject) > 80 or _emoji(subject)):
        raise Refusal("E314", "invalid message subject: over 80 characters, or emoji")
    if len(payload.get("client-reference", "")) > 64:
        raise Refusal("E100", "client-reference is over 64 characters")
    if "from-mask" in payload and len(payload["from-mask"]) > 50:
        raise Refusal("E115", "sender mask over 50 characters")
    if action == "savemms" and not payload["name"].strip():
        raise Refusal("E311", "template name required")
    _when(payload, "mms-expiry-timestamp", now + timedelta(days=3, minutes=1), "3 days")
    _when(
        payload, "fallback-sms-link-expiration",
        _calendar_year_after(now) + timedelta(minutes=1), "1 year",
    )
    if action in ("sendmms", "savemms"):
        _slides(payload.get("slide"))
    if action == "sendmms":
        if not payload.get("disable-fallback-sms") and not payload.get("fallback-sms-text"):
            raise Refusal("E100", "fallback-sms-text is required unless disable-fallback-sms")
    elif action == "sendsavedmms":
        template = templates.get(payload["mms-id"])
        if template is None:
            raise Refusal("E241", "this mms-id does not exist")
        _custom_slides(payload.get("custom-slides", []), template)
        disabled = payload.get("disable-fallback-sms", template.get("disable-fallback-sms"))
        fallback = payload.get("fallback-sms-text", template.get("fallback-sms-text"))
        if not disabled and not fallback:
            raise Refusal("E100", "fallback-sms-text is required unless disable-fallback-sms")

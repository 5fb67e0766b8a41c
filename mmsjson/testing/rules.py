"""The fake server's request checks, written from the API documents alone.

These deliberately share no code with :mod:`mmsjson.models` or :mod:`mmsjson.wire`: the fake must
catch the client's mistakes, not repeat them. Each check answers with the error code the service
documents for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Refusal", "check_request"]

_NUMBER = re.compile(r"[1-9][0-9]{7,14}")
_SENDER = re.compile(r"[1-9][0-9]{2,14}")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
_MEDIA = ("image", "audio", "video", "contact", "calendar", "pdf", "excel")
_OBJECTS = frozenset({"contact", "calendar", "pdf", "excel"})
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


class Refusal(Exception):
    """A request the service would refuse, with its error code and info."""

    def __init__(self, code: str, info: str) -> None:
        super().__init__(f"{code}: {info}")
        self.code = code
        self.info = info


def _when(payload: dict[str, Any], key: str, most: timedelta, now: datetime) -> None:
    value = payload.get(key)
    if value is None:
        return
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal("E100", f"{key} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment - now > most:
        raise Refusal("E100", f"{key} is more than {most.days} days ahead")


def _slides(slides: Any) -> None:
    if not isinstance(slides, list) or not slides:
        raise Refusal("E312", "no slides")
    if len(slides) > 8:
        raise Refusal("E225", "too many slides")
    for number, slide in enumerate(slides, start=1):
        if not isinstance(slide, dict):
            raise Refusal("E100", f"slide {number} is not an object")
        unknown = set(slide) - {*_MEDIA, "message-text"}
        if unknown:
            raise Refusal("E229", f"slide {number} has unknown content {sorted(unknown)}")
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
            if not isinstance(media, dict) or not isinstance(media.get("url"), str):
                raise Refusal("E100", f"{kind} in slide {number} has no url")
            if not _URL.fullmatch(media["url"]):
                raise Refusal("E229", f"{kind} url in slide {number} is not absolute http(s)")
        objects = [k for k in kinds if k in _OBJECTS]
        if len(objects) > 1:
            raise Refusal("E223", f"more than one object in slide {number}")
        if objects and len(kinds) > 1:
            raise Refusal("E224", f"audio/video/image not allowed with an object in slide {number}")
        if "video" in kinds and "audio" in kinds:
            raise Refusal("E226", f"audio and video in slide {number}")
        if "video" in kinds and "image" in kinds:
            raise Refusal("E227", f"video and image in slide {number}")


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
    for key in _REQUIRED[action]:
        if key not in payload:
            raise Refusal("E311" if key == "name" else "E100", f"{key} is required")
    for key in _STRINGS:
        if key in payload and not isinstance(payload[key], str):
            raise Refusal("E100", f"{key} must be a string")
    for key in _BOOLEANS:
        if key in payload and not isinstance(payload[key], bool):
            raise Refusal("E100", f"{key} must be true or false")
    if "to" in payload and not _NUMBER.fullmatch(payload["to"]):
        raise Refusal("E110", "invalid to number")
    if "from" in payload and not _SENDER.fullmatch(payload["from"]):
        raise Refusal("E111", "invalid from number")
    if "to-displayonly" in payload:
        for number in payload["to-displayonly"].split(","):
            if not _NUMBER.fullmatch(number):
                raise Refusal("E110", f"invalid number {number!r} in to-displayonly")
    subject = payload.get("message-subject")
    if subject is not None and (len(subject) > 80 or "\n" in subject):
        raise Refusal("E314", "invalid message subject")
    if len(payload.get("client-reference", "")) > 64:
        raise Refusal("E100", "client-reference is over 64 characters")
    if "from-mask" in payload and len(payload["from-mask"]) > 50:
        raise Refusal("E115", "sender mask over 50 characters")
    if action == "savemms" and not payload["name"].strip():
        raise Refusal("E311", "template name required")
    _when(payload, "mms-expiry-timestamp", timedelta(days=3, minutes=1), now)
    _when(payload, "fallback-sms-link-expiration", timedelta(days=366), now)
    if action in ("sendmms", "savemms"):
        _slides(payload.get("slide"))
        if not payload.get("disable-fallback-sms") and not payload.get("fallback-sms-text"):
            raise Refusal("E100", "fallback-sms-text is required unless disable-fallback-sms")
    else:
        template = templates.get(payload["mms-id"])
        if template is None:
            raise Refusal("E241", "this mms-id does not exist")
        if "slide" in payload:
            raise Refusal("E100", "sendsavedmms takes custom-slides, not slide")
        custom = payload.get("custom-slides", [])
        if not isinstance(custom, list):
            raise Refusal("E100", "custom-slides must be a list")
        for item in custom:
            if not isinstance(item, dict) or set(item) != {"custom-message-text", "custom-slide"}:
                raise Refusal("E100", "each custom slide has custom-message-text and custom-slide")
            number = item["custom-slide"]
            if not isinstance(number, str) or not number.isdigit():
                raise Refusal("E100", "custom-slide must be a slide number as a string")
            if not 1 <= int(number) <= len(template.get("slide", [])):
                raise Refusal("E100", f"custom-slide {number} is not a slide of the template")
            if len(item["custom-message-text"]) > 5000:
                raise Refusal("E228", "custom text is over 5000 characters")
        disabled = payload.get("disable-fallback-sms", template.get("disable-fallback-sms"))
        fallback = payload.get("fallback-sms-text", template.get("fallback-sms-text"))
        if not disabled and not fallback:
            raise Refusal("E100", "fallback-sms-text is required unless disable-fallback-sms")

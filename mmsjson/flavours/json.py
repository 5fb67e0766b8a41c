"""The JSON flavour: the MMS JSON API's wire format, with one cattrs converter, and its requests.

Models become request JSON and answers become results. The API key travels in the ``x-api-key``
header, one recipient per request.

Field names become the API's hyphenated names (``fallback_sms_text`` -> ``fallback-sms-text``,
``slides`` -> ``slide``, ``expires_at`` -> ``mms-expiry-timestamp``), unset fields are left out and
datetimes are written in ISO 8601 in UTC. The converter is built once, at import: building one per
call is slow and leaks memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, Unpack, get_type_hints

import cattrs
import orjson
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from mmsjson._slots import slot_setters
from mmsjson.errors import (
    ApiError,
    TransportError,
    ValidationError,
    api_error_from_code,
    api_error_from_http,
)
from mmsjson.flavours.base import (
    Answer,
    SendSavedOptions,
    check_api_key,
    echo_forms,
    mask_echoes,
    redact,
    without_bom,
)
from mmsjson.models import (
    MEDIA_KINDS,
    MMS,
    Media,
    SaveResult,
    SendResult,
    Slide,
    check_client_reference,
    check_deadlines,
    check_fallback_for_send,
    check_from_mask,
    check_mms_id,
    check_send_saved_options,
    check_service_id,
    check_template_name,
)
from mmsjson.numbers import normalize_number, normalize_numbers, normalize_sender
from mmsjson.transport import (
    USER_AGENT,
    PreparedRequest,
    RawResponse,
    ReadOnlyHeaders,
    check_base_url,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ENVELOPE_KEYS",
    "JsonFlavour",
    "content_fragment",
    "converter",
    "decode_answer",
    "dump_mms",
    "encode",
    "join_body",
    "load_mms",
    "save_request",
    "send_envelope",
    "send_request",
    "send_saved_request",
    "structure_save_result",
    "structure_send_result",
]

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.ci.mblox.com/ep/v2/"

#: Keys of a request document that say who sends to whom; :func:`load_mms` ignores them.
ENVELOPE_KEYS = frozenset(
    {"action", "service-id", "to", "from", "from-mask", "to-displayonly", "name",
     "client-reference", "mms-id"}
)

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=False)


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_datetime(value: object, _: object) -> datetime:
    if not isinstance(value, str):
        raise ValidationError("", f"must be an ISO 8601 date-time string, not {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("", f"{value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _strict(kind: type[T]) -> Callable[[object, object], T]:
    def structure(value: object, _: object) -> T:
        if not isinstance(value, kind):
            raise ValidationError("", f"must be a JSON {kind.__name__}, not {value!r}")
        return value

    return structure


def _structure_media(value: object, cls: type[Media]) -> Media:
    if not isinstance(value, Mapping) or set(value) != {"url"}:
        raise ValidationError(cls.kind, 'must be an object with only "url"')
    return cls(value["url"])


def _structure_slides(value: object, _: object) -> tuple[Slide, ...]:
    if not isinstance(value, list):
        raise ValidationError("slide", "must be a list of slide objects")
    slides = []
    for index, item in enumerate(value):
        try:
            slides.append(_structure_slide(item, Slide))
        except ValidationError as exc:
            raise exc.within(f"slides[{index}]") from None
    return tuple(slides)


def _keyed_errors(structure: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """Turn cattrs' errors about keys and shapes into :class:`ValidationError`."""

    def wrapped(value: Any, cls: Any) -> T:
        if not isinstance(value, Mapping):
            raise ValidationError("", f"must be a JSON object, not {type(value).__name__}")
        try:
            return structure(value, cls)
        except ForbiddenExtraKeysError as exc:
            raise ValidationError(
                "", f"unknown keys {sorted(exc.extra_fields)}; check the spelling"
            ) from None
        except KeyError as exc:
            raise ValidationError("", f"the required key {exc.args[0]!r} is missing") from None

    return wrapped


converter.register_unstructure_hook(datetime, _format_datetime)
converter.register_structure_hook(datetime, _parse_datetime)
converter.register_structure_hook(str, _strict(str))
converter.register_structure_hook(bool, _strict(bool))
converter.register_structure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, Media), _structure_media
)


def _at(path: str) -> Callable[[Any, Any], Any]:
    """A structure hook that names ``path`` in the errors of the field it structures."""

    def structure(value: Any, kind: Any) -> Any:
        try:
            return converter.structure(value, kind)
        except ValidationError as exc:
            raise exc.within(path) from None

    return structure


def _media_dict(media: Media) -> dict[str, str]:
    return {"url": media.url}


converter.register_unstructure_hook(Media, _media_dict)


_SLIDE_RENAMES: dict[str, Any] = {
    "text": override(rename="message-text", omit_if_default=True, unstruct_hook=identity),
    **{
        name: override(rename=kind.json_key, omit_if_default=True, unstruct_hook=_media_dict)
        for name, kind in MEDIA_KINDS.items()
    },
}
_unstructure_slide = make_dict_unstructure_fn(
    Slide, converter, _cattrs_omit_if_default=True, **_SLIDE_RENAMES
)


def _unstructure_slides(slides: tuple[Slide, ...]) -> list[dict[str, Any]]:
    return [_unstructure_slide(slide) for slide in slides]


def _slide_json(slide: Slide) -> dict[str, Any]:
    """A slide as :data:`converter` writes it, without its generic per-field calls.

    cattrs' generated code compares each media field with ``!=``, which calls the attrs ``__eq__``
    in Python: this takes about half the time. Every kind in :data:`MEDIA_KINDS` is written here
    (a test holds the two to the same output for each kind).
    """
    json: dict[str, Any] = {}
    if slide.text is not None:
        json["message-text"] = slide.text
    if slide.image is not None:
        json["image"] = {"url": slide.image.url}
    if slide.audio is not None:
        json["audio"] = {"url": slide.audio.url}
    if slide.video is not None:
        json["video"] = {"url": slide.video.url}
    if slide.contact is not None:
        json["contact"] = {"url": slide.contact.url}
    if slide.calendar is not None:
        json["calendar"] = {"url": slide.calendar.url}
    if slide.pdf is not None:
        json["pdf"] = {"url": slide.pdf.url}
    return json


def _slides_json(slides: tuple[Slide, ...]) -> list[dict[str, Any]]:
    return [_slide_json(slide) for slide in slides]


_AS_IS = frozenset({str | None, bool | None})

_MMS_RENAMES: dict[str, Any] = {
    "slides": override(
        rename="slide",
        struct_hook=_structure_slides,
        unstruct_hook=_unstructure_slides,
    ),
    "subject": override(
        rename="message-subject", struct_hook=_at("message-subject"), unstruct_hook=identity
    ),
    "expires_at": override(rename="mms-expiry-timestamp", struct_hook=_at("mms-expiry-timestamp")),
}

converter.register_unstructure_hook(Slide, _unstructure_slide)
_structure_slide = _keyed_errors(make_dict_structure_fn(Slide, converter, **_SLIDE_RENAMES))
converter.register_structure_hook(Slide, _structure_slide)


def _hyphenated(cls: type[Any], renames: Mapping[str, Any]) -> dict[str, Any]:
    """Hyphenated wire names; texts and switches are written as they are, without a hook call."""
    types = get_type_hints(cls)
    names = {
        a.name: override(
            rename=(wire := a.name.replace("_", "-")), struct_hook=_at(wire),
            unstruct_hook=identity if types[a.name] in _AS_IS else None,
        )
        for a in cls.__attrs_attrs__
    }
    return {**names, **renames}


_mms_overrides = _hyphenated(MMS, _MMS_RENAMES)
_unstructure_mms = make_dict_unstructure_fn(
    MMS, converter, _cattrs_omit_if_default=True, **_mms_overrides
)
converter.register_unstructure_hook(MMS, _unstructure_mms)
#: The hot path's encoder: the converter's own for MMS, with :func:`_slide_json` for the slides.
_content_json = make_dict_unstructure_fn(
    MMS, converter, _cattrs_omit_if_default=True,
    **{**_mms_overrides, "slides": override(rename="slide", unstruct_hook=_slides_json)},
)
converter.register_structure_hook(
    MMS, _keyed_errors(make_dict_structure_fn(MMS, converter, **_mms_overrides))
)

def _text_or_none(value: object, _: object) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: object, _: object) -> str:
    return value if isinstance(value, str) else ""


def _result_fields(cls: type[Any], **renames: str) -> dict[str, Any]:
    """Answer keys to result fields: tolerant (a non-string becomes None) and without dispatch."""
    fields: dict[str, Any] = {"raw": override(omit=True)}
    for attribute in cls.__attrs_attrs__:
        if attribute.name != "raw":
            wire_name = renames.get(attribute.name, attribute.name.replace("_", "-"))
            hook = _text if attribute.name == "tracking_id" else _text_or_none
            fields[attribute.name] = override(rename=wire_name, struct_hook=hook)
    return fields


_structure_send = make_dict_structure_fn(
    SendResult, converter, _cattrs_forbid_extra_keys=False,
    **_result_fields(SendResult, sender="from"),
)
_structure_save = make_dict_structure_fn(
    SaveResult, converter, _cattrs_forbid_extra_keys=False, **_result_fields(SaveResult)
)


def _structure_send_general(payload: Mapping[str, Any]) -> SendResult:
    """:func:`structure_send_result` by the converter: any mapping, and the reference for the
    hand-written way."""
    if "tracking-id" not in payload:
        payload = {**payload, "tracking-id": ""}
    return _with_raw(_structure_send(payload, SendResult), payload)


#: ``SendResult``'s slot setters, for :func:`structure_send_result` (see :mod:`mmsjson._slots`):
#: empty, and every answer takes the converter's way, if the class no longer has these fields.
_SEND_SLOTS = slot_setters(
    SendResult, ("tracking_id", "to", "mms_id", "sender", "status_details", "raw")
)
_SEND_BY_HAND = bool(_SEND_SLOTS)


def structure_send_result(payload: Mapping[str, Any]) -> SendResult:
    """A ``status: success`` answer to ``sendmms`` or ``sendsavedmms``; unknown keys are kept in raw.

    Every accepted request goes through here, so a decoded answer (a dict with its tracking id)
    is read by hand, field for field what the converter's way gives.
    """
    if not _SEND_BY_HAND or type(payload) is not dict or "tracking-id" not in payload:
        return _structure_send_general(payload)
    get = payload.get
    tracking_id, to, mms_id, sender, details = (
        payload["tracking-id"], get("to"), get("mms-id"), get("from"), get("status-details")
    )
    set_tracking_id, set_to, set_mms_id, set_sender, set_details, set_raw = _SEND_SLOTS
    result: SendResult = object.__new__(SendResult)
    set_tracking_id(result, tracking_id if isinstance(tracking_id, str) else "")
    set_to(result, to if isinstance(to, str) else None)
    set_mms_id(result, mms_id if isinstance(mms_id, str) else None)
    set_sender(result, sender if isinstance(sender, str) else None)
    set_details(result, details if isinstance(details, str) else None)
    set_raw(result, payload.copy())
    return result


def send_tracking_id(payload: Mapping[str, Any]) -> str:
    """``structure_send_result(payload).tracking_id`` without building the result: a bulk job's
    outcome keeps nothing else of the answer."""
    if _SEND_BY_HAND and type(payload) is dict and "tracking-id" in payload:
        tracking_id = payload["tracking-id"]
        return tracking_id if isinstance(tracking_id, str) else ""
    return structure_send_result(payload).tracking_id


def structure_save_result(payload: Mapping[str, Any]) -> SaveResult:
    """A ``status: success`` answer to ``savemms``; unknown keys are kept in raw."""
    if "tracking-id" not in payload:
        payload = {**payload, "tracking-id": ""}
    return _with_raw(_structure_save(payload, SaveResult), payload)


def _with_raw(result: T, payload: Mapping[str, Any]) -> T:
    object.__setattr__(result, "raw", dict(payload))
    return result


def dump_mms(mms: MMS) -> dict[str, Any]:
    """The MMS content in the API's own JSON form (the body of a request minus who and to whom)."""
    return _unstructure_mms(mms)


def load_mms(document: Mapping[str, Any]) -> MMS:
    """An :class:`MMS` from the API's own JSON form, e.g. a template kept as a JSON file.

    Keys that say who sends to whom (``action``, ``to``, ``from``, ``service-id``...) are ignored:
    each send gives them. An unknown key is refused, so a misspelt field is not silently dropped.
    """
    if not isinstance(document, Mapping):
        raise ValidationError("", "an MMS document must be a JSON object")
    content = {k: v for k, v in document.items() if k not in ENVELOPE_KEYS}
    mms: MMS = converter.structure(content, MMS)
    return mms




def _json_value(value: object) -> bytes:
    return orjson.dumps(value)


def encode(payload: Mapping[str, Any]) -> bytes:
    """The request body: compact UTF-8 JSON, as ``json.dumps(payload, ensure_ascii=False,
    separators=(",", ":"))`` writes it, by orjson (about 18 times faster)."""
    return orjson.dumps(payload)


def content_fragment(mms: MMS) -> bytes:
    """The MMS content as JSON members without the braces, to splice into many request bodies."""
    return orjson.dumps(_content_json(mms))[1:-1]


def join_body(envelope: Mapping[str, Any], fragment: bytes) -> bytes:
    """One request body from an envelope and a :func:`content_fragment`, without re-encoding it."""
    head = encode(envelope)
    if not fragment:
        return head
    return b"".join((head[:-1], b",", fragment, b"}"))


_UNKNOWN_STATUSES = frozenset({500, 502, 504})


#: A number of seconds; it starts where a run of digits starts (``(?<![\d.])``), so a hostile
#: answer of 60,000 digits is scanned once, not from each of its digits (which took a minute).
_SECONDS_APART = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)


def _stated_wait(code: str, info: str | None) -> float | None:
    """The wait an E106 answer states ("calls must be at least X seconds apart"), if it does."""
    if code != "E106" or not info:
        return None
    found = _SECONDS_APART.search(info)
    return float(found.group(1)) if found else None


_KEY_MASK = "[api-key]"


def decode_answer(
    status: int,
    body: bytes,
    retry_after: float | None = None,
    *,
    truncated: bool = False,
    secret: str | None = None,
) -> dict[str, Any]:
    """The API's ``status: success`` answer, or the error it stands for.

    A ``failure`` answer raises the :class:`ApiError` for its code. An HTTP error without a JSON
    answer raises by status: 429 and 503 as retryable, 500/502/504 as :class:`TransportError` with
    an unknown outcome (a gateway may have passed the request on), other 4xx as not accepted. An
    answer cut off at the transport's cap is read only for an error's message: a 2xx one is an
    unknown outcome, whatever its start says. A UTF-8 byte order mark before the JSON is skipped.
    ``secret`` (the API key) is masked wherever the answer echoes it, as is or escaped, so no
    error or result can carry it.
    """
    if truncated and 200 <= status < 300:
        raise TransportError(
            f"HTTP {status} with an answer over the size limit; the API's answers are small",
            outcome_unknown=True,
            http_status=status,
        )
    if secret is not None:
        body = mask_echoes(body, echo_forms(secret), _KEY_MASK.encode())
    body = without_bom(body)
    try:
        payload: Any = None if truncated else orjson.loads(body)
        if secret is not None and payload is not None:
            payload = redact(payload, secret, _KEY_MASK)
    except (ValueError, RecursionError):  # redact recurses: nested near orjson's 1,024 is too deep
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("status"), str):
        outcome = payload["status"].lower()
        if outcome == "success" and 200 <= status < 300:
            return payload
        if outcome == "failure":
            code = payload.get("error-code")
            info = payload.get("error-info")
            error: ApiError = api_error_from_code(
                str(code) if code is not None else "unknown",
                info if isinstance(info, str) else None,
                http_status=status,
                response=payload,
            )
            error.retry_after = retry_after
            if error.code is not None:
                stated = _stated_wait(error.code, error.info)
                if stated is not None:
                    error.retry_after = max(stated, retry_after or 0.0)
            raise error
    text = body.decode("utf-8", "replace")
    if 200 <= status < 300 or status in _UNKNOWN_STATUSES or status >= 505:
        snippet = " ".join(text.split())[:200]
        raise TransportError(
            f"HTTP {status} with an answer that is not the API's JSON: {snippet!r}",
            outcome_unknown=True,
            http_status=status,
        )
    raise api_error_from_http(status, text, retry_after=retry_after)


def _envelope(
    action: str,
    *,
    to: str,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Iterable[str] | None,
    from_mask: str | None,
    client_reference: str | None,
) -> dict[str, Any]:
    service = check_service_id(service_id)
    if sender is None or sender == "":
        raise ValidationError("sender", "is required: pass it to MMSClient or to the call")
    check_client_reference(client_reference)
    check_from_mask(from_mask)
    recipient = normalize_number(to, field="to")
    payload: dict[str, Any] = {
        "action": action,
        "service-id": service,
        "to": recipient,
        "from": normalize_sender(sender, field="sender"),
    }
    others = normalize_numbers(to_displayonly, field="to_displayonly")
    if recipient in others:
        raise ValidationError("to_displayonly", f"lists the recipient {recipient} too")
    if others:
        payload["to-displayonly"] = ",".join(others)
    if from_mask is not None:
        payload["from-mask"] = from_mask
    if client_reference is not None:
        payload["client-reference"] = client_reference
    return payload


def send_envelope(
    mms: MMS,
    *,
    to: str,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None = None,
    from_mask: str | None = None,
    client_reference: str | None = None,
) -> dict[str, Any]:
    """The ``sendmms`` request for one recipient, without the content (see :func:`join_body`)."""
    check_fallback_for_send(mms)
    if mms.expires_at is not None or mms.fallback_sms_link_expiration is not None:
        check_deadlines(mms.expires_at, mms.fallback_sms_link_expiration)
    return _envelope(
        "sendmms", to=to, service_id=service_id, sender=sender, to_displayonly=to_displayonly,
        from_mask=from_mask, client_reference=client_reference,
    )


def send_request(
    mms: MMS,
    *,
    to: str,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None = None,
    from_mask: str | None = None,
    client_reference: str | None = None,
) -> dict[str, Any]:
    """The ``sendmms`` request for one recipient."""
    payload = send_envelope(
        mms, to=to, service_id=service_id, sender=sender, to_displayonly=to_displayonly,
        from_mask=from_mask, client_reference=client_reference,
    )
    payload.update(_unstructure_mms(mms))
    return payload


def save_request(mms: MMS, *, name: str, client_reference: str | None = None) -> dict[str, Any]:
    """The ``savemms`` request that stores ``mms`` as a template called ``name``."""
    if not isinstance(mms, MMS):
        raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
    check_template_name(name)
    check_client_reference(client_reference)
    if mms.expires_at is not None:
        raise ValidationError("expires_at", "applies to a send, not a template; give it to send_saved")
    if mms.cache_content is not None:
        raise ValidationError("cache_content", "applies to sendmms only, not to a template")
    if mms.fallback_sms_link_expiration is not None:
        check_deadlines(None, mms.fallback_sms_link_expiration)
    payload: dict[str, Any] = {"action": "savemms", "name": name}
    if client_reference is not None:
        payload["client-reference"] = client_reference
    payload.update(_unstructure_mms(mms))
    return payload


def send_saved_request(
    mms_id: str,
    *,
    to: str,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None = None,
    from_mask: str | None = None,
    client_reference: str | None = None,
    custom_texts: Mapping[int, str] | None = None,
    subject: str | None = None,
    fallback_sms_text: str | None = None,
    disable_fallback_sms: bool | None = None,
    disable_fallback_sms_link: bool | None = None,
    fallback_sms_link_expiration: datetime | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``sendsavedmms`` request that sends template ``mms_id`` to one recipient.

    ``custom_texts`` maps slide numbers (from 1) to the text that replaces that slide's text;
    ``subject`` and the fallback settings override the template's.
    """
    check_mms_id(mms_id)
    check_send_saved_options(
        custom_texts=custom_texts, subject=subject, fallback_sms_text=fallback_sms_text,
        disable_fallback_sms=disable_fallback_sms,
        disable_fallback_sms_link=disable_fallback_sms_link,
        fallback_sms_link_expiration=fallback_sms_link_expiration, expires_at=expires_at,
    )
    payload = _envelope(
        "sendsavedmms", to=to, service_id=service_id, sender=sender,
        to_displayonly=to_displayonly, from_mask=from_mask, client_reference=client_reference,
    )
    payload["mms-id"] = mms_id
    optional: dict[str, Any] = {
        "message-subject": subject,
        "fallback-sms-text": fallback_sms_text,
        "disable-fallback-sms": disable_fallback_sms,
        "disable-fallback-sms-link": disable_fallback_sms_link,
        "fallback-sms-link-expiration": fallback_sms_link_expiration,
        "mms-expiry-timestamp": expires_at,
    }
    for key, value in optional.items():
        if value is not None:
            payload[key] = _format_datetime(value) if isinstance(value, datetime) else value
    if custom_texts:
        payload["custom-slides"] = [
            {"custom-message-text": text, "custom-slide": str(number)}
            for number, text in sorted(custom_texts.items())
        ]
    return payload


#: How many messages (and routes) keep their encoded bodies for further recipients.
_SPLICE_CACHE_SIZE = 32

#: A route's body parts around the recipient and the content: head, middle (``from``) and the
#: optional members (``from-mask``, ``client-reference``).
_Route = tuple[bytes, bytes, bytes]
#: A ``sendmms`` body cut around its recipient: ``head + to + middle [+ display-only] + tail``,
#: with the message it was encoded from.
_Splice = tuple[MMS, bytes, bytes, bytes]


def _remember(cache: dict[Any, T], key: Any, value: T) -> T:
    """Keep ``value`` in ``cache``, forgetting the oldest entry beyond :data:`_SPLICE_CACHE_SIZE`."""
    cache[key] = value
    if len(cache) > _SPLICE_CACHE_SIZE:
        del cache[next(iter(cache))]
    return value


#: ``PreparedRequest``'s slot setters, for :meth:`JsonFlavour.send` (see :mod:`mmsjson._slots`):
#: empty, and ``send`` builds it by keyword, if the class no longer has these fields.
_REQUEST_SLOTS = slot_setters(
    PreparedRequest, ("url", "body", "headers", "recipients", "action", "identity", "cost")
)
_REQUEST_BY_HAND = bool(_REQUEST_SLOTS)


class JsonFlavour:
    """The MMS JSON API: one JSON document per request, the key in the ``x-api-key`` header.

    The content of a message is encoded once per :class:`MMS` object and spliced into the request
    of each recipient, so a group or bulk send to many people encodes its slides once.
    """

    name = "json"

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL) -> None:
        self.base_url = check_base_url(base_url)
        self._key = check_api_key(api_key)
        self._headers = ReadOnlyHeaders({
            "x-api-key": self._key,
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        })
        self._routes: dict[tuple[object, ...], _Route] = {}
        self._splices: dict[tuple[object, ...], _Splice] = {}

    def __repr__(self) -> str:
        return f"<JsonFlavour {self.base_url}>"

    def _route(
        self,
        service_id: str | None,
        sender: str | None,
        from_mask: str | None,
        client_reference: str | None,
    ) -> _Route:
        """The body parts that say who sends, checked and encoded once per route."""
        key = (service_id, type(service_id), sender, from_mask, client_reference)
        try:
            route = self._routes.get(key)
        except TypeError:  # an unhashable value (a list): the checks below refuse it
            route = None
        if route is not None:
            return route
        service = check_service_id(service_id)
        if sender is None or sender == "":
            raise ValidationError("sender", "is required: pass it to MMSClient or to the call")
        check_client_reference(client_reference)
        check_from_mask(from_mask)
        options = b"".join(
            b',"' + name + b'":' + _json_value(value)
            for name, value in ((b"from-mask", from_mask), (b"client-reference", client_reference))
            if value is not None
        )
        return _remember(self._routes, key, (
            b'{"action":"sendmms","service-id":' + _json_value(service) + b',"to":"',
            b'","from":' + _json_value(normalize_sender(sender, field="sender")),
            options,
        ))

    def _request(self, action: str, body: bytes, to: str | None) -> PreparedRequest:
        return PreparedRequest(
            url=self.base_url, body=body, headers=self._headers,
            recipients=() if to is None else (to,), action=action,
        )

    def send(
        self,
        mms: MMS,
        to: str,
        *,
        service_id: str | None,
        sender: str | None,
        to_displayonly: Sequence[str] | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
    ) -> PreparedRequest:
        """The ``sendmms`` request for ``to``: byte for byte ``encode(send_request(...))``.

        Only the recipient (and the display-only list) is written per call; the rest of the body
        is spliced from what was encoded for the first recipient of the same message and route.
        """
        key = (id(mms), service_id, type(service_id), sender, from_mask, client_reference)
        try:
            splice = self._splices.get(key)
        except TypeError:  # an unhashable route value (a list): the route's checks refuse it
            splice = None
        if splice is None or splice[0] is not mms:
            if not isinstance(mms, MMS):
                raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
            if not (mms.fallback_sms_text or mms.disable_fallback_sms):
                check_fallback_for_send(mms)
            if mms.expires_at is not None or mms.fallback_sms_link_expiration is not None:
                check_deadlines(mms.expires_at, mms.fallback_sms_link_expiration)
            head, middle, options = self._route(service_id, sender, from_mask, client_reference)
            content = orjson.dumps(_content_json(mms))
            splice = _remember(self._splices, key, (mms, head, middle, options + b"," + content[1:]))
        elif mms.expires_at is not None or mms.fallback_sms_link_expiration is not None:
            check_deadlines(mms.expires_at, mms.fallback_sms_link_expiration)
        recipient = normalize_number(to, field="to")
        shown = b""
        if to_displayonly is not None:
            others = normalize_numbers(to_displayonly, field="to_displayonly")
            if recipient in others:
                raise ValidationError("to_displayonly", f"lists the recipient {recipient} too")
            if others:
                shown = b',"to-displayonly":"%s"' % ",".join(others).encode()
        body = b"".join((splice[1], recipient.encode(), splice[2], shown, splice[3]))
        if not _REQUEST_BY_HAND:
            return PreparedRequest(
                url=self.base_url, body=body, headers=self._headers, recipients=(recipient,),
                action="sendmms",
            )
        set_url, set_body, set_headers, set_recipients, set_action, set_identity, set_cost = (
            _REQUEST_SLOTS
        )
        request: PreparedRequest = object.__new__(PreparedRequest)
        set_url(request, self.base_url)
        set_body(request, body)
        set_headers(request, self._headers)
        set_recipients(request, (recipient,))
        set_action(request, "sendmms")
        set_identity(request, None)
        set_cost(request, 1)
        return request

    def save(
        self, mms: MMS, *, name: str, client_reference: str | None = None
    ) -> PreparedRequest:
        if not isinstance(mms, MMS):
            raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
        body = encode(save_request(mms, name=name, client_reference=client_reference))
        return self._request("savemms", body, None)

    def send_saved(
        self,
        mms_id: str,
        to: str,
        *,
        service_id: str | None,
        sender: str | None,
        to_displayonly: Sequence[str] | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
        **overrides: Unpack[SendSavedOptions],
    ) -> PreparedRequest:
        payload = send_saved_request(
            mms_id, to=to, service_id=service_id, sender=sender, to_displayonly=to_displayonly,
            from_mask=from_mask, client_reference=client_reference, **overrides,
        )
        return self._request("sendsavedmms", encode(payload), payload["to"])

    def read(self, raw: RawResponse) -> Answer:
        status = raw.status
        if 200 <= status < 300 and not raw.truncated:
            # The common answer, taken without decode_answer's frame: a success, exactly spelled.
            # It is not searched for the key: an answer reaches no exception, log or repr (a
            # result's repr leaves out its raw answer), and the search cost a third of a read.
            try:
                payload = orjson.loads(raw.body)
            except ValueError:
                pass
            else:
                if type(payload) is dict and payload.get("status") == "success":
                    return payload
        return decode_answer(
            status, raw.body, raw.retry_after, truncated=raw.truncated, secret=self._key
        )

    def send_result(self, answer: Answer) -> SendResult:
        return structure_send_result(answer)

    def send_tracking_id(self, answer: Answer) -> str:
        """``send_result(answer).tracking_id``: what a bulk run reads of each accepted answer."""
        return send_tracking_id(answer)

    def save_result(self, answer: Answer) -> SaveResult:
        return structure_save_result(answer)

"""The wire-flavour seam: how a send, save or send-saved call becomes HTTP requests and back.

A flavour knows one of the ways the API documents send an MMS: where the API key goes (a header,
the body, a bearer token), how a message is written on the wire, how many recipients one request
may carry, and how an answer reads as an accepted result or a typed error with its own code table.
The send pipeline, the limiter, the retries, the fan-out and the journal know none of that.
"""

from __future__ import annotations

import codecs
import functools
import html
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict, Unpack
from xml.sax.saxutils import escape as xml_escape

from mmsjson.errors import ValidationError
from mmsjson.models import MMS, SaveResult, SendResult
from mmsjson.transport import PreparedRequest, RawResponse

__all__ = [
    "Answer",
    "Flavour",
    "SendSavedOptions",
    "check_api_key",
    "echo_forms",
    "mask_echoes",
    "redact",
    "send_identity",
    "send_saved_identity",
    "without_bom",
]

#: An accepted answer as the flavour decoded it; read it with the flavour's ``*_result`` methods.
Answer = Mapping[str, Any]


class SendSavedOptions(TypedDict, total=False):
    """What a ``sendsavedmms`` call may override in the saved template."""

    custom_texts: Mapping[int, str] | None
    subject: str | None
    fallback_sms_text: str | None
    disable_fallback_sms: bool | None
    disable_fallback_sms_link: bool | None
    fallback_sms_link_expiration: datetime | None
    expires_at: datetime | None


class Flavour(Protocol):
    """Builds the requests of one wire flavour and reads its answers.

    ``send``, ``save`` and ``send_saved`` refuse, before any I/O, what this flavour cannot carry
    (:class:`~mmsjson.errors.ValidationError`). ``read`` returns the accepted answer or raises the
    :class:`~mmsjson.errors.ApiError` (or :class:`~mmsjson.errors.TransportError` when the answer
    is not one the API gives) it stands for.
    """

    name: str
    base_url: str

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
    ) -> PreparedRequest: ...

    def save(
        self, mms: MMS, *, name: str, client_reference: str | None = None
    ) -> PreparedRequest: ...

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
    ) -> PreparedRequest: ...

    def read(self, raw: RawResponse) -> Answer: ...

    def send_result(self, answer: Answer) -> SendResult: ...

    def save_result(self, answer: Answer) -> SaveResult: ...


def check_api_key(key: object) -> str:
    """The API key without surrounding whitespace (a key read from a file ends in a newline).

    A key with a control character or a space inside cannot travel in a header: it is refused
    without being echoed.
    """
    if not isinstance(key, str):
        raise ValidationError("api_key", f"must be a string, not {type(key).__name__}")
    key = key.strip()
    if not key:
        raise ValidationError("api_key", "is empty")
    if not key.isprintable() or not key.isascii() or " " in key:
        raise ValidationError(
            "api_key", "contains a space, a control character or a non-ASCII character (not shown)"
        )
    return key


def redact(value: Any, secret: str, mask: str) -> Any:
    """``value`` (an answer's text, or the dicts and lists decoded from it) with ``secret`` masked.

    A flavour whose key travels in the body runs what comes back through this before any of it
    can reach an exception, so a server that echoes the request never leaks the key.
    """
    if isinstance(value, str):
        return value.replace(secret, mask) if secret in value else value
    if isinstance(value, Mapping):
        return {k: redact(v, secret, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret, mask) for v in value]
    return value


@functools.lru_cache(maxsize=16)
def echo_forms(secret: str) -> tuple[bytes, ...]:
    """The ways a peer may echo ``secret`` in an answer that is not parsed: as is, escaped for XML
    or HTML, or with the slash a JSON writer may escape (``\\/``), each as UTF-8. Remembered per
    secret: the JSON flavour asks for every error answer it reads."""
    forms = (
        secret, xml_escape(secret), html.escape(secret),
        xml_escape(secret, {'"': "&quot;", "'": "&apos;"}), secret.replace("/", "\\/"),
    )
    return tuple(form.encode() for form in dict.fromkeys(forms))


def mask_echoes(body: bytes, forms: tuple[bytes, ...], mask: bytes) -> bytes:
    """``body`` with every form of a secret (see :func:`echo_forms`) replaced by ``mask``."""
    for form in forms:
        if form in body:
            body = body.replace(form, mask)
    return body


def without_bom(body: bytes) -> bytes:
    """``body`` without a leading UTF-8 byte order mark, which JSON readers refuse (RFC 8259
    allows a reader to ignore it)."""
    return body[len(codecs.BOM_UTF8):] if body.startswith(codecs.BOM_UTF8) else body


def send_identity(
    mms: MMS,
    to: str,
    *,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None = None,
    from_mask: str | None = None,
    client_reference: str | None = None,
) -> bytes:
    """What names a send in a bulk journal, whichever flavour carries it.

    It is the JSON flavour's ``sendmms`` body for the same send (that body holds no secret), so a
    run journaled through one flavour resumes through another. Built without the JSON flavour's
    checks: a flavour that needs no service id or fallback text still gets an identity.
    """
    from mmsjson.flavours.json import join_body
    from mmsjson.models import check_text
    from mmsjson.numbers import normalize_number, normalize_numbers, normalize_sender

    envelope: dict[str, Any] = {"action": "sendmms"}
    if service_id is not None and service_id != "":
        if isinstance(service_id, str):
            check_text(service_id, "service_id")
        envelope["service-id"] = str(service_id)
    envelope["to"] = normalize_number(to, field="to")
    if sender:
        envelope["from"] = normalize_sender(sender, field="sender")
    others = normalize_numbers(to_displayonly, field="to_displayonly")
    if others:
        envelope["to-displayonly"] = ",".join(others)
    if from_mask is not None:
        envelope["from-mask"] = from_mask
    if client_reference is not None:
        envelope["client-reference"] = client_reference
    return join_body(envelope, _content_fragment(mms))


_FRAGMENTS: OrderedDict[int, tuple[MMS, bytes]] = OrderedDict()
_FRAGMENT_CACHE_SIZE = 32


def _content_fragment(mms: MMS) -> bytes:
    """The JSON content of ``mms``, encoded once per message object for the jobs that share it."""
    from mmsjson.flavours.json import content_fragment

    cached = _FRAGMENTS.get(id(mms))
    if cached is not None and cached[0] is mms:
        return cached[1]
    fragment = content_fragment(mms)
    _FRAGMENTS[id(mms)] = (mms, fragment)
    if len(_FRAGMENTS) > _FRAGMENT_CACHE_SIZE:
        _FRAGMENTS.popitem(last=False)
    return fragment


def send_saved_identity(
    mms_id: str,
    to: str,
    *,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None = None,
    from_mask: str | None = None,
    client_reference: str | None = None,
    **overrides: Unpack[SendSavedOptions],
) -> bytes:
    """What names a send of a saved template in a bulk journal: the JSON ``sendsavedmms`` body."""
    from mmsjson.flavours.json import encode, send_saved_request

    return encode(send_saved_request(
        mms_id, to=to, service_id=service_id, sender=sender, to_displayonly=to_displayonly,
        from_mask=from_mask, client_reference=client_reference, **overrides,
    ))

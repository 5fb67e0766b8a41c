"""The XML flavour: the older MMS API that takes XML documents with the API key in the body.

``sendMMS``, ``saveMMS`` and ``sendSavedMMS`` are written as ``<request>`` documents with
:mod:`xml.etree.ElementTree` (which escapes every text it writes) and the answers, ``<response>``
documents, are parsed with :mod:`defusedxml` with DTDs forbidden, so an answer cannot expand
entities or reach external resources. Accepted answers become the same
:class:`~mmsjson.models.SendResult` / :class:`~mmsjson.models.SaveResult`, failures the same
typed errors (the XML API uses the JSON API's E-codes).

The key travels in the body, so each request carries an ``identity`` for the journal (the JSON
flavour's body for the same send, which holds no secret), and any answer text that echoes the key
is redacted before it can reach an exception. Where the documents leave something open (the
endpoint, the key's element name, the ``saveMMS`` shape, the date format) the assumption is stated
in :data:`ASSUMPTIONS`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

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
    send_identity,
    send_saved_identity,
)
from mmsjson.flavours.json import _stated_wait, structure_save_result, structure_send_result
from mmsjson.models import (
    MEDIA_KINDS,
    MMS,
    SaveResult,
    SendResult,
    check_deadlines,
    check_fallback_for_send,
    check_mms_id,
    check_send_saved_options,
    check_service_id,
    check_subject,
    check_template_name,
)
from mmsjson.numbers import normalize_number, normalize_sender
from mmsjson.transport import USER_AGENT, PreparedRequest, RawResponse, check_base_url

__all__ = ["ASSUMPTIONS", "DEFAULT_XML_URL", "XmlFlavour", "parse_answer"]

#: The XML API's endpoint (other-flavours-facts.md: a public client of the API posts there).
DEFAULT_XML_URL = "https://api.ci.mblox.com/ep/v1/"

#: What this flavour takes from outside the XML documents, kept in one place (see the README).
ASSUMPTIONS: Mapping[str, str] = {
    "endpoint": f"POST {DEFAULT_XML_URL}, the document as the body (a public client of the API)",
    "api-key": "the key's element is <api-key> (the sendSavedMMS page and the public client; the "
    "sendMMS page spells it api_key)",
    "saveMMS": "saveMMS is sendMMS without to, from and service-id ('sendMMS is a minor extension "
    "of the saveMMS function')",
    "dates": "fallback-sms-link-expiration is written as ISO 8601 in UTC, as in the JSON API",
    "content-type": "the request is sent as application/xml; charset=utf-8",
}

_ACTIONS = {"send": "sendMMS", "save": "saveMMS", "send_saved": "sendSavedMMS"}
#: Answer elements, in the spellings the documents use, to the keys the result readers take.
_ANSWER_KEYS = {
    "trackingId": "tracking-id",
    "mmsId": "mms-id",
    "errorCode": "error-code",
    "errorInfo": "error-info",
    "statusDetails": "status-details",
}
#: Characters XML 1.0 cannot carry at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNKNOWN_STATUSES = frozenset({500, 502, 504})
_KEY_MASK = b"[api-key]"


def _xml_text(value: str, path: str) -> str:
    """``value`` if XML 1.0 can carry it; a control character (other than tab and line breaks)
    cannot be written in an XML document even as a character reference."""
    found = _NOT_XML.search(value)
    if found is not None:
        raise ValidationError(
            path,
            f"has U+{ord(found.group()):04X} at position {found.start()}, which an XML document "
            "cannot carry; the XML flavour refuses it",
        )
    return value


def _add(parent: ET.Element, tag: str, text: str, path: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = _xml_text(text, path)
    return element


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _refuse(path: str, what: str, action: str) -> ValidationError:
    return ValidationError(
        path, f"the XML {action} has no {what}; use the JSON flavour (MMSClient default) for it"
    )


def _content(request: ET.Element, mms: MMS, action: str) -> None:
    """Subject, fallback settings and slides of ``mms`` as the XML documents write them."""
    if mms.disable_fallback_sms:
        raise _refuse("disable_fallback_sms", "switch to turn the fallback SMS off", action)
    if mms.disable_fallback_sms_link:
        raise _refuse("disable_fallback_sms_link", "switch to turn the fallback link off", action)
    if mms.expires_at is not None:
        raise _refuse("expires_at", "expiry timestamp (mms-expiry-timestamp)", action)
    if mms.cache_content is not None:
        raise _refuse("cache_content", "cache-content switch", action)
    if mms.subject is not None:
        _add(request, "message-subject", mms.subject, "subject")
    if mms.fallback_sms_text:
        _add(request, "fallback-sms-text", mms.fallback_sms_text, "fallback_sms_text")
    if mms.fallback_sms_link_expiration is not None:
        check_deadlines(None, mms.fallback_sms_link_expiration)
        _add(
            request, "fallback-sms-link-expiration",
            _format_datetime(mms.fallback_sms_link_expiration), "fallback_sms_link_expiration",
        )
    for index, slide in enumerate(mms.slides):
        element = ET.SubElement(request, "slide")
        if slide.text is not None:
            _add(element, "message-text", slide.text, f"slides[{index}].text")
        for media in slide.media:
            holder = ET.SubElement(element, MEDIA_KINDS[media.kind].xml_element)
            _add(holder, "url", media.url, f"slides[{index}].{media.kind}.url")


def _envelope(
    request: ET.Element,
    action: str,
    *,
    to: str,
    service_id: str | None,
    sender: str | None,
    to_displayonly: Sequence[str] | None,
    from_mask: str | None,
    client_reference: str | None,
) -> str:
    if to_displayonly:
        raise _refuse("to_displayonly", "group threads (to-displayonly)", action)
    if from_mask is not None:
        raise _refuse("from_mask", "sender mask (from-mask)", action)
    if client_reference is not None:
        raise _refuse("client_reference", "client reference", action)
    service = check_service_id(service_id)
    if sender is None or sender == "":
        raise ValidationError("sender", "is required: pass it to MMSClient or to the call")
    recipient = normalize_number(to, field="to")
    _add(request, "to", recipient, "to")
    _add(request, "from", normalize_sender(sender, field="sender"), "sender")
    _add(request, "service-id", service, "service_id")
    return recipient


def _document(root: ET.Element) -> bytes:
    """``root`` as UTF-8 bytes. A carriage return is written as a character reference: written
    raw, every XML parser reads it back as a line feed (XML 1.0 section 2.11), so a user's text
    would change on the way. ElementTree writes no other carriage return (no attributes here)."""
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document.replace(b"\r", b"&#13;")


def _answer_fields(root: ET.Element) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for child in root:
        if isinstance(child.tag, str) and len(child) == 0:
            fields.setdefault(_ANSWER_KEYS.get(child.tag, child.tag), (child.text or "").strip())
    return fields


def parse_answer(body: bytes) -> dict[str, Any] | None:
    """The children of a ``<response>`` document as a dict, or None if ``body`` is not one.

    Parsed with DTDs, entities and external references forbidden: a hostile answer (an entity
    bomb, an external entity) is not expanded, it is simply not an answer.
    """
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError, LookupError):
        return None
    if root.tag != "response":
        return None
    return _answer_fields(root)


class XmlFlavour:
    """The older XML API: one ``<request>`` document per request, the key in its ``<api-key>``.

    ``send_name`` is the ``name`` every ``sendMMS`` must carry (the XML document makes it
    mandatory; the JSON API has no such field); when it is not given the message's subject is
    used, and a message without either is refused before I/O. What the XML documents cannot
    express (group threads, a sender mask, a client reference, an expiry, switching the fallback
    SMS off) is refused with a :class:`~mmsjson.errors.ValidationError` naming it.
    """

    name = "xml"

    def __init__(
        self, api_key: str, base_url: str = DEFAULT_XML_URL, *, send_name: str | None = None
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._key = check_api_key(api_key)
        #: The key as an answer that is not parsed may echo it: as is, or escaped for XML or HTML.
        self._key_echoes = echo_forms(self._key)
        self._key_forms = tuple(form.decode() for form in self._key_echoes)
        if send_name is not None:
            check_template_name(send_name, "send_name")
            _xml_text(send_name, "send_name")
        self.send_name = send_name
        self._headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "Accept": "application/xml, text/xml",
            "User-Agent": USER_AGENT,
        }

    def __repr__(self) -> str:
        return f"<XmlFlavour {self.base_url}>"

    def _root(self, action: str) -> ET.Element:
        root = ET.Element("request")
        ET.SubElement(root, "action").text = action
        ET.SubElement(root, "api-key").text = self._key
        return root

    def _request(
        self, action: str, root: ET.Element, to: str | None, identity: bytes
    ) -> PreparedRequest:
        return PreparedRequest(
            url=self.base_url, body=_document(root), headers=self._headers,
            recipients=() if to is None else (to,), action=action, identity=identity,
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
        action = _ACTIONS["send"]
        check_fallback_for_send(mms)
        name = self.send_name if self.send_name is not None else mms.subject
        if not name:
            raise ValidationError(
                "name",
                "the XML sendMMS requires a name: give XmlFlavour(send_name=...) or a subject",
            )
        root = self._root(action)
        recipient = _envelope(
            root, action, to=to, service_id=service_id, sender=sender,
            to_displayonly=to_displayonly, from_mask=from_mask, client_reference=client_reference,
        )
        _add(root, "name", name, "name")
        _content(root, mms, action)
        identity = send_identity(mms, recipient, service_id=service_id, sender=sender)
        return self._request(action, root, recipient, identity)

    def save(
        self, mms: MMS, *, name: str, client_reference: str | None = None
    ) -> PreparedRequest:
        action = _ACTIONS["save"]
        if not isinstance(mms, MMS):
            raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
        check_template_name(name)
        if client_reference is not None:
            raise _refuse("client_reference", "client reference", action)
        root = self._root(action)
        _add(root, "name", name, "name")
        _content(root, mms, action)
        body = _document(root)
        return PreparedRequest(
            url=self.base_url, body=body, headers=self._headers, recipients=(), action=action,
            identity=mask_echoes(body, self._key_echoes, _KEY_MASK),
        )

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
        action = _ACTIONS["send_saved"]
        check_mms_id(mms_id)
        check_send_saved_options(**overrides)
        for option, what in (
            ("disable_fallback_sms", "switch to turn the fallback SMS off"),
            ("disable_fallback_sms_link", "switch to turn the fallback link off"),
            ("fallback_sms_link_expiration", "fallback link expiration"),
            ("expires_at", "expiry timestamp"),
        ):
            if overrides.get(option) is not None:
                raise _refuse(option, what, action)
        subject = overrides.get("subject")
        if not subject:
            raise ValidationError(
                "subject",
                "the XML sendSavedMMS requires a subject (custom-subject), without emoji: "
                "pass subject=...",
            )
        check_subject(subject)
        fallback = overrides.get("fallback_sms_text")
        if not fallback:
            raise ValidationError(
                "fallback_sms_text", "the XML sendSavedMMS requires it: pass fallback_sms_text=..."
            )
        root = self._root(action)
        recipient = _envelope(
            root, action, to=to, service_id=service_id, sender=sender,
            to_displayonly=to_displayonly, from_mask=from_mask, client_reference=client_reference,
        )
        _add(root, "mms-id", mms_id, "mms_id")
        _add(root, "fallback-sms-text", fallback, "fallback_sms_text")
        for number, text in sorted((overrides.get("custom_texts") or {}).items()):
            custom = ET.SubElement(root, "custom-text")
            _add(custom, "value", text, f"custom_texts[{number}]")
            _add(custom, "slide", str(number), f"custom_texts[{number}]")
        _add(root, "custom-subject", subject, "subject")
        identity = send_saved_identity(
            mms_id, recipient, service_id=service_id, sender=sender, **overrides
        )
        return self._request(action, root, recipient, identity)

    def read(self, raw: RawResponse) -> Answer:
        """The ``Success`` answer's fields, or the error a ``Failure`` answer or HTTP status means.

        The status is read from the answer as it came; every text taken from it then has the key
        redacted (as is, or XML- or HTML-escaped), so no exception can carry it even if a server
        echoed the request, and a key that happens to occur in the markup cannot corrupt it.
        """
        status = raw.status
        if raw.truncated and 200 <= status < 300:
            raise TransportError(
                f"HTTP {status} with an answer over the size limit; the API's answers are small",
                outcome_unknown=True, http_status=status,
            )
        fields = None if raw.truncated else parse_answer(raw.body)
        if fields is not None:
            outcome = str(fields.get("status", "")).lower()
            fields = {k: redact(v, self._key, _KEY_MASK.decode()) for k, v in fields.items()}
            if outcome == "success" and 200 <= status < 300:
                return fields
            if outcome == "failure":
                error: ApiError = api_error_from_code(
                    fields.get("error-code") or "unknown", fields.get("error-info") or None,
                    http_status=status, response=fields,
                )
                error.retry_after = raw.retry_after
                stated = _stated_wait(error.code or "", error.info)
                if stated is not None:
                    error.retry_after = max(stated, raw.retry_after or 0.0)
                raise error
        text = raw.body.decode("utf-8", "replace")
        for form in self._key_forms:
            text = text.replace(form, _KEY_MASK.decode())
        if 200 <= status < 300 or status in _UNKNOWN_STATUSES or status >= 505:
            snippet = " ".join(text.split())[:200]
            raise TransportError(
                f"HTTP {status} with an answer that is not the XML API's <response>: {snippet!r}",
                outcome_unknown=True, http_status=status,
            )
        raise api_error_from_http(status, text, retry_after=raw.retry_after)

    def send_result(self, answer: Answer) -> SendResult:
        return structure_send_result(answer)

    def save_result(self, answer: Answer) -> SaveResult:
        return structure_save_result(answer)

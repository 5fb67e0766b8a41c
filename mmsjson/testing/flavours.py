"""The fake server's two other flavours: the XML API (``/ep/v1/``) and SMS REST ``mt_media`` batches.

Both run on the same :class:`~mmsjson.testing.FakeMMSServer` as the JSON API, sharing its
throughput window, faults, templates and records. Requests are checked from the documents alone
(``mms-xml-api-*.txt``, ``sms-rest-api-mms-mt-media.md`` and ``other-flavours-facts.md``), with no
code from the client's flavours or validators; slide and number rules are the fake's own
(:mod:`mmsjson.testing.rules`), applied to the XML slides read as the JSON API's slide objects.

The fake's readings where the documents are silent: an XML ``saveMMS`` is ``sendMMS`` without
``to``, ``from`` and ``service-id`` and its answer carries the new ``mms-id``; the XML key element
may be spelt ``api-key`` or ``api_key``; a ``passbook`` is an object like a PDF; an SMS REST batch
counts as one request against the throughput, and over it the answer is HTTP 429.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import defusedxml.ElementTree as SafeET
from aiohttp import web
from defusedxml import DefusedXmlException

from mmsjson.testing.rules import Refusal, _emoji, _numbers, _possible, _slides
from mmsjson.testing.server import Received

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from mmsjson.testing.server import FakeMMSServer

__all__ = ["XML_PATH", "handle_sms_rest", "handle_xml", "sms_rest_path"]

XML_PATH = "/ep/v1/"
_SEND_DETAILS = "MMS request accepted and queued for delivery"
_SAVE_DETAILS = "Save MMS request accepted and queued for processing"

# -- the XML API ---------------------------------------------------------------------------------

_XML_MEDIA = {"image": "image", "audio": "audio", "video": "video", "vcard": "contact",
              "ical": "calendar", "pdf": "pdf", "passbook": "pdf"}
_XML_CONTENT = {"name", "slide", "fallback-sms-text", "message-subject", "fallback-sms-link-expiration",
                "operatorid", "campaignRef"}
_XML_KEYS = {
    "sendMMS": {"action", "api-key", "to", "from", "service-id"} | _XML_CONTENT,
    "saveMMS": {"action", "api-key"} | _XML_CONTENT,
    "sendSavedMMS": {
        "action", "api-key", "to", "from", "service-id", "mms-id", "fallback-sms-text",
        "custom-text", "custom-subject", "data", "ddm-force", "ddm-message-text",
        "ddm-message-subject", "ddm-message-timeout", "operator-id",
    },
}
_XML_REQUIRED = {
    "sendMMS": ("to", "from", "name", "slide", "fallback-sms-text", "service-id"),
    "saveMMS": ("name", "slide"),
    "sendSavedMMS": ("to", "from", "service-id", "mms-id", "fallback-sms-text"),
}
_REPEATED = {"slide", "custom-text"}
_DURATION = re.compile(r"[0-9]{1,3}")


def _xml_slide(element: Element, number: int) -> dict[str, Any]:
    """An XML ``<slide>`` as the JSON API's slide object, for the shared slide rules."""
    slide: dict[str, Any] = {}
    for child in element:
        tag = child.tag
        if tag in slide or (tag in _XML_MEDIA and _XML_MEDIA[tag] in slide):
            raise Refusal("E100", f"slide {number} has {tag} twice")
        if tag == "message-text" and len(child) == 0:
            slide["message-text"] = child.text or ""
        elif tag == "duration" and len(child) == 0:
            if not _DURATION.fullmatch((child.text or "").strip()):
                raise Refusal("E230", f"bad duration in slide {number}")
        elif tag in _XML_MEDIA:
            urls = list(child)
            if len(urls) != 1 or urls[0].tag != "url" or len(urls[0]) != 0:
                raise Refusal("E100", f"{tag} in slide {number} must hold exactly one <url>")
            slide[_XML_MEDIA[tag]] = {"url": (urls[0].text or "").strip()}
        else:
            raise Refusal("E100", f"slide {number} has an element the XML API does not define: {tag}")
    return slide


def _xml_payload(root: Element) -> tuple[str, dict[str, Any], str | None]:
    """The action, the request as a JSON-like dict (without the key), and the key it carried."""
    if root.tag != "request":
        raise Refusal("E100", "the root element must be <request>")
    fields: dict[str, Any] = {}
    key: str | None = None
    slides: list[Element] = []
    custom: list[dict[str, str]] = []
    for child in root:
        tag = child.tag
        if tag in ("api-key", "api_key"):
            key = child.text
            continue
        if tag == "slide":
            slides.append(child)
            continue
        if tag == "custom-text":
            parts = {part.tag: part.text or "" for part in child if len(part) == 0}
            if set(parts) != {"value", "slide"} or len(child) != 2:
                raise Refusal("E100", "custom-text must hold value and slide")
            custom.append(parts)
            continue
        if len(child) != 0:
            raise Refusal("E100", f"{tag} must hold text, not elements")
        if tag in fields:
            raise Refusal("E100", f"{tag} is given twice")
        fields[tag] = child.text or ""
    action = fields.get("action", "")
    if action not in _XML_KEYS:
        raise Refusal("E107", f"invalid action {action!r}")
    present = set(fields) | ({"slide"} if slides else set()) | ({"custom-text"} if custom else set())
    unknown = present - _XML_KEYS[action]
    if unknown:
        raise Refusal("E100", f"{action} does not define the elements {sorted(unknown)}")
    for name in _XML_REQUIRED[action]:
        if name not in present or (name not in _REPEATED and not fields[name].strip()):
            raise Refusal("E311" if name == "name" else "E100", f"{name} is required")
    payload: dict[str, Any] = dict(fields)
    if slides:
        payload["slide"] = [_xml_slide(s, n) for n, s in enumerate(slides, start=1)]
    if custom:
        payload["custom-text"] = custom
    return action, payload, key


def _check_xml(action: str, payload: dict[str, Any], templates: dict[str, dict[str, Any]]) -> None:
    _numbers({k: payload[k] for k in ("to", "from") if k in payload})
    for subject_key in ("message-subject", "custom-subject"):
        subject = payload.get(subject_key)
        if subject is not None and (len(subject) > 80 or _emoji(subject)):
            raise Refusal("E314", "invalid message subject: over 80 characters, or emoji")
    expiration = payload.get("fallback-sms-link-expiration")
    if expiration is not None:
        try:
            moment = datetime.fromisoformat(expiration)
        except ValueError:
            raise Refusal("E100", "fallback-sms-link-expiration is not a date-time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment > datetime.now(UTC) + timedelta(days=366, minutes=1):
            raise Refusal("E100", "fallback-sms-link-expiration is more than 1 year ahead")
    if action in ("sendMMS", "saveMMS"):
        _slides(payload.get("slide"))
        return
    if not payload.get("custom-subject", "").strip():
        raise Refusal("E314", "sendSavedMMS requires a message subject (custom-subject)")
    template = templates.get(payload["mms-id"])
    if template is None:
        raise Refusal("E241", "this mms-id does not exist")
    for item in payload.get("custom-text", []):
        number = item["slide"].strip()
        if not number.isdigit() or not 1 <= int(number) <= len(template.get("slide", [])):
            raise Refusal("E100", f"custom-text slide {number!r} is not a slide of the template")
        if len(item["value"]) > 5000:
            raise Refusal("E228", "custom text is over 5000 characters")


def _xml_answer(fields: dict[str, str], status: int = 200) -> web.Response:
    body = "".join(f"<{k}>{_escape(v)}</{k}>" for k, v in fields.items())
    return web.Response(
        status=status, body=f"<?xml version='1.0' encoding='utf-8'?>\n<response>{body}</response>",
        content_type="application/xml", charset="utf-8",
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_failure(
    server: FakeMMSServer, now: float, payload: Any, code: str, info: str, http_status: int = 200
) -> web.Response:
    server._log(Received(now, payload, "failure", error_code=code, http_status=http_status,
                                 flavour="xml"))
    fields = {"status": "Failure", "error-code": code}
    if isinstance(payload, dict) and isinstance(payload.get("to"), str):
        fields["to"] = payload["to"]
    fields["error-info"] = info
    return _xml_answer(fields, http_status)


async def _fault_or_latency(server: FakeMMSServer, now: float, flavour: str) -> Any:
    """The fault for this request: a ``status`` fault is answered here (returned as a Response)."""
    fault = server._next_fault()
    if fault is not None and fault.kind == "status":
        server._log(Received(now, None, "http-error", http_status=fault.http_status,
                                     flavour=flavour))
        return web.Response(status=fault.http_status, text=fault.body, content_type="text/html")
    if fault is not None and fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
    elif server.latency:
        await asyncio.sleep(server.latency)
    return fault


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


async def handle_xml(server: FakeMMSServer, request: web.Request) -> web.StreamResponse:
    """``POST /ep/v1/``: an XML ``<request>`` in, an XML ``<response>`` out."""
    now = time.monotonic()
    server.arrivals.append(now)
    body = await request.read()
    fault = await _fault_or_latency(server, now, "xml")
    if isinstance(fault, web.Response):
        return fault
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError, LookupError):
        return _xml_failure(server, now, None, "E108", "the XML could not be parsed")
    try:
        action, payload, key = _xml_payload(root)
    except Refusal as refusal:
        return _xml_failure(server, now, None, refusal.code, refusal.info)
    if key != server.api_key:
        return _xml_failure(server, now, None, "E104", "authentication failed, invalid API key", 401)
    if (fault is not None and fault.kind == "e113") or server._throttled(now):
        server.e113_count += 1
        return _xml_failure(server, now, payload, "E113", "exceeded the allowed throughput")
    try:
        _check_xml(action, payload, server.templates)
    except Refusal as refusal:
        return _xml_failure(server, now, payload, refusal.code, refusal.info)
    server.accepted_count += 1
    tracking_id = server._tracking_id()
    fields = {"status": "Success"}
    if action == "saveMMS":
        mms_id = server._store_template(tracking_id, _as_json_template(payload))
        fields.update({"mms-id": mms_id, "tracking-id": tracking_id, "status-details": _SAVE_DETAILS})
    else:
        if action == "sendSavedMMS":
            fields["mms-id"] = payload["mms-id"]
        fields.update({
            "tracking-id": tracking_id, "to": payload["to"], "from": payload["from"],
            "status-details": _SEND_DETAILS,
        })
    server._log(Received(now, payload, "success", tracking_id=tracking_id, flavour="xml"))
    if fault is not None and fault.kind == "drop":
        _drop(request)
    return _xml_answer(fields)


def _as_json_template(payload: dict[str, Any]) -> dict[str, Any]:
    """An XML ``saveMMS`` stored as the JSON API's ``savemms``, so every flavour can send it."""
    template = {"action": "savemms", "name": payload["name"], "slide": payload["slide"]}
    for key in ("message-subject", "fallback-sms-text"):
        if key in payload:
            template[key] = payload[key]
    return template


# -- SMS REST mt_media batches -------------------------------------------------------------------

_BATCH_KEYS = frozenset({
    "to", "from", "body", "parameters", "type", "delivery_report", "send_at", "expire_at",
    "callback_url", "client_reference", "feedback_enabled", "strict_validation",
})
_BODY_KEYS = frozenset({"url", "message", "subject"})
_REPORTS = frozenset({"none", "summary", "full", "per_recipient", "per_recipient_final"})
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,16}")
_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")


def sms_rest_path(plan: str = "{plan}") -> str:
    return f"/xms/v1/{plan}/batches"


class _BatchRefusal(Exception):
    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(f"{status} {code}: {text}")
        self.status = status
        self.code = code
        self.text = text


def _bad(code: str, text: str) -> _BatchRefusal:
    return _BatchRefusal(400, code, text)


def _instant(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise _bad("syntax_invalid_parameter_format", f"{key} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _bad("syntax_invalid_parameter_format", f"{key} is not ISO-8601") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_batch(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise _bad("syntax_invalid_json", "the body must be a JSON object")
    unknown = set(payload) - _BATCH_KEYS
    if unknown:
        raise _bad("syntax_invalid_json", f"unknown fields {sorted(unknown)}")
    if payload.get("type") != "mt_media":
        raise _bad("syntax_constraint_violation", "this fake serves type mt_media only")
    to = payload.get("to")
    if not isinstance(to, list) or not 1 <= len(to) <= 1000:
        raise _bad("syntax_constraint_violation", "to must list 1 to 1000 numbers")
    for number in to:
        if not (isinstance(number, str) and number.startswith("+") and _possible(number[1:])):
            raise _bad("syntax_invalid_parameter_format", f"{number!r} is not an E.164 number with +")
    if len(set(to)) != len(to):
        raise _bad("syntax_constraint_violation", "to lists a number twice")
    sender = payload.get("from")
    if sender is not None and (not isinstance(sender, str) or not sender):
        raise _bad("syntax_invalid_parameter_format", "from must be a non-empty string")
    body = payload.get("body")
    if not isinstance(body, dict) or "url" not in body or set(body) - _BODY_KEYS:
        raise _bad("syntax_constraint_violation", "body must be an object with url (and message, subject)")
    if not all(isinstance(v, str) for v in body.values()):
        raise _bad("syntax_invalid_parameter_format", "body fields are strings")
    if len(body["url"]) > 2048 or not _URL.fullmatch(body["url"]):
        raise _bad("syntax_invalid_parameter_format", "body.url must be an http(s) URL of at most 2048")
    if len(body.get("message", "")) > 2000:
        raise _bad("syntax_constraint_violation", "body.message is over 2000 characters")
    if len(body.get("subject", "")) > 80:
        raise _bad("syntax_constraint_violation", "body.subject is over 80 characters")
    _check_parameters(payload.get("parameters"), set(to))
    if "delivery_report" in payload and payload["delivery_report"] not in _REPORTS:
        raise _bad("syntax_invalid_parameter_format", "unknown delivery_report")
    for key in ("feedback_enabled", "strict_validation"):
        if key in payload and not isinstance(payload[key], bool):
            raise _bad("syntax_invalid_parameter_format", f"{key} must be true or false")
    for key in ("callback_url", "client_reference"):
        if key in payload and (not isinstance(payload[key], str) or len(payload[key]) > 2048):
            raise _bad("syntax_invalid_parameter_format", f"{key} must be a string of at most 2048")
    now = datetime.now(UTC)
    start = _instant(payload["send_at"], "send_at") if "send_at" in payload else now
    if "expire_at" in payload:
        expiry = _instant(payload["expire_at"], "expire_at")
        if expiry <= start or expiry > max(start, now) + timedelta(days=3, minutes=1):
            raise _bad("syntax_constraint_violation", "expire_at must be after send_at, within 3 days")


def _check_parameters(parameters: Any, recipients: set[str]) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise _bad("syntax_invalid_parameter_format", "parameters must be an object")
    for name, values in parameters.items():
        if not _PARAMETER_NAME.fullmatch(name):
            raise _bad("syntax_invalid_parameter_format", f"parameter name {name!r} is not allowed")
        if not isinstance(values, dict):
            raise _bad("syntax_invalid_parameter_format", f"parameter {name} must map numbers to values")
        for number, value in values.items():
            if number != "default" and number not in recipients:
                raise _bad("syntax_constraint_violation", f"parameter {name} names {number}, not in to")
            if not isinstance(value, str) or len(value) > 1600:
                raise _bad("syntax_invalid_parameter_format", f"parameter {name} value is too long")


def _batch_error(
    server: FakeMMSServer, now: float, payload: Any, status: int, code: str, text: str
) -> web.Response:
    server._log(Received(now, payload, "failure", error_code=code, http_status=status,
                                 flavour="sms_rest"))
    return web.json_response({"code": code, "text": text}, status=status)


async def handle_sms_rest(server: FakeMMSServer, request: web.Request) -> web.StreamResponse:
    """``POST /xms/v1/{plan}/batches``: an ``mt_media`` batch in, the batch object (HTTP 201) out."""
    now = time.monotonic()
    server.arrivals.append(now)
    body = await request.read()
    fault = await _fault_or_latency(server, now, "sms_rest")
    if isinstance(fault, web.Response):
        return fault
    if request.headers.get("Authorization") != f"Bearer {server.api_key}":
        return _batch_error(server, now, None, 401, "unauthorized", "invalid or missing API token")
    if request.match_info["plan"] != server.service_plan_id:
        return _batch_error(server, now, None, 403, "forbidden", "unknown service plan")
    if not request.headers.get("Content-Type", "").startswith("application/json"):
        return _batch_error(server, now, None, 400, "syntax_invalid_json", "Content-Type must be JSON")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _batch_error(server, now, None, 400, "syntax_invalid_json", "the JSON is invalid")
    if (fault is not None and fault.kind == "e113") or server._throttled(now):
        server.e113_count += 1
        return _batch_error(server, now, payload, 429, "too_many_requests", "rate limit exceeded")
    try:
        _check_batch(payload)
    except _BatchRefusal as refusal:
        return _batch_error(server, now, payload, refusal.status, refusal.code, refusal.text)
    server.accepted_count += 1
    batch_id = server._tracking_id()
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    answer = {
        "id": batch_id, "to": payload["to"], "type": "mt_media", "body": payload["body"],
        "created_at": stamp, "modified_at": stamp, "canceled": False,
        "delivery_report": payload.get("delivery_report", "none"),
        "feedback_enabled": payload.get("feedback_enabled", False),
    }
    for key in ("from", "parameters", "send_at", "expire_at", "callback_url", "client_reference"):
        if key in payload:
            answer[key] = payload[key]
    server._log(Received(now, payload, "success", tracking_id=batch_id, flavour="sms_rest"))
    if fault is not None and fault.kind == "drop":
        _drop(request)
    return web.json_response(answer, status=201)

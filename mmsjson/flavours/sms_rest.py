"""The SMS REST flavour: MMS as ``mt_media`` batches of the SMS REST API (scheduled for deprecation).

One ``POST .../xms/v1/{service_plan_id}/batches`` with a bearer token carries one media URL, a
text and a subject to up to 1,000 recipients in E.164 with ``+``. An :class:`~mmsjson.models.MMS`
that this cannot express (several slides, audio, a calendar, two media on a slide, text only) is
refused before I/O with a message saying what the flavour carries. A send to one number is a batch
of one; :meth:`SmsRestFlavour.batches` and :meth:`SmsRestFlavour.pack` build batches of many, which
is how bulk runs pack recipients who get the same message (see :mod:`mmsjson._batching`).

Answers: HTTP 201 with the batch object (its ``id`` is the tracking id of every recipient in it);
HTTP 4xx with ``{"code", "text"}``, mapped onto the error tree by :data:`ERROR_CODES`; HTTP 429 is
throughput, retried after back-off. Where the documents leave something open (how the plan's
throughput counts a batch, the host per region) the assumption is in :data:`ASSUMPTIONS`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import quote

import orjson

from mmsjson.errors import (
    AccountError,
    ApiError,
    AuthError,
    BadRequestError,
    RecipientError,
    SenderError,
    ServerError,
    ThroughputExceeded,
    TransportError,
    ValidationError,
)
from mmsjson.flavours.base import (
    Answer,
    SendSavedOptions,
    check_api_key,
    echo_forms,
    mask_echoes,
    redact,
    send_identity,
    without_bom,
)
from mmsjson.models import (
    MMS,
    SaveResult,
    SendResult,
    check_deadlines,
    check_switch,
    check_text,
)
from mmsjson.numbers import normalize_number, normalize_sender
from mmsjson.transport import USER_AGENT, PreparedRequest, RawResponse, check_base_url

__all__ = [
    "ASSUMPTIONS",
    "ERROR_CODES",
    "MAX_BATCH",
    "REGIONS",
    "SUPPORTED",
    "SmsRestFlavour",
    "media_body",
    "sms_rest_error",
]

#: The most recipients one batch may carry (the ``Media`` schema's ``to``: maxItems 1000).
MAX_BATCH = 1000
#: The SMS REST API's regions and hosts (the vendor's SMS API reference); MMS is US-only per the
#: seed's schema text, which is why ``us`` is the default.
REGIONS: Mapping[str, str] = {
    region: f"https://{region}.sms.api.sinch.com/xms/v1/" for region in ("us", "eu", "au", "br", "ca")
}
#: What one ``mt_media`` batch can carry, quoted in every refusal.
SUPPORTED = (
    "SMS REST mt_media carries one slide with exactly one image, video, contact (vCard) or PDF, "
    "text of at most 2,000 characters and a subject"
)
_MEDIA = frozenset({"image", "video", "contact", "pdf"})
_MAX_MESSAGE = 2000
_MAX_URL = 2048
_MAX_REFERENCE = 2048
_MAX_PARAMETER = 1600
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,16}")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 ]*[A-Za-z][A-Za-z0-9 ]*")
_REPORTS = frozenset({"none", "summary", "full", "per_recipient", "per_recipient_final"})
_UNKNOWN_STATUSES = frozenset({500, 502, 504})

#: What this flavour takes from outside the seed document, kept in one place (see the README).
ASSUMPTIONS: Mapping[str, str] = {
    "endpoint": "POST https://{region}.sms.api.sinch.com/xms/v1/{service_plan_id}/batches, region "
    "us (default), eu, au, br or ca",
    "throughput": "the plan's limit counts requests (one batch = one request, whatever its size); "
    "SmsRestFlavour(recipients_per_ticket=N) counts ceil(recipients / N) instead",
    "fallback": "SMS REST has no fallback SMS: an MMS's fallback_sms_text, disable_fallback_sms*, "
    "fallback_sms_link_expiration and cache_content do not apply and are not sent",
    "errors": "4xx answers carry {code, text}; the codes known are in ERROR_CODES, others map by "
    "HTTP status",
}

#: SMS REST error ``code`` -> the exception family (the SMS REST status-code reference).
ERROR_CODES: Mapping[str, type[ApiError]] = {
    "syntax_invalid_json": BadRequestError,
    "syntax_invalid_parameter_format": BadRequestError,
    "syntax_constraint_violation": BadRequestError,
    "missing_callback_url": BadRequestError,
    "unknown_group": BadRequestError,
    "unknown_campaign": BadRequestError,
    "not_found": BadRequestError,
    "unauthorized": AuthError,
    "forbidden": AuthError,
    "blocked_account": AccountError,
    "insufficient_balance": AccountError,
    "illegal_number_type": RecipientError,
    "unprovisioned_region": RecipientError,
    "invalid_sender": SenderError,
    "too_many_requests": ThroughputExceeded,
    "internal_error": ServerError,
}


def _by_status(status: int) -> type[ApiError]:
    if status == 429:
        return ThroughputExceeded
    if status in (401, 403):
        return AuthError
    if status >= 500:
        return ServerError
    return BadRequestError


def sms_rest_error(
    status: int, code: str | None, text: str | None, *, response: Any = None,
    retry_after: float | None = None,
) -> ApiError:
    """The exception for an SMS REST error answer: by ``code`` if known, else by HTTP status.

    HTTP 429 is always throughput (retryable), whatever the code says.
    """
    family = ThroughputExceeded if status == 429 else ERROR_CODES.get(code or "", _by_status(status))
    return family(code, text, http_status=status, response=response, retry_after=retry_after)


def _e164(number: str, field: str) -> str:
    return "+" + normalize_number(number, field=field)


def _sender(value: str, field: str) -> str:
    """A phone number as ``+digits``, a short code as digits, or an alphanumeric sender as is."""
    if len(value) <= 11 and _ALPHANUMERIC.fullmatch(value):
        return value
    digits = normalize_sender(value, field=field)
    return digits if len(digits) <= 6 else "+" + digits


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def media_body(mms: MMS) -> dict[str, str]:
    """The batch ``body`` for ``mms``, or a :class:`ValidationError` saying what cannot be carried."""
    if not isinstance(mms, MMS):
        raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
    if len(mms.slides) != 1:
        raise ValidationError("slides", f"has {len(mms.slides)} slides; {SUPPORTED}")
    slide = mms.slides[0]
    media = slide.media
    if not media:
        raise ValidationError(
            "slides[0]", f"has no media; SMS REST refuses text-only media messages (send an SMS): {SUPPORTED}"
        )
    if len(media) > 1:
        kinds = " and ".join(m.kind for m in media)
        raise ValidationError("slides[0]", f"has {kinds}; {SUPPORTED}")
    item = media[0]
    if item.kind not in _MEDIA:
        raise ValidationError(f"slides[0].{item.kind}", f"{item.kind} cannot be sent; {SUPPORTED}")
    if len(item.url) > _MAX_URL:
        raise ValidationError(f"slides[0].{item.kind}.url", f"is over {_MAX_URL} characters")
    body = {"url": item.url}
    if slide.text:
        if len(slide.text) > _MAX_MESSAGE:
            raise ValidationError(
                "slides[0].text", f"has {len(slide.text)} characters; {SUPPORTED}"
            )
        body["message"] = slide.text
    if mms.subject:
        body["subject"] = mms.subject
    return body


def _parameters(
    parameters: Mapping[str, Mapping[str, str]] | None, recipients: Sequence[str]
) -> dict[str, dict[str, str]] | None:
    """``parameters`` with every number written in E.164 with ``+`` (``default`` kept)."""
    if parameters is None:
        return None
    if not isinstance(parameters, Mapping):
        raise ValidationError("parameters", "must map parameter names to {number: value} mappings")
    wire: dict[str, dict[str, str]] = {}
    known = set(recipients)
    for name, values in parameters.items():
        path = f"parameters[{name!r}]"
        if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
            raise ValidationError(path, "names are 1 to 16 letters, digits, '.', '-' or '_'")
        if not isinstance(values, Mapping):
            raise ValidationError(path, "must map numbers (or 'default') to values")
        written: dict[str, str] = {}
        for number, value in values.items():
            key = "default" if number == "default" else _e164(number, f"{path}[{number!r}]")
            if key != "default" and key not in known:
                raise ValidationError(f"{path}[{number!r}]", "is not a recipient of this batch")
            check_text(value, f"{path}[{number!r}]")
            if not isinstance(value, str) or len(value) > _MAX_PARAMETER:
                raise ValidationError(
                    f"{path}[{number!r}]", f"must be a text of at most {_MAX_PARAMETER} characters"
                )
            written[key] = value
        wire[name] = written
    return wire


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class SmsRestFlavour:
    """MMS through the SMS REST API's ``mt_media`` batches, with ``Authorization: Bearer``.

    ``service_plan_id`` goes in the URL; ``region`` picks the host (or give ``base_url``, e.g. a
    local fake's). ``max_recipients`` (1 to 1,000) caps a batch when bulk runs pack recipients.
    ``recipients_per_ticket`` says how the plan's throughput counts a batch: ``None`` (default)
    one limiter ticket per request, ``N`` one per started ``N`` recipients. ``delivery_report``,
    ``callback_url``, ``feedback_enabled`` and ``strict_validation`` go into every batch.

    There are no templates (``save`` and ``send_saved`` are refused) and no group threads (a
    batch sends each recipient their own message: ``to_displayonly`` is refused).
    """

    name = "sms_rest"

    def __init__(
        self,
        api_token: str,
        service_plan_id: str,
        *,
        region: str = "us",
        base_url: str | None = None,
        max_recipients: int = MAX_BATCH,
        recipients_per_ticket: int | None = None,
        delivery_report: str | None = None,
        callback_url: str | None = None,
        feedback_enabled: bool | None = None,
        strict_validation: bool | None = None,
    ) -> None:
        token = check_api_key(api_token)
        if not isinstance(service_plan_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", service_plan_id):
            raise ValidationError(
                "service_plan_id", "must be the plan id: letters, digits, '-' or '_' (not shown)"
            )
        if base_url is None:
            if region not in REGIONS:
                raise ValidationError("region", f"{region!r} is not one of {sorted(REGIONS)}")
            base_url = REGIONS[region]
        self.base_url = check_base_url(base_url)
        if isinstance(max_recipients, bool) or not isinstance(max_recipients, int) or not (
            1 <= max_recipients <= MAX_BATCH
        ):
            raise ValidationError("max_recipients", f"must be an integer from 1 to {MAX_BATCH}")
        if recipients_per_ticket is not None and (
            isinstance(recipients_per_ticket, bool) or not isinstance(recipients_per_ticket, int)
            or recipients_per_ticket < 1
        ):
            raise ValidationError("recipients_per_ticket", "must be None or an integer of at least 1")
        if delivery_report is not None and delivery_report not in _REPORTS:
            raise ValidationError("delivery_report", f"must be one of {sorted(_REPORTS)}")
        if callback_url is not None:
            check_base_url(callback_url, "callback_url")
            if not callback_url.isprintable() or " " in callback_url:
                raise ValidationError(
                    "callback_url",
                    "must be a URL without spaces or control characters (RFC 3986: "
                    "percent-encode them)",
                )
        check_switch(feedback_enabled, "feedback_enabled")
        check_switch(strict_validation, "strict_validation")
        self.max_recipients = max_recipients
        self.recipients_per_ticket = recipients_per_ticket
        self.url = f"{self.base_url.rstrip('/')}/{quote(service_plan_id)}/batches"
        self._token = token.encode()
        self._token_forms = echo_forms(token)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._options: dict[str, Any] = {
            key: value
            for key, value in (
                ("delivery_report", delivery_report),
                ("callback_url", callback_url),
                ("feedback_enabled", feedback_enabled),
                ("strict_validation", strict_validation),
            )
            if value is not None
        }

    def __repr__(self) -> str:
        return f"<SmsRestFlavour {self.base_url} max_recipients={self.max_recipients}>"

    def cost(self, recipients: int) -> int:
        """Limiter tickets a batch to ``recipients`` numbers takes (see ``recipients_per_ticket``)."""
        if self.recipients_per_ticket is None:
            return 1
        return max(1, math.ceil(recipients / self.recipients_per_ticket))

    def _payload(
        self,
        mms: MMS,
        recipients: Sequence[str],
        *,
        sender: str | None,
        from_mask: str | None,
        client_reference: str | None,
        parameters: Mapping[str, Mapping[str, str]] | None,
    ) -> dict[str, Any]:
        body = media_body(mms)
        if mms.expires_at is not None:
            check_deadlines(mms.expires_at, None)
        payload: dict[str, Any] = {"to": list(recipients)}
        if from_mask is not None:
            check_text(from_mask, "from_mask")
            if not from_mask.strip():
                raise ValidationError("from_mask", "is empty; leave it out (None) to send from the sender")
            payload["from"] = from_mask
        elif sender:
            payload["from"] = _sender(sender, "sender")
        payload["type"] = "mt_media"
        payload["body"] = body
        wire_parameters = _parameters(parameters, recipients)
        if wire_parameters:
            payload["parameters"] = wire_parameters
        if mms.expires_at is not None:
            payload["expire_at"] = _format_datetime(mms.expires_at)
        if client_reference is not None:
            check_text(client_reference, "client_reference")
            if len(client_reference) > _MAX_REFERENCE:
                raise ValidationError("client_reference", f"is over {_MAX_REFERENCE} characters")
            payload["client_reference"] = client_reference
        payload.update(self._options)
        return payload

    def _request(self, payload: dict[str, Any], identity: bytes | None) -> PreparedRequest:
        recipients = tuple(number[1:] for number in payload["to"])
        return PreparedRequest(
            url=self.url, body=_ENCODER.encode(payload).encode(), headers=self._headers,
            recipients=recipients, action="mt_media", identity=identity,
            cost=self.cost(len(recipients)),
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
        """A batch of one. ``service_id`` does not apply (the plan is in the URL) and is ignored."""
        if to_displayonly:
            raise ValidationError(
                "to_displayonly",
                "SMS REST batches have no group threads: each recipient gets their own message. "
                "Use send_bulk or send_batch for many recipients, or the JSON flavour for a group",
            )
        recipient = _e164(to, "to")
        payload = self._payload(
            mms, [recipient], sender=sender, from_mask=from_mask,
            client_reference=client_reference, parameters=None,
        )
        identity = send_identity(
            mms, recipient[1:], service_id=service_id, sender=sender, from_mask=from_mask,
            client_reference=client_reference,
        )
        return self._request(payload, identity)

    def batches(
        self,
        mms: MMS,
        recipients: Iterable[str],
        *,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
        parameters: Mapping[str, Mapping[str, str]] | None = None,
    ) -> list[PreparedRequest]:
        """Batches of at most ``max_recipients`` carrying ``mms`` to ``recipients``.

        Numbers are normalised and duplicates dropped, the caller's order kept. ``parameters``
        maps a parameter name (written ``${name}`` in the slide text) to its value per recipient,
        with ``"default"`` for the others: ``{"name": {"+15551231234": "Ann", "default":
        "there"}}``; each batch carries the values of its own recipients. Everything is checked
        before the first batch is built.
        """
        if isinstance(recipients, str | bytes | Mapping) or not isinstance(recipients, Iterable):
            raise ValidationError("recipients", "must be a list of numbers")
        numbers = list(dict.fromkeys(_e164(n, f"recipients[{i}]") for i, n in enumerate(recipients)))
        if not numbers:
            raise ValidationError("recipients", "a batch needs at least one recipient")
        wire = _parameters(parameters, numbers) or {}
        requests = []
        for start in range(0, len(numbers), self.max_recipients):
            chunk = numbers[start:start + self.max_recipients]
            members = set(chunk)
            own = {
                name: {k: v for k, v in values.items() if k == "default" or k in members}
                for name, values in wire.items()
            }
            payload = self._payload(
                mms, chunk, sender=sender, from_mask=from_mask, client_reference=client_reference,
                parameters={name: values for name, values in own.items() if values} or None,
            )
            requests.append(self._request(payload, None))
        return requests

    @staticmethod
    def batch_key(request: PreparedRequest) -> bytes:
        """What must be equal for two requests to share a batch: the body without ``to``."""
        payload = request.json()
        payload.pop("to", None)
        return _ENCODER.encode(payload).encode()

    def pack(self, requests: Sequence[PreparedRequest]) -> PreparedRequest:
        """One batch carrying the recipients of ``requests`` (same :meth:`batch_key`, in order)."""
        if not requests:
            raise ValueError("nothing to pack")
        if len(requests) == 1:
            return requests[0]
        first = requests[0].json()
        numbers: dict[str, None] = {}
        for request in requests:
            numbers.update(dict.fromkeys("+" + n for n in request.recipients))
        if len(numbers) > self.max_recipients:
            raise ValueError(f"{len(numbers)} recipients do not fit one batch of {self.max_recipients}")
        first["to"] = list(numbers)
        return self._request(first, None)

    def save(self, mms: MMS, *, name: str, client_reference: str | None = None) -> PreparedRequest:
        raise ValidationError(
            "save", "SMS REST mt_media has no saved templates; use the JSON or XML flavour to save"
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
        raise ValidationError(
            "mms_id",
            "SMS REST mt_media has no saved templates; send the MMS itself, or use the JSON or XML "
            "flavour for send_saved",
        )

    def read(self, raw: RawResponse) -> Answer:
        """The batch object of an HTTP 2xx answer, or the error the answer stands for."""
        body = mask_echoes(raw.body, self._token_forms, b"[token]")
        status = raw.status
        payload: Any = None
        if not raw.truncated:
            # orjson, as strict as the JSON flavour's reader: a lone surrogate, NaN or a nesting
            # deeper than 1,024 is no answer (a lone surrogate in a batch id cannot be stored).
            try:
                payload = redact(
                    orjson.loads(without_bom(raw.body)), self._token.decode(), "[token]"
                )
            except (ValueError, RecursionError):
                payload = None
        if 200 <= status < 300:
            if isinstance(payload, dict) and isinstance(payload.get("id"), str) and payload["id"]:
                return payload
            detail = "over the size limit" if raw.truncated else "without a batch id"
            raise TransportError(
                f"HTTP {status} with an answer {detail}; the batch may have been created",
                outcome_unknown=True, http_status=status,
            )
        text = body.decode("utf-8", "replace")
        if status in _UNKNOWN_STATUSES or status >= 505:
            snippet = " ".join(text.split())[:200]
            raise TransportError(
                f"HTTP {status} from the SMS REST API: {snippet!r}", outcome_unknown=True,
                http_status=status,
            )
        if isinstance(payload, dict) and ("code" in payload or "text" in payload):
            code = payload.get("code")
            info = payload.get("text")
            raise sms_rest_error(
                status, str(code) if code is not None else None,
                info if isinstance(info, str) else None, response=payload, retry_after=raw.retry_after,
            )
        snippet = " ".join(text.split())[:200]
        raise sms_rest_error(
            status, None, f"HTTP {status}: {snippet!r}" if snippet else None, response=text,
            retry_after=raw.retry_after,
        )

    @staticmethod
    def accepted_recipients(answer: Answer) -> frozenset[str] | None:
        """The numbers (digits, no ``+``) the batch answer lists, or None if it lists none."""
        to = answer.get("to")
        if not isinstance(to, list):
            return None
        return frozenset(n.lstrip("+") for n in to if isinstance(n, str))

    def send_result(self, answer: Answer) -> SendResult:
        to = answer.get("to")
        first = to[0].lstrip("+") if isinstance(to, list) and to and isinstance(to[0], str) else None
        sender = answer.get("from")
        return SendResult(
            tracking_id=str(answer.get("id", "")), to=first,
            sender=sender if isinstance(sender, str) else None, raw=dict(answer),
        )

    def save_result(self, answer: Answer) -> SaveResult:
        raise ValidationError("save", "SMS REST mt_media has no saved templates")

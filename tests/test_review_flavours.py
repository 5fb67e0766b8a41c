"""Adversarial review of the three wire flavours: answers a hostile or broken peer could give must
read as a typed MMSError with the right retry verdict, and bad input is refused before any I/O."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import orjson
import pytest

from mmsjson import (
    MMS,
    AuthError,
    BadRequestError,
    BulkJob,
    Image,
    JsonFlavour,
    MMSClient,
    MMSError,
    OutcomeStatus,
    PreparedRequest,
    RawResponse,
    Slide,
    SmsRestFlavour,
    ThroughputExceeded,
    TransportError,
    ValidationError,
    XmlFlavour,
)
from mmsjson.retry import RetryPolicy, Verdict, classify, parse_retry_after
from mmsjson.testing import MockTransport
from mmsjson.transport import AiohttpTransport
from tests.conftest import SECRET
from tests.raw_http import answering, request

URL = "https://api.example.test/ep/v2/"
#: A key as a base64 alphabet allows it: a slash a JSON writer may escape, a plus, an ampersand.
ODD_KEY = "sk/0123456789+abc&def=SECRET"
NESTED = b"[" * 50_000


def picture() -> MMS:
    return MMS(
        slides=[Slide(text="Sale", image=Image("https://example.com/a.jpg"))],
        subject="Sale", fallback_sms_text="See https://e.com/s",
    )


def read_error(flavour: Any, status: int, body: bytes) -> MMSError:
    with pytest.raises(MMSError) as caught:
        flavour.read(RawResponse(status, body))
    return caught.value


def error_text(error: BaseException) -> str:
    return f"{error} {error!r} {getattr(error, 'response', '')!r} {getattr(error, 'info', '')!r}"


# -- SMS REST answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"), [(201, Verdict.UNKNOWN), (400, Verdict.FINAL), (502, Verdict.UNKNOWN)]
)
def test_a_deeply_nested_sms_rest_answer_is_a_typed_error_not_a_recursion_error(
    status: int, verdict: Verdict
) -> None:
    error = read_error(SmsRestFlavour(SECRET, "plan42"), status, NESTED)
    assert classify(error) is verdict


def test_a_deeply_nested_sms_rest_429_is_still_throughput() -> None:
    error = read_error(SmsRestFlavour(SECRET, "plan42"), 429, b'{"code":' * 20_000)
    assert isinstance(error, ThroughputExceeded)


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b2", "\u2460", "3\u00b9"])
def test_a_retry_after_of_digits_that_are_not_decimal_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


async def test_a_429_with_a_superscript_retry_after_is_a_raw_answer_not_a_value_error(
    raw_server: Any,
) -> None:
    url = await raw_server(answering(
        "HTTP/1.1 429 Too Many\r\nRetry-After: \u00b2\r\nContent-Length: 0\r\n\r\n".encode()
    ))
    transport = AiohttpTransport()
    try:
        raw = await transport.post(request(url))
    finally:
        await transport.aclose()
    assert (raw.status, raw.retry_after) == (429, None)
    with pytest.raises(ThroughputExceeded):
        JsonFlavour(SECRET, URL).read(raw)


# -- requests refused before I/O ---------------------------------------------------------------


def test_sms_rest_refuses_a_service_id_with_a_lone_surrogate_naming_it() -> None:
    with pytest.raises(ValidationError) as caught:
        SmsRestFlavour(SECRET, "plan42").send(
            picture(), "17745559144", service_id="12\ud800", sender="28444"
        )
    assert caught.value.path == "service_id"


# -- the JSON flavour's key in echoed answers --------------------------------------------------


@pytest.mark.parametrize("status", [200, 400, 429, 502])
@pytest.mark.parametrize(
    "echo",
    [ODD_KEY, ODD_KEY.replace("/", "\\/"), ODD_KEY.replace("&", "&amp;")],
    ids=["as-is", "json-escaped-slash", "html-escaped"],
)
def test_a_key_echoed_in_a_page_that_is_not_the_json_answer_is_redacted(
    status: int, echo: str
) -> None:
    body = f"<html><pre>x-api-key: {echo}</pre></html>".encode()
    error = read_error(JsonFlavour(ODD_KEY, URL), status, body)
    assert "0123456789" not in error_text(error)


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(
    "echo",
    [ODD_KEY.replace("/", "\\/"), "".join(f"\\u{ord(ch):04x}" for ch in ODD_KEY)],
    ids=["escaped-slash", "unicode-escapes"],
)
def test_a_key_echoed_in_a_json_failure_answer_is_redacted(status: int, echo: str) -> None:
    quoted = echo.encode()
    body = (
        b'{"status":"failure","error-code":"E104","error-info":"bad key ' + quoted
        + b'","request":{"x-api-key":"' + quoted + b'"}}'
    )
    error = read_error(JsonFlavour(ODD_KEY, URL), status, body)
    assert isinstance(error, AuthError)
    assert "0123456789" not in error_text(error)


def test_a_key_echoed_in_a_json_success_answer_reaches_no_repr() -> None:
    flavour = JsonFlavour(ODD_KEY, URL)
    body = b'{"status":"success","tracking-id":"T1","echo":"%s"}' % ODD_KEY.encode()
    result = flavour.send_result(flavour.read(RawResponse(200, body)))
    assert result.tracking_id == "T1"
    assert "0123456789" not in repr(result)


def test_a_deeply_nested_json_failure_answer_is_a_typed_error() -> None:
    body = b'{"status":"failure","error-code":"E113","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    error = read_error(JsonFlavour(SECRET, URL), 200, body)
    assert isinstance(error, MMSError)


# -- byte order marks --------------------------------------------------------------------------


def test_a_json_success_answer_after_a_byte_order_mark_is_a_success() -> None:
    body = codecs.BOM_UTF8 + b'{"status":"success","tracking-id":"T1"}'
    flavour = JsonFlavour(SECRET, URL)
    assert flavour.send_result(flavour.read(RawResponse(200, body))).tracking_id == "T1"


def test_a_json_failure_answer_after_a_byte_order_mark_is_its_error() -> None:
    body = codecs.BOM_UTF8 + b'{"status":"failure","error-code":"E113"}'
    error = read_error(JsonFlavour(SECRET, URL), 200, body)
    assert isinstance(error, ThroughputExceeded)


def test_each_flavour_reads_an_empty_2xx_body_as_an_unknown_outcome() -> None:
    for flavour in (
        JsonFlavour(SECRET, URL), XmlFlavour(SECRET, URL), SmsRestFlavour(SECRET, "plan42")
    ):
        error = read_error(flavour, 200, b"")
        assert isinstance(error, TransportError) and classify(error) is Verdict.UNKNOWN


def test_an_empty_400_is_a_refusal_in_each_flavour() -> None:
    for flavour in (
        JsonFlavour(SECRET, URL), XmlFlavour(SECRET, URL), SmsRestFlavour(SECRET, "plan42")
    ):
        assert isinstance(read_error(flavour, 400, b""), BadRequestError)


# -- SMS REST settings and sender refused before I/O -------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://example.com/cb\ud800", "https://example.com/c\x00b", "https://example.com/a b"],
    ids=["surrogate", "nul", "space"],
)
def test_sms_rest_refuses_a_callback_url_it_cannot_send_when_it_is_built(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SmsRestFlavour(SECRET, "plan42", callback_url=url)
    assert caught.value.path == "callback_url"


@pytest.mark.parametrize("option", ["feedback_enabled", "strict_validation"])
def test_sms_rest_refuses_a_switch_that_is_not_a_bool(option: str) -> None:
    options: dict[str, Any] = {option: "yes"}
    with pytest.raises(ValidationError) as caught:
        SmsRestFlavour(SECRET, "plan42", **options)
    assert caught.value.path == option


@pytest.mark.parametrize("mask", ["", "   "])
def test_sms_rest_refuses_a_blank_sender_mask_rather_than_sending_an_empty_from(mask: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SmsRestFlavour(SECRET, "plan42").send(
            picture(), "17745559144", service_id=None, sender="28444", from_mask=mask
        )
    assert caught.value.path == "from_mask"


# -- the retry policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"base_delay": float("nan")}, "base_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"max_delay": -0.5}, "max_delay"),
    ],
)
def test_a_retry_policy_that_could_retry_without_back_off_or_wait_forever_is_refused(
    options: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy(**options)
    assert caught.value.path == path


def test_a_retry_after_the_peer_makes_infinite_waits_at_most_max_delay() -> None:
    after = parse_retry_after("1e999")
    assert RetryPolicy(max_delay=3.0).delay(1, after) == 3.0


# -- HTTP 429 whatever the failure answer's code says ------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"status":"failure","error-code":"E999","error-info":"slow down"}', b'{"status":"failure"}'],
    ids=["unknown-code", "no-code"],
)
def test_a_json_failure_answer_with_http_429_is_throughput_and_keeps_its_code(body: bytes) -> None:
    error = read_error(JsonFlavour(SECRET, URL), 429, body)
    assert isinstance(error, ThroughputExceeded) and classify(error) is Verdict.RETRY


def test_an_xml_failure_answer_with_http_429_is_throughput_and_keeps_its_code() -> None:
    body = b"<response><status>Failure</status><error-code>E999</error-code></response>"
    error = read_error(XmlFlavour(SECRET, URL), 429, body)
    assert isinstance(error, ThroughputExceeded) and error.code == "E999"


def test_the_xml_save_identity_holds_no_form_of_the_key() -> None:
    saved = XmlFlavour(ODD_KEY, URL).save(picture(), name="spring")
    assert saved.identity is not None and b"0123456789" not in saved.identity


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "64k"])
def test_an_answer_cap_that_would_cut_every_answer_is_refused(cap: object) -> None:
    with pytest.raises(ValidationError) as caught:
        AiohttpTransport(max_answer_bytes=cap)  # type: ignore[arg-type]
    assert caught.value.path == "max_answer_bytes"


# -- SMS REST answers that cannot be stored ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"id":"B\\ud800","to":["+17745559144"]}', b'{"id":"B1","to":["+1774\\udc00"]}',
     b'{"id":"B1","n":NaN}'],
    ids=["id-lone-surrogate", "to-lone-surrogate", "nan"],
)
def test_a_created_batch_whose_answer_is_not_strict_json_is_an_unknown_outcome(body: bytes) -> None:
    error = read_error(SmsRestFlavour(SECRET, "plan42"), 201, body)
    assert isinstance(error, TransportError) and classify(error) is Verdict.UNKNOWN


async def test_a_journaled_bulk_run_survives_a_batch_id_with_a_lone_surrogate(tmp_path: Path) -> None:
    def answer(request: PreparedRequest) -> RawResponse:
        return RawResponse(201, b'{"id":"B\\ud800"}')

    client = MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan42"), sender="28444", throughput=None,
        transport=MockTransport(answer),
    )
    async with client:
        jobs = [BulkJob(to=f"177455510{i:02d}", mms=picture()) for i in range(2)]
        outcomes = [o async for o in client.send_bulk(jobs, journal=tmp_path / "run.db")]
    assert [o.status for o in outcomes] == [OutcomeStatus.UNKNOWN] * 2


# -- hostile sizes (each took a minute or more of CPU, holding the event loop, before the fix) ---


def test_an_e106_answer_of_sixty_thousand_digits_is_read_in_one_scan() -> None:
    """The stated-wait pattern was tried from every digit of a run: quadratic in the answer."""
    body = b'{"status":"failure","error-code":"E106","error-info":"' + b"7" * 60_000 + b'"}'
    error = read_error(JsonFlavour(SECRET, URL), 200, body)
    assert isinstance(error, ThroughputExceeded) and error.retry_after is None


def test_an_e106_answer_still_states_its_wait() -> None:
    body = b'{"status":"failure","error-code":"E106","error-info":"at least 5 seconds apart"}'
    error = read_error(JsonFlavour(SECRET, URL), 200, body)
    assert isinstance(error, ThroughputExceeded) and error.retry_after == 5.0


def test_an_sms_rest_sender_of_two_hundred_thousand_letters_is_refused_at_once() -> None:
    """The alphanumeric-sender pattern ran before the 11-character limit: quadratic in its length."""
    with pytest.raises(ValidationError) as caught:
        SmsRestFlavour(SECRET, "plan42").send(
            picture(), "17745559144", service_id=None, sender="a" * 200_000 + "!"
        )
    assert caught.value.path == "sender"


@pytest.mark.parametrize("status", [400, 502])
def test_a_token_echoed_html_escaped_in_an_sms_rest_error_page_is_redacted(status: int) -> None:
    body = f"<html>Authorization: Bearer {ODD_KEY.replace('&', '&amp;')}</html>".encode()
    error = read_error(SmsRestFlavour(ODD_KEY, "plan42"), status, body)
    assert "0123456789" not in error_text(error)


def test_sms_rest_sends_a_sender_mask_longer_than_the_json_apis_fifty_characters() -> None:
    mask = "M" * 51  # E115's limit is the MMS JSON API's; the SMS REST documents set none
    request = SmsRestFlavour(SECRET, "plan42").send(
        picture(), "17745559144", service_id=None, sender="28444", from_mask=mask
    )
    assert orjson.loads(request.body)["from"] == mask

"""Adversarial review of the XML flavour: answers a hostile or broken peer could give, and the
key kept out of every error text whatever form the peer echoes it in."""

from __future__ import annotations

import aiohttp
import defusedxml.ElementTree as SafeET
import pytest

from mmsjson import ApiError, BadRequestError, MMSError, TransportError, XmlFlavour
from mmsjson.flavours.xml import parse_answer
from mmsjson.testing import FakeMMSServer
from mmsjson.transport import RawResponse

URL = "https://api.example.test/ep/v1/"
ODD_KEY = "sk-0123456789&<odd>\"'-SECRET"
SUCCESS = (
    b"<response><status>Success</status><tracking-id>T-42</tracking-id>"
    b"<to>17745559144</to><from>28444</from></response>"
)


def error_text(error: BaseException) -> str:
    return f"{error} {error!r} {getattr(error, 'response', '')!r} {getattr(error, 'info', '')!r}"


def read_error(flavour: XmlFlavour, status: int, body: bytes) -> MMSError:
    with pytest.raises(MMSError) as caught:
        flavour.read(RawResponse(status, body))
    return caught.value


def test_an_answer_declaring_an_unknown_encoding_is_no_answer() -> None:
    body = b'<?xml version="1.0" encoding="x-bogus"?><response><status>Success</status></response>'
    assert parse_answer(body) is None


def test_an_http_400_declaring_an_unknown_encoding_is_a_refusal_not_a_crash() -> None:
    body = b'<?xml version="1.0" encoding="x-bogus"?><response><status>Failure</status></response>'
    error = read_error(XmlFlavour("k3y", URL), 400, body)
    assert isinstance(error, BadRequestError)


def test_http_200_declaring_an_unknown_encoding_leaves_the_send_unknown() -> None:
    body = b'<?xml version="1.0" encoding="x-bogus"?><response><status>Success</status></response>'
    error = read_error(XmlFlavour("k3y", URL), 200, body)
    assert isinstance(error, TransportError) and error.outcome_unknown


@pytest.mark.parametrize("status", [400, 500, 200])
def test_a_key_echoed_xml_escaped_in_a_page_that_is_not_an_answer_is_redacted(status: int) -> None:
    escaped = ODD_KEY.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for body in (
        f"<html><body>bad key {escaped}</body></html>",
        f"<html>{escaped.replace(chr(34), '&quot;').replace(chr(39), '&apos;')}</html>",
        f"<html>{escaped.replace(chr(34), '&quot;').replace(chr(39), '&#x27;')}</html>",
    ):
        error = read_error(XmlFlavour(ODD_KEY, URL), status, body.encode())
        text = error_text(error)
        assert "0123456789" not in text, text


@pytest.mark.parametrize("key", ["tracking", "Success", "status", "response"])
def test_a_key_that_occurs_in_the_answers_markup_does_not_corrupt_an_accepted_answer(key: str) -> None:
    flavour = XmlFlavour(key, URL)
    result = flavour.send_result(flavour.read(RawResponse(200, SUCCESS)))
    assert result.tracking_id == "T-42"


def test_a_key_echoed_in_cdata_and_an_attribute_of_a_failure_is_redacted() -> None:
    body = (
        f'<response echo="{ODD_KEY.replace("&", "&amp;").replace("<", "&lt;").replace(chr(34), "&quot;")}">'
        f"<status>Failure</status><error-code>E104</error-code>"
        f"<error-info><![CDATA[bad key {ODD_KEY}]]></error-info></response>"
    ).encode()
    error = read_error(XmlFlavour(ODD_KEY, URL), 401, body)
    assert isinstance(error, ApiError) and error.code == "E104"
    assert "0123456789" not in error_text(error)


def test_a_key_echoed_in_a_utf16_answer_is_redacted() -> None:
    body = (
        '<?xml version="1.0" encoding="utf-16"?><response><status>Failure</status>'
        "<error-code>E100</error-code><error-info>SECRETKEY123</error-info></response>"
    ).encode("utf-16")
    error = read_error(XmlFlavour("SECRETKEY123", URL), 200, body)
    assert "SECRETKEY123" not in error_text(error)


def test_deeply_nested_answer_is_no_answer_and_leaves_the_send_unknown() -> None:
    body = b"<response>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</response>"
    error = read_error(XmlFlavour("k3y", URL), 200, body)
    assert isinstance(error, TransportError) and error.outcome_unknown


def test_a_success_status_nested_in_markup_is_not_taken_as_success() -> None:
    body = b"<response><status><b>Success</b></status><tracking-id>T</tracking-id></response>"
    error = read_error(XmlFlavour("k3y", URL), 200, body)
    assert isinstance(error, TransportError) and error.outcome_unknown


async def test_the_fake_answers_a_request_declaring_an_unknown_encoding_with_e108() -> None:
    body = b'<?xml version="1.0" encoding="x-bogus"?><request><action>sendMMS</action></request>'
    async with FakeMMSServer() as server, aiohttp.ClientSession() as session, session.post(
        server.xml_url, data=body
    ) as response:
        status, text = response.status, await response.text()
    assert status == 200
    assert parse_answer(text.encode()) == {
        "status": "Failure", "error-code": "E108", "error-info": "the XML could not be parsed",
    }


def test_carriage_returns_in_user_text_reach_the_server_unchanged() -> None:
    from mmsjson import MMS, Image, Slide

    text = "line 1\r\nline 2\rline 3 ]]> <![CDATA[ & </message-text>"
    mms = MMS(
        slides=[Slide(text=text, image=Image("https://example.com/a.jpg"))], subject="Hi",
        fallback_sms_text="fall\r\nback",
    )
    request = XmlFlavour("k3y", URL).send(mms, "17745559144", service_id="1", sender="28444")
    root = SafeET.fromstring(request.body)
    assert root.findtext("slide/message-text") == text
    assert root.findtext("fallback-sms-text") == "fall\r\nback"


async def test_the_fake_reads_a_carriage_return_in_a_slide_text_as_sent() -> None:
    from mmsjson import MMS, Image, MMSClient, Slide

    text = "Windows\r\nline ends"
    mms = MMS(slides=[Slide(text=text, image=Image("https://example.com/a.jpg"))], subject="Hi",
              fallback_sms_text="fb")
    async with FakeMMSServer() as server, MMSClient(
        flavour=XmlFlavour(server.api_key, server.xml_url), service_id="1", sender="28444",
        throughput=None,
    ) as client:
        await client.send(mms, "17745559144")
    assert server.accepted()[0].payload["slide"][0]["message-text"] == text

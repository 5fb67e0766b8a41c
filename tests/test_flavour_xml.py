"""The XML flavour: exact documents on the wire, answers and errors, refusals before I/O, hostile
answers, the key kept out of everything but the body, and the fake server's XML API."""

from __future__ import annotations

import logging
import pickle
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mmsjson import (
    MMS,
    AccountError,
    ApiError,
    AuthError,
    BulkJob,
    Calendar,
    Contact,
    Image,
    MMSClient,
    MMSError,
    OutcomeStatus,
    RawResponse,
    RecipientError,
    Slide,
    TemplateNotFound,
    ThroughputExceeded,
    TransportError,
    ValidationError,
    Video,
    XmlFlavour,
)
from mmsjson.flavours import JsonFlavour
from mmsjson.flavours.xml import parse_answer
from mmsjson.journal import BulkJournal
from mmsjson.retry import RetryPolicy
from mmsjson.testing import FakeMMSServer, MockTransport
from mmsjson.transport import PreparedRequest
from tests.conftest import SECRET, in_days

URL = "https://api.example.test/ep/v1/"
DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
SUCCESS = (
    b"<response><status>Success</status><tracking-id>TU1TXzU5Nzg3OQ==</tracking-id>"
    b"<mms-id>35674</mms-id><to>17745559144</to><from>28444</from>"
    b"<status-details>MMS request accepted and queued for delivery</status-details></response>"
)


def failure(code: str, info: str = "it failed", status: int = 200) -> RawResponse:
    body = f"<response><status>Failure</status><error-code>{code}</error-code><to>17745559144</to>"
    return RawResponse(status, (body + f"<error-info>{info}</error-info></response>").encode())


def flavour(**options: Any) -> XmlFlavour:
    return XmlFlavour(SECRET, URL, **options)


def two_slides(**overrides: Any) -> MMS:
    fields: dict[str, Any] = {
        "slides": [
            Slide(text="Hello", image=Image("https://example.com/a.jpg")),
            Slide(text="Card", contact=Contact("https://example.com/c.vcf")),
        ],
        "subject": "Hi",
        "fallback_sms_text": "See the picture",
    }
    fields.update(overrides)
    return MMS(**fields)


def send(mms: MMS | None = None, **options: Any) -> PreparedRequest:
    return flavour().send(
        mms or two_slides(), "+1 774 555 9144", service_id="12345", sender="28444", **options
    )


class Recorder:
    """A mock handler answering every request with ``answer``, keeping the requests."""

    def __init__(self, *answers: RawResponse) -> None:
        self.answers = list(answers)
        self.requests: list[PreparedRequest] = []

    def __call__(self, request: PreparedRequest) -> RawResponse:
        self.requests.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def client_with(handler: Recorder, **options: Any) -> MMSClient:
    return MMSClient(
        flavour=flavour(**options), service_id="12345", sender="28444", throughput=None,
        transport=MockTransport(handler), retry=RetryPolicy(base_delay=0.001, max_delay=0.002),
    )


# -- documents on the wire ---------------------------------------------------------------------


def test_send_mms_is_the_documented_document_with_the_key_in_the_body() -> None:
    assert send().body.decode() == DECLARATION + (
        "<request><action>sendMMS</action>"
        f"<api-key>{SECRET}</api-key>"
        "<to>17745559144</to><from>28444</from><service-id>12345</service-id>"
        "<name>Hi</name><message-subject>Hi</message-subject>"
        "<fallback-sms-text>See the picture</fallback-sms-text>"
        "<slide><message-text>Hello</message-text><image><url>https://example.com/a.jpg</url></image></slide>"
        "<slide><message-text>Card</message-text><vcard><url>https://example.com/c.vcf</url></vcard></slide>"
        "</request>"
    )


def test_save_mms_is_send_mms_without_recipient_sender_and_service() -> None:
    request = flavour().save(two_slides(fallback_sms_text=None), name="promo")
    assert request.body.decode() == DECLARATION + (
        f"<request><action>saveMMS</action><api-key>{SECRET}</api-key><name>promo</name>"
        "<message-subject>Hi</message-subject>"
        "<slide><message-text>Hello</message-text><image><url>https://example.com/a.jpg</url></image></slide>"
        "<slide><message-text>Card</message-text><vcard><url>https://example.com/c.vcf</url></vcard></slide>"
        "</request>"
    )
    assert request.recipients == ()


def test_send_saved_mms_carries_custom_texts_subject_and_fallback_text() -> None:
    request = flavour().send_saved(
        "35674", "14044790000", service_id="12345", sender="28444",
        custom_texts={2: "Second", 1: "My custom text in first slide"},
        subject="My custom subject", fallback_sms_text="See it online",
    )
    assert request.body.decode() == DECLARATION + (
        f"<request><action>sendSavedMMS</action><api-key>{SECRET}</api-key>"
        "<to>14044790000</to><from>28444</from><service-id>12345</service-id>"
        "<mms-id>35674</mms-id><fallback-sms-text>See it online</fallback-sms-text>"
        "<custom-text><value>My custom text in first slide</value><slide>1</slide></custom-text>"
        "<custom-text><value>Second</value><slide>2</slide></custom-text>"
        "<custom-subject>My custom subject</custom-subject></request>"
    )


def test_every_media_kind_is_written_as_the_element_the_xml_documents_name() -> None:
    mms = two_slides(slides=[
        Slide(video=Video("https://e.com/v.mp4")), Slide(calendar=Calendar("https://e.com/c.ics")),
    ])
    root = parse_request(send(mms))
    assert [[child.tag for child in slide] for slide in root.findall("slide")] == [["video"], ["ical"]]


def parse_request(request: PreparedRequest) -> Any:
    import defusedxml.ElementTree as SafeET

    return SafeET.fromstring(request.body)


def test_user_text_is_escaped_and_reads_back_as_written() -> None:
    hostile = 'A </message-text><api-key>x</api-key> & "B" ]]> <![CDATA[c]]>'
    mms = two_slides(
        slides=[Slide(text=hostile, image=Image("https://e.com/a.jpg?x=1&y=<2>"))],
        subject="Tom & Jerry <3",
    )
    root = parse_request(send(mms))
    assert root.find("slide/message-text").text == hostile
    assert root.find("slide/image/url").text == "https://e.com/a.jpg?x=1&y=<2>"
    assert root.find("message-subject").text == "Tom & Jerry <3"
    assert [e.text for e in root.iter("api-key")] == [SECRET]


def test_a_control_character_xml_cannot_carry_is_refused_naming_the_slide() -> None:
    with pytest.raises(ValidationError, match=r"slides\[0\]\.text: has U\+0001"):
        send(two_slides(slides=[Slide(text="bell\x01")]))


def test_the_journal_identity_is_the_json_flavours_body_for_the_same_send() -> None:
    json_request = JsonFlavour("other-key", "https://api.example.test/ep/v2/").send(
        two_slides(), "17745559144", service_id="12345", sender="28444"
    )
    assert send().identity == json_request.body


# -- refusals before I/O -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"to_displayonly": ["17745550002"]}, "to_displayonly"),
        ({"from_mask": "Shop"}, "from_mask"),
        ({"client_reference": "ref-1"}, "client_reference"),
    ],
)
def test_what_send_mms_cannot_express_is_refused(options: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError, match=f"^{path}: the XML sendMMS has no"):
        send(**options)


def test_an_expiry_is_refused_by_the_xml_flavour_only() -> None:
    mms = two_slides(expires_at=in_days(1))
    with pytest.raises(ValidationError, match="^expires_at: the XML sendMMS has no"):
        send(mms)
    JsonFlavour(SECRET).send(mms, "17745559144", service_id="1", sender="28444")


def test_send_mms_needs_a_name_from_the_flavour_or_the_subject() -> None:
    mms = two_slides(subject=None)
    with pytest.raises(ValidationError, match="^name: the XML sendMMS requires a name"):
        send(mms)
    named = XmlFlavour(SECRET, URL, send_name="spring").send(
        mms, "17745559144", service_id="1", sender="28444"
    )
    assert parse_request(named).find("name").text == "spring"


def test_send_saved_mms_requires_a_subject() -> None:
    with pytest.raises(ValidationError, match="^subject: the XML sendSavedMMS requires a subject"):
        flavour().send_saved(
            "35674", "17745559144", service_id="1", sender="28444", fallback_sms_text="fb"
        )


def test_send_saved_mms_refuses_an_emoji_subject() -> None:
    with pytest.raises(ValidationError, match="emoji"):
        flavour().send_saved(
            "35674", "17745559144", service_id="1", sender="28444", subject="Sale \U0001f389",
            fallback_sms_text="fb",
        )


def test_send_saved_mms_requires_fallback_text_as_its_document_lists_it_mandatory() -> None:
    with pytest.raises(ValidationError, match="^fallback_sms_text: the XML sendSavedMMS requires"):
        flavour().send_saved("35674", "17745559144", service_id="1", sender="28444", subject="Hi")


async def test_a_refused_send_makes_no_request() -> None:
    handler = Recorder(RawResponse(200, SUCCESS))
    async with client_with(handler) as client:
        with pytest.raises(ValidationError):
            await client.send(two_slides(subject=None), "17745559144")
        with pytest.raises(ValidationError, match="to_displayonly"):
            await client.send_group(two_slides(), ["17745550001", "17745550002"])
    assert handler.requests == []


# -- answers -----------------------------------------------------------------------------------


async def test_a_success_answer_becomes_a_send_result() -> None:
    async with client_with(Recorder(RawResponse(200, SUCCESS))) as client:
        result = await client.send(two_slides(), "17745559144")
    assert (result.tracking_id, result.mms_id, result.to, result.sender) == (
        "TU1TXzU5Nzg3OQ==", "35674", "17745559144", "28444"
    )
    assert result.status_details == "MMS request accepted and queued for delivery"


async def test_a_save_answer_with_an_mms_id_becomes_a_save_result() -> None:
    answer = b"<response><status>Success</status><mms-id>42</mms-id><tracking-id>T9</tracking-id></response>"
    async with client_with(Recorder(RawResponse(200, answer))) as client:
        result = await client.save(two_slides(), "promo")
    assert (result.tracking_id, result.mms_id) == ("T9", "42")


@pytest.mark.parametrize(
    ("code", "family"),
    [("E110", RecipientError), ("E713", AccountError), ("E104", AuthError), ("E241", TemplateNotFound)],
)
async def test_a_failure_answer_raises_the_error_of_its_code(code: str, family: type[ApiError]) -> None:
    async with client_with(Recorder(failure(code))) as client:
        with pytest.raises(family) as caught:
            await client.send(two_slides(), "17745559144")
    assert (caught.value.code, caught.value.info) == (code, "it failed")


async def test_an_unknown_code_is_an_api_error_with_the_code_kept() -> None:
    async with client_with(Recorder(failure("E999"))) as client:
        with pytest.raises(ApiError) as caught:
            await client.send(two_slides(), "17745559144")
    assert type(caught.value) is ApiError
    assert caught.value.code == "E999"


async def test_e113_is_retried_through_the_limiter_until_accepted() -> None:
    handler = Recorder(failure("E113"), failure("E113"), RawResponse(200, SUCCESS))
    async with client_with(handler) as client:
        result = await client.send(two_slides(), "17745559144")
        assert client.stats.throttled == 2
    assert result.tracking_id == "TU1TXzU5Nzg3OQ=="
    assert len(handler.requests) == 3


def test_camel_case_answer_names_from_the_response_parameter_lists_are_read() -> None:
    answer = flavour().read(RawResponse(
        200, b"<response><status>Success</status><trackingId>T1</trackingId><mmsId>7</mmsId></response>"
    ))
    assert flavour().send_result(answer).tracking_id == "T1"
    assert flavour().send_result(answer).mms_id == "7"


def test_an_answer_that_is_not_xml_after_http_200_is_an_unknown_outcome() -> None:
    with pytest.raises(TransportError) as caught:
        flavour().read(RawResponse(200, b'{"status": "success"}'))
    assert caught.value.outcome_unknown


def test_http_429_without_an_xml_answer_is_throughput() -> None:
    with pytest.raises(ThroughputExceeded):
        flavour().read(RawResponse(429, b"slow down", retry_after=2.0))


# -- hostile answers ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<response><status>Success</status><tracking-id>&lol9;</tracking-id></response>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<response><status>Failure</status><error-code>E100</error-code><error-info>&secret;</error-info></response>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_a_hostile_answer_is_not_expanded_and_reads_as_no_answer(body: bytes) -> None:
    assert parse_answer(body) is None
    with pytest.raises(TransportError) as caught:
        flavour().read(RawResponse(200, body))
    assert caught.value.outcome_unknown
    assert "lollol" not in str(caught.value)
    assert "root:" not in str(caught.value)


async def test_a_billion_laughs_answer_leaves_the_send_unknown_and_not_resent() -> None:
    handler = Recorder(RawResponse(200, BILLION_LAUGHS))
    async with client_with(handler) as client:
        with pytest.raises(TransportError):
            await client.send(two_slides(), "17745559144")
    assert len(handler.requests) == 1


# -- the key -----------------------------------------------------------------------------------


def test_the_key_is_in_no_repr() -> None:
    request = send()
    assert SECRET in request.body.decode()
    for text in (repr(request), repr(flavour()), str(request), repr(MMSClient(flavour=flavour()))):
        assert SECRET not in text


def test_an_answer_echoing_the_key_raises_an_error_without_it() -> None:
    echo = f"<response><status>Failure</status><error-code>E100</error-code><error-info>bad {SECRET}</error-info></response>"
    for raw in (RawResponse(200, echo.encode()), RawResponse(400, f"<html>{SECRET}</html>".encode()),
                RawResponse(200, f"oops {SECRET}".encode())):
        with pytest.raises(MMSError) as caught:
            flavour().read(raw)
        error = caught.value
        assert SECRET not in str(error)
        assert SECRET not in repr(getattr(error, "response", ""))
        assert SECRET.encode() not in pickle.dumps(error)


async def test_the_key_never_reaches_a_log_line_or_the_journal(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    handler = Recorder(failure("E113"), RawResponse(200, SUCCESS))
    caplog.set_level(logging.DEBUG, logger="mmsjson")
    journal = tmp_path / "run.db"
    async with client_with(handler) as client:
        outcomes = [o async for o in client.send_bulk([BulkJob(to="17745559144", mms=two_slides())],
                                                      journal=journal)]
    assert [o.status for o in outcomes] == [OutcomeStatus.ACCEPTED]
    assert SECRET not in caplog.text
    assert files_holding(tmp_path, SECRET) == []


def files_holding(folder: Path, secret: str) -> list[Path]:
    return [path for path in folder.iterdir() if secret.encode() in path.read_bytes()]


# -- against the fake server -------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeMMSServer]:
    async with FakeMMSServer(api_key=SECRET) as fake:
        yield fake


@pytest.fixture
def xml_client(server: FakeMMSServer) -> Callable[..., MMSClient]:
    def make(**options: Any) -> MMSClient:
        options.setdefault("throughput", None)
        return MMSClient(
            flavour=XmlFlavour(server.api_key, server.xml_url), service_id="12345", sender="28444",
            retry=RetryPolicy(base_delay=0.001, max_delay=0.002), **options,
        )

    return make


async def test_save_then_send_saved_through_the_fake(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient]
) -> None:
    async with xml_client() as client:
        saved = await client.save(two_slides(), "promo")
        assert saved.mms_id is not None
        sent = await client.send_saved(
            saved.mms_id, "17745559144", custom_texts={1: "Hi Ann"}, subject="For Ann",
            fallback_sms_text="See it online",
        )
        direct = await client.send(two_slides(), "17745559145")
    assert sent.mms_id == saved.mms_id
    assert sent.tracking_id and direct.tracking_id
    assert {r.flavour for r in server.received} == {"xml"}
    assert server.deliveries() == {"17745559144": 1, "17745559145": 1}
    assert all("api-key" not in r.payload for r in server.received)


async def test_a_template_saved_through_xml_is_sent_through_json(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient]
) -> None:
    async with xml_client() as client:
        saved = await client.save(two_slides(), "promo")
    assert saved.mms_id is not None
    async with MMSClient(server.api_key, service_id="1", sender="28444", base_url=server.base_url,
                         throughput=None) as client:
        result = await client.send_saved(saved.mms_id, "17745559144", custom_texts={2: "Card!"})
    assert result.mms_id == saved.mms_id


async def test_e113_from_the_fake_is_retried_through_the_limiter(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient]
) -> None:
    server.inject_e113()
    async with xml_client(throughput=50) as client:
        result = await client.send(two_slides(), "17745559144")
        assert client.limiter is not None and client.limiter.stats.throttled == 1
    assert result.tracking_id
    assert [r.error_code for r in server.received] == ["E113", None]


async def test_a_dropped_answer_is_unknown_and_not_resent(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient]
) -> None:
    server.inject_drop()
    async with xml_client() as client:
        with pytest.raises(TransportError) as caught:
            await client.send(two_slides(), "17745559144")
    assert caught.value.outcome_unknown
    assert server.deliveries() == {"17745559144": 1}


async def test_a_failure_from_the_fake_maps_to_the_error_tree(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient]
) -> None:
    async with xml_client() as client:
        with pytest.raises(TemplateNotFound):
            await client.send_saved("99999", "17745559144", subject="Hi", fallback_sms_text="fb")


async def test_a_journal_written_through_json_resumes_through_xml(
    server: FakeMMSServer, xml_client: Callable[..., MMSClient], tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    jobs = [BulkJob(to=f"1774555{9100 + i}", mms=two_slides()) for i in range(6)]
    async with MMSClient(server.api_key, service_id="12345", sender="28444",
                         base_url=server.base_url, throughput=None) as client:
        first = [o async for o in client.send_bulk(jobs[:4], journal=journal)]
    async with xml_client() as client:
        second = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert {o.status for o in first + second} == {OutcomeStatus.ACCEPTED}
    assert sorted(o.index for o in second if o.replayed) == [0, 1, 2, 3]
    assert [r.flavour for r in server.received].count("xml") == 2
    assert set(server.deliveries().values()) == {1}
    with BulkJournal(journal) as opened:
        assert (await opened.counts()) == {"accepted": 6}


# -- the fake's own checks (raw documents, no client) ------------------------------------------


async def post_xml(server: FakeMMSServer, document: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        server.xml_url, data=document.encode(), headers={"Content-Type": "application/xml"}
    ) as response:
        fields = parse_answer(await response.read())
        assert fields is not None
        return response.status, fields


def document(action: str, *parts: str, key: str = SECRET, key_tag: str = "api-key") -> str:
    return f"<request><action>{action}</action><{key_tag}>{key}</{key_tag}>{''.join(parts)}</request>"


SLIDE = "<slide><message-text>hi</message-text><image><url>https://e.com/a.jpg</url></image><duration>5</duration></slide>"
ENVELOPE = ("<to>17745559144</to>", "<from>28444</from>", "<service-id>1</service-id>")


async def test_the_fake_accepts_the_send_mms_pages_spelling_of_the_key(server: FakeMMSServer) -> None:
    _, answer = await post_xml(server, document(
        "sendMMS", *ENVELOPE, "<name>n</name>", "<fallback-sms-text>fb</fallback-sms-text>", SLIDE,
        key_tag="api_key",
    ))
    assert answer["status"] == "Success"


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ((*ENVELOPE, "<fallback-sms-text>fb</fallback-sms-text>", SLIDE), "E311"),
        ((*ENVELOPE, "<name>n</name>", SLIDE), "E100"),
        ((*ENVELOPE, "<name>n</name>", "<fallback-sms-text>fb</fallback-sms-text>"), "E100"),
        (("<to>+17745559144</to>", *ENVELOPE[1:], "<name>n</name>",
          "<fallback-sms-text>fb</fallback-sms-text>", SLIDE), "E110"),
        ((*ENVELOPE, "<name>n</name>", "<fallback-sms-text>fb</fallback-sms-text>",
          "<slide><pdf><url>https://e.com/a.pdf</url></pdf><image><url>https://e.com/a.jpg</url></image></slide>"),
         "E224"),
        ((*ENVELOPE, "<name>n</name>", "<fallback-sms-text>fb</fallback-sms-text>", SLIDE,
          "<to-displayonly>17745550002</to-displayonly>"), "E100"),
        ((*ENVELOPE, "<name>n</name>", "<fallback-sms-text>fb</fallback-sms-text>",
          "<slide><message-text>x</message-text><duration>forever</duration></slide>"), "E230"),
    ],
    ids=["no-name", "no-fallback", "no-slide", "plus-number", "object-with-image", "displayonly", "duration"],
)
async def test_the_fake_refuses_send_mms_documents_by_the_documents(
    server: FakeMMSServer, parts: tuple[str, ...], code: str
) -> None:
    _, answer = await post_xml(server, document("sendMMS", *parts))
    assert (answer["status"], answer["error-code"]) == ("Failure", code)


async def test_the_fake_refuses_send_saved_mms_without_a_subject_or_with_emoji(server: FakeMMSServer) -> None:
    saved = await post_xml(server, document("saveMMS", "<name>n</name>", SLIDE))
    mms_id = saved[1]["mms-id"]
    base = (*ENVELOPE, f"<mms-id>{mms_id}</mms-id>", "<fallback-sms-text>fb</fallback-sms-text>")
    _, missing = await post_xml(server, document("sendSavedMMS", *base))
    _, emoji = await post_xml(server, document(
        "sendSavedMMS", *base, "<custom-subject>Sale \U0001f389</custom-subject>"
    ))
    _, fine = await post_xml(server, document("sendSavedMMS", *base, "<custom-subject>Sale</custom-subject>"))
    assert (missing["error-code"], emoji["error-code"], fine["status"]) == ("E314", "E314", "Success")


async def test_the_fake_answers_a_wrong_key_with_e104_and_broken_xml_with_e108(server: FakeMMSServer) -> None:
    status, wrong = await post_xml(server, document("saveMMS", "<name>n</name>", SLIDE, key="nope"))
    _, broken = await post_xml(server, "<request><action>saveMMS")
    assert (status, wrong["error-code"], broken["error-code"]) == (401, "E104", "E108")


async def test_the_fake_does_not_expand_a_billion_laughs_request(server: FakeMMSServer) -> None:
    bomb = BILLION_LAUGHS.decode().replace("<response>", "<request>").replace("</response>", "</request>")
    _, answer = await post_xml(server, bomb)
    assert answer["error-code"] == "E108"


def test_an_e106_answer_states_the_wait_before_a_retry() -> None:
    with pytest.raises(ThroughputExceeded) as caught:
        flavour().read(failure("E106", "calls must be at least 3 seconds apart"))
    assert caught.value.retry_after == 3.0


def test_a_key_echoed_through_character_references_is_redacted_too() -> None:
    key = "k3y&<odd>"
    referenced = "".join(f"&#{ord(ch)};" for ch in key)
    answer = f"<response><status>Failure</status><error-code>E100</error-code><error-info>{referenced}</error-info></response>"
    with pytest.raises(ApiError) as caught:
        XmlFlavour(key, URL).read(RawResponse(200, answer.encode()))
    assert key not in str(caught.value) + repr(caught.value.response)


def test_a_send_saved_identity_is_the_json_flavours_body_for_the_same_send() -> None:
    options: dict[str, Any] = {
        "service_id": "12345", "sender": "28444", "custom_texts": {1: "Hi"}, "subject": "Hi",
        "fallback_sms_text": "fb",
    }
    xml = flavour().send_saved("35674", "17745559144", **options)
    json_request = JsonFlavour("k").send_saved("35674", "17745559144", **options)
    assert xml.identity == json_request.body

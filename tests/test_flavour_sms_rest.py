"""The SMS REST mt_media flavour: exact batches on the wire, what it refuses before I/O, answers
and errors, bulk runs packed into batches with an outcome per recipient, limiter accounting, the
journal across flavours, and the fake server's batches endpoint."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mmsjson import (
    MMS,
    AccountError,
    ApiError,
    Audio,
    AuthError,
    BadRequestError,
    BulkJob,
    Calendar,
    Image,
    MMSClient,
    MMSError,
    OutcomeStatus,
    RawResponse,
    RecipientError,
    Slide,
    SmsRestFlavour,
    ThroughputExceeded,
    TransportError,
    ValidationError,
    flavour_from_name,
)
from mmsjson.flavours import JsonFlavour, XmlFlavour, flavour_from_env
from mmsjson.flavours.sms_rest import SUPPORTED
from mmsjson.limiting import ThroughputLimiter
from mmsjson.retry import RetryPolicy
from mmsjson.testing import FakeMMSServer, MockTransport
from mmsjson.transport import PreparedRequest
from tests.conftest import SECRET, in_days

PLAN = "plan42"
BASE = "https://us.sms.api.sinch.com/xms/v1/"


def picture(**overrides: Any) -> MMS:
    fields: dict[str, Any] = {
        "slides": [Slide(text="Spring sale", image=Image("https://example.com/a.jpg"))],
        "subject": "Sale",
        "fallback_sms_text": "See https://e.com/s",
    }
    fields.update(overrides)
    return MMS(**fields)


def flavour(**options: Any) -> SmsRestFlavour:
    return SmsRestFlavour(SECRET, PLAN, **options)


def created(request: PreparedRequest, batch_id: str = "01BATCH") -> RawResponse:
    payload = request.json()
    return RawResponse(201, json.dumps({**payload, "id": batch_id, "canceled": False}).encode())


class Server:
    """A mock SMS REST API: accepts every batch (ids B1, B2...) unless scripted otherwise."""

    def __init__(self, *script: RawResponse | BaseException) -> None:
        self.script = list(script)
        self.requests: list[PreparedRequest] = []

    def __call__(self, request: PreparedRequest) -> RawResponse:
        self.requests.append(request)
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return created(request, f"B{len(self.requests)}")


def client_with(server: Server, flavour_: SmsRestFlavour | None = None, **options: Any) -> MMSClient:
    options.setdefault("throughput", None)
    return MMSClient(
        flavour=flavour_ or flavour(), service_id="12345", sender="28444",
        transport=MockTransport(server), retry=RetryPolicy(base_delay=0.001, max_delay=0.002),
        **options,
    )


def error(status: int, code: str, text: str = "no") -> RawResponse:
    return RawResponse(status, json.dumps({"code": code, "text": text}).encode())


# -- batches on the wire -----------------------------------------------------------------------


def test_a_send_is_a_batch_of_one_with_the_bearer_token_and_e164_numbers() -> None:
    request = flavour().send(picture(), "1 774 555 9144", service_id="12345", sender="18885551234")
    assert request.url == f"{BASE}{PLAN}/batches"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.body.decode() == (
        '{"to":["+17745559144"],"from":"+18885551234","type":"mt_media",'
        '"body":{"url":"https://example.com/a.jpg","message":"Spring sale","subject":"Sale"}}'
    )
    assert request.recipients == ("17745559144",)


def test_a_short_code_sender_is_written_without_plus_and_options_are_carried() -> None:
    request = SmsRestFlavour(
        SECRET, PLAN, delivery_report="per_recipient", callback_url="https://hooks.example.com/dr",
        strict_validation=True,
    ).send(picture(expires_at=in_days(1)), "17745559144", service_id=None, sender="28444",
           client_reference="spring-2026")
    payload = request.json()
    assert payload["from"] == "28444"
    assert payload["client_reference"] == "spring-2026"
    assert payload["expire_at"].endswith("Z")
    assert (payload["delivery_report"], payload["strict_validation"]) == ("per_recipient", True)
    assert "fallback" not in request.body.decode()


def test_the_region_picks_the_host() -> None:
    assert SmsRestFlavour(SECRET, PLAN, region="eu").send(
        picture(), "17745559144", service_id=None, sender=None
    ).url == f"https://eu.sms.api.sinch.com/xms/v1/{PLAN}/batches"


def test_a_batch_carries_parameters_with_numbers_in_e164() -> None:
    mms = picture(slides=[Slide(text="Hi ${name}", image=Image("https://example.com/a.jpg"))])
    [request] = flavour().batches(
        mms, ["17745550001", "+1 774 555 0002"],
        parameters={"name": {"17745550001": "Ann", "default": "there"}},
    )
    assert request.json()["to"] == ["+17745550001", "+17745550002"]
    assert request.json()["parameters"] == {"name": {"+17745550001": "Ann", "default": "there"}}


def test_batches_are_cut_at_max_recipients_each_with_its_own_parameters() -> None:
    numbers = [f"1774555{1000 + i}" for i in range(5)]
    requests = flavour(max_recipients=2).batches(
        picture(), numbers, parameters={"n": {numbers[0]: "A", numbers[4]: "E"}}
    )
    assert [len(r.recipients) for r in requests] == [2, 2, 1]
    assert [r.json().get("parameters") for r in requests] == [
        {"n": {f"+{numbers[0]}": "A"}}, None, {"n": {f"+{numbers[4]}": "E"}}
    ]


def test_a_parameter_for_someone_outside_the_batch_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a recipient"):
        flavour().batches(picture(), ["17745550001"], parameters={"n": {"17745550002": "B"}})


def test_the_journal_identity_is_the_json_flavours_body_for_the_same_send() -> None:
    json_request = JsonFlavour("k").send(picture(), "17745559144", service_id="12345", sender="28444")
    sms = flavour().send(picture(), "+17745559144", service_id="12345", sender="28444")
    assert sms.identity == json_request.body


# -- refusals before I/O -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mms", "path"),
    [
        (picture(slides=[Slide(text="a", image=Image("https://e.com/a.jpg")), Slide(text="b")]), "slides"),
        (picture(slides=[Slide(audio=Audio("https://e.com/a.mp3"))]), r"slides\[0\]\.audio"),
        (picture(slides=[Slide(calendar=Calendar("https://e.com/c.ics"))]), r"slides\[0\]\.calendar"),
        (picture(slides=[Slide(image=Image("https://e.com/a.jpg"), audio=Audio("https://e.com/a.mp3"))]),
         r"slides\[0\]"),
        (picture(slides=[Slide(text="only text")]), r"slides\[0\]"),
        (picture(slides=[Slide(text="x" * 2001, image=Image("https://e.com/a.jpg"))]), r"slides\[0\]\.text"),
    ],
    ids=["two-slides", "audio", "calendar", "image-and-audio", "text-only", "long-text"],
)
async def test_what_mt_media_cannot_carry_is_refused_saying_what_it_can(mms: MMS, path: str) -> None:
    server = Server()
    async with client_with(server) as client:
        with pytest.raises(ValidationError, match=f"^{path}: ") as caught:
            await client.send(mms, "17745559144")
    assert SUPPORTED in str(caught.value)
    assert server.requests == []


async def test_save_send_saved_and_group_sends_are_refused_before_io() -> None:
    server = Server()
    async with client_with(server) as client:
        with pytest.raises(ValidationError, match="no saved templates"):
            await client.save(picture(), "promo")
        with pytest.raises(ValidationError, match="no saved templates"):
            await client.send_saved("35674", "17745559144")
        with pytest.raises(ValidationError, match="^to_displayonly: SMS REST batches have no group threads"):
            await client.send_group(picture(), ["17745550001", "17745550002"])
    assert server.requests == []


# -- answers -----------------------------------------------------------------------------------


async def test_a_created_batch_becomes_a_send_result_with_the_batch_id() -> None:
    async with client_with(Server()) as client:
        result = await client.send(picture(), "17745559144")
    assert (result.tracking_id, result.to, result.sender) == ("B1", "17745559144", "28444")


@pytest.mark.parametrize(
    ("answer", "family", "code"),
    [
        (error(400, "syntax_invalid_parameter_format"), BadRequestError, "syntax_invalid_parameter_format"),
        (error(401, "unauthorized"), AuthError, "unauthorized"),
        (error(403, "blocked_account"), AccountError, "blocked_account"),
        (error(403, "illegal_number_type"), RecipientError, "illegal_number_type"),
        (error(403, "something_new"), AuthError, "something_new"),
        (error(404, "not_found"), BadRequestError, "not_found"),
        (RawResponse(400, b"<html>bad</html>"), BadRequestError, None),
    ],
)
async def test_4xx_answers_map_onto_the_error_tree(
    answer: RawResponse, family: type[ApiError], code: str | None
) -> None:
    async with client_with(Server(answer)) as client:
        with pytest.raises(family) as caught:
            await client.send(picture(), "17745559144")
    assert type(caught.value) is family
    assert caught.value.code == code


async def test_http_429_with_or_without_a_body_is_throughput_and_is_retried() -> None:
    server = Server(error(429, "too_many_requests"), RawResponse(429, b""))
    async with client_with(server) as client:
        result = await client.send(picture(), "17745559144")
        assert (client.stats.throttled, client.stats.retries) == (2, 2)
    assert result.tracking_id == "B3"


@pytest.mark.parametrize("answer", [RawResponse(500, b"oops"), RawResponse(201, b"{}")])
async def test_an_answer_that_may_hide_a_created_batch_is_unknown_and_not_resent(answer: RawResponse) -> None:
    server = Server(answer)
    async with client_with(server) as client:
        with pytest.raises(TransportError) as caught:
            await client.send(picture(), "17745559144")
    assert caught.value.outcome_unknown
    assert len(server.requests) == 1


def test_http_429_is_throughput_whatever_its_code_says() -> None:
    with pytest.raises(ThroughputExceeded):
        flavour().read(error(429, "syntax_invalid_json"))


# -- batch sends and bulk runs -----------------------------------------------------------------


async def test_send_batch_packs_recipients_and_reports_each() -> None:
    server = Server()
    numbers = [f"1774555{1000 + i}" for i in range(5)]
    async with client_with(server, flavour(max_recipients=2)) as client:
        result = await client.send_batch(picture(), numbers)
    assert [len(r.recipients) for r in server.requests] == [2, 2, 1]
    assert [(o.to, o.tracking_id) for o in result.outcomes] == [
        (numbers[0], "B1"), (numbers[1], "B1"), (numbers[2], "B2"), (numbers[3], "B2"), (numbers[4], "B3")
    ]


async def test_send_batch_through_json_is_one_request_each_and_refuses_parameters() -> None:
    requests: list[PreparedRequest] = []

    def accept(request: PreparedRequest) -> RawResponse:
        requests.append(request)
        return RawResponse.from_json({"status": "success", "tracking-id": f"T{len(requests)}"})

    async with MMSClient("k", service_id="1", sender="28444", throughput=None,
                         transport=MockTransport(accept)) as client:
        result = await client.send_batch(picture(), ["17745550001", "17745550002"])
        with pytest.raises(ValidationError, match="^parameters: the json flavour"):
            await client.send_batch(picture(), ["17745550001"], parameters={"n": {"default": "x"}})
    assert result.ok
    assert [r.recipients for r in requests] == [("17745550001",), ("17745550002",)]
    assert all("to-displayonly" not in r.json() for r in requests)


def bulk_jobs(count: int, mms: MMS | None = None, start: int = 0) -> list[BulkJob]:
    return [BulkJob(to=f"1774555{1000 + start + i}", mms=mms or picture()) for i in range(count)]


async def test_bulk_jobs_with_the_same_content_are_packed_into_batches_of_at_most_max() -> None:
    server = Server()
    async with client_with(server, flavour(max_recipients=1000)) as client:
        outcomes = [o async for o in client.send_bulk(bulk_jobs(2500))]
    assert sorted(len(r.recipients) for r in server.requests) == [500, 1000, 1000]
    assert len(outcomes) == 2500
    assert sorted(o.index for o in outcomes) == list(range(2500))
    assert {o.status for o in outcomes} == {OutcomeStatus.ACCEPTED}
    assert {o.tracking_id for o in outcomes} == {"B1", "B2", "B3"}


async def test_bulk_jobs_with_different_content_go_in_different_batches() -> None:
    server = Server()
    other = picture(subject="Other")
    jobs = [job for pair in zip(bulk_jobs(3), bulk_jobs(3, other, start=10), strict=True) for job in pair]
    async with client_with(server) as client:
        outcomes = [o async for o in client.send_bulk(jobs)]
    assert sorted(len(r.recipients) for r in server.requests) == [3, 3]
    assert {r.json()["body"]["subject"] for r in server.requests} == {"Sale", "Other"}
    assert len({o.tracking_id for o in outcomes}) == 2


async def test_the_same_recipient_twice_in_a_run_goes_in_two_batches() -> None:
    server = Server()
    async with client_with(server) as client:
        outcomes = [o async for o in client.send_bulk(bulk_jobs(2) + bulk_jobs(1))]
    assert sorted(len(r.recipients) for r in server.requests) == [1, 2]
    assert len(outcomes) == 3


async def test_a_job_refused_before_io_is_rejected_and_the_others_are_sent() -> None:
    server = Server()
    audio = picture(slides=[Slide(audio=Audio("https://e.com/a.mp3"))])
    jobs = [*bulk_jobs(2), BulkJob(to="17745559999", mms=audio)]
    async with client_with(server) as client:
        outcomes = {o.to: o async for o in client.send_bulk(jobs)}
    assert outcomes["17745559999"].status is OutcomeStatus.REJECTED
    assert isinstance(outcomes["17745559999"].error, ValidationError)
    assert [len(r.recipients) for r in server.requests] == [2]


async def test_a_rejected_batch_rejects_each_of_its_recipients() -> None:
    server = Server(error(403, "blocked_account"))
    async with client_with(server) as client:
        outcomes = [o async for o in client.send_bulk(bulk_jobs(3))]
    assert [o.status for o in outcomes] == [OutcomeStatus.REJECTED] * 3
    assert {o.code for o in outcomes} == {"blocked_account"}


async def test_a_batch_whose_answer_was_lost_leaves_each_recipient_unknown_and_is_not_resent() -> None:
    server = Server(TransportError("gone", outcome_unknown=True))
    async with client_with(server) as client:
        outcomes = [o async for o in client.send_bulk(bulk_jobs(3))]
    assert [o.status for o in outcomes] == [OutcomeStatus.UNKNOWN] * 3
    assert len(server.requests) == 1


async def test_a_recipient_missing_from_the_batch_answer_is_unknown() -> None:
    def partial(request: PreparedRequest) -> RawResponse:
        payload = {**request.json(), "id": "B1"}
        payload["to"] = payload["to"][1:]
        return RawResponse(201, json.dumps(payload).encode())

    async with MMSClient(flavour=flavour(), sender="28444", throughput=None,
                         transport=MockTransport(partial)) as client:
        outcomes = {o.to: o.status async for o in client.send_bulk(bulk_jobs(3))}
    assert list(outcomes.values()).count(OutcomeStatus.UNKNOWN) == 1
    assert outcomes["17745551000"] is OutcomeStatus.UNKNOWN


async def test_a_batch_takes_one_limiter_ticket_by_default() -> None:
    limiter = ThroughputLimiter(1000)
    async with client_with(Server(), limiter=limiter) as client:
        await client.send_batch(picture(), [f"1774555{1000 + i}" for i in range(250)])
    assert limiter.stats.acquired == 1
    await limiter.aclose()


async def test_recipients_per_ticket_counts_a_batch_by_its_recipients() -> None:
    limiter = ThroughputLimiter(1000)
    async with client_with(Server(), flavour(recipients_per_ticket=100), limiter=limiter) as client:
        await client.send_batch(picture(), [f"1774555{1000 + i}" for i in range(250)])
    assert limiter.stats.acquired == 3
    await limiter.aclose()


# -- the token ---------------------------------------------------------------------------------


def test_the_token_is_in_no_repr_and_no_error_even_when_echoed() -> None:
    request = flavour().send(picture(), "17745559144", service_id=None, sender=None)
    assert SECRET not in repr(request) + repr(flavour()) + repr(MMSClient(flavour=flavour()))
    for raw in (error(400, "syntax_invalid_json", f"bad {SECRET}"), RawResponse(502, SECRET.encode())):
        with pytest.raises(MMSError) as caught:
            flavour().read(raw)
        assert SECRET not in str(caught.value) + repr(caught.value.__dict__)


async def test_the_token_reaches_no_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mmsjson")
    async with client_with(Server(error(429, "too_many_requests"))) as client:
        await client.send(picture(), "17745559144")
    assert SECRET not in caplog.text


# -- choosing a flavour ------------------------------------------------------------------------


def test_flavour_from_name_builds_each_flavour() -> None:
    assert isinstance(flavour_from_name("json", api_key="k"), JsonFlavour)
    assert isinstance(flavour_from_name("xml", api_key="k"), XmlFlavour)
    sms = flavour_from_name("sms-rest", api_key="t", service_plan_id="p", recipients_per_ticket=10)
    assert isinstance(sms, SmsRestFlavour) and sms.recipients_per_ticket == 10
    with pytest.raises(ValidationError, match="service_plan_id"):
        flavour_from_name("sms_rest", api_key="t")
    with pytest.raises(ValidationError, match="not one of json, xml, sms-rest"):
        flavour_from_name("soap", api_key="k")


def test_flavour_from_env_names_the_missing_variable_and_never_a_value() -> None:
    with pytest.raises(ValidationError, match="MMSJSON_SERVICE_PLAN_ID") as caught:
        flavour_from_env("sms-rest", environ={"MMSJSON_SMS_REST_TOKEN": SECRET})
    assert SECRET not in str(caught.value)
    built = flavour_from_env("sms-rest", environ={
        "MMSJSON_SMS_REST_TOKEN": SECRET, "MMSJSON_SERVICE_PLAN_ID": PLAN
    })
    assert isinstance(built, SmsRestFlavour)


# -- against the fake server -------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeMMSServer]:
    async with FakeMMSServer(api_key=SECRET, service_plan_id=PLAN) as server:
        yield server


@pytest.fixture
def sms_client(fake: FakeMMSServer) -> Callable[..., MMSClient]:
    def make(max_recipients: int = 1000, **options: Any) -> MMSClient:
        options.setdefault("throughput", None)
        return MMSClient(
            flavour=SmsRestFlavour(fake.api_key, PLAN, base_url=fake.sms_rest_url,
                                   max_recipients=max_recipients),
            service_id="12345", sender="28444",
            retry=RetryPolicy(base_delay=0.001, max_delay=0.002), **options,
        )

    return make


async def test_a_bulk_run_through_the_fake_is_packed_and_everyone_delivered_once(
    fake: FakeMMSServer, sms_client: Callable[..., MMSClient]
) -> None:
    async with sms_client(max_recipients=40) as client:
        outcomes = [o async for o in client.send_bulk(bulk_jobs(100))]
    assert {o.status for o in outcomes} == {OutcomeStatus.ACCEPTED}
    assert sorted(len(r.payload["to"]) for r in fake.received) == [20, 40, 40]
    assert len(fake.deliveries()) == 100
    assert set(fake.deliveries().values()) == {1}


async def test_429_from_the_fake_is_retried_through_the_limiter_and_the_batch_goes_once(
    fake: FakeMMSServer, sms_client: Callable[..., MMSClient]
) -> None:
    fake.inject_e113()
    async with sms_client(throughput=50) as client:
        result = await client.send_batch(picture(), ["17745550001", "17745550002"])
        assert client.limiter is not None and client.limiter.stats.throttled == 1
    assert result.ok
    assert [r.http_status for r in fake.received] == [429, 200]
    assert fake.deliveries() == {"17745550001": 1, "17745550002": 1}


async def test_a_dropped_batch_answer_leaves_its_recipients_unknown(
    fake: FakeMMSServer, sms_client: Callable[..., MMSClient]
) -> None:
    fake.inject_drop()
    async with sms_client() as client:
        result = await client.send_batch(picture(), ["17745550001", "17745550002"])
    assert [o.status for o in result.outcomes] == [OutcomeStatus.UNKNOWN] * 2
    assert fake.deliveries() == {"17745550001": 1, "17745550002": 1}


async def test_a_journal_written_through_json_resumes_through_sms_rest(
    fake: FakeMMSServer, sms_client: Callable[..., MMSClient], tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    jobs = bulk_jobs(6)
    async with MMSClient(fake.api_key, service_id="12345", sender="28444", base_url=fake.base_url,
                         throughput=None) as client:
        first = [o async for o in client.send_bulk(jobs[:4], journal=journal)]
    async with sms_client() as client:
        second = [o async for o in client.send_bulk(jobs, journal=journal)]
        third = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert {o.status for o in first + second + third} == {OutcomeStatus.ACCEPTED}
    assert sorted(o.index for o in second if o.replayed) == [0, 1, 2, 3]
    assert all(o.replayed for o in third)
    assert [r.flavour for r in fake.received] == ["json"] * 4 + ["sms_rest"]
    assert set(fake.deliveries().values()) == {1}


async def post_batch(
    fake: FakeMMSServer, payload: Any, *, token: str = SECRET, plan: str = PLAN
) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{fake.sms_rest_url}{plan}/batches", json=payload, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json()


GOOD = {"to": ["+17745550001"], "type": "mt_media", "body": {"url": "https://e.com/a.jpg"}}


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({**GOOD, "to": ["17745550001"]}, 400, "syntax_invalid_parameter_format"),
        ({**GOOD, "to": [f"+1774555{1000 + i}" for i in range(1001)]}, 400, "syntax_constraint_violation"),
        ({**GOOD, "body": {"message": "text only"}}, 400, "syntax_constraint_violation"),
        ({**GOOD, "type": "mt_text"}, 400, "syntax_constraint_violation"),
        ({**GOOD, "body": {"url": "https://e.com/a.jpg", "message": "x" * 2001}}, 400, "syntax_constraint_violation"),
        ({**GOOD, "bogus": 1}, 400, "syntax_invalid_json"),
        ({**GOOD, "parameters": {"bad name!": {"default": "x"}}}, 400, "syntax_invalid_parameter_format"),
    ],
    ids=["no-plus", "1001", "no-url", "not-media", "long-message", "unknown-field", "parameter-name"],
)
async def test_the_fake_refuses_batches_by_the_document(
    fake: FakeMMSServer, payload: dict[str, Any], status: int, code: str
) -> None:
    got, answer = await post_batch(fake, payload)
    assert (got, answer["code"]) == (status, code)


async def test_the_fake_answers_a_good_batch_with_201_and_the_batch_object(fake: FakeMMSServer) -> None:
    status, answer = await post_batch(fake, GOOD)
    assert status == 201
    assert answer["to"] == GOOD["to"] and answer["type"] == "mt_media" and answer["id"]


async def test_the_fake_refuses_a_wrong_token_and_an_unknown_plan(fake: FakeMMSServer) -> None:
    assert (await post_batch(fake, GOOD, token="nope"))[0] == 401
    assert (await post_batch(fake, GOOD, plan="other"))[0] == 403


async def test_a_retried_batch_is_logged_with_its_first_recipients_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mmsjson")
    numbers = [f"1774555{1000 + i}" for i in range(5)]
    async with client_with(Server(error(429, "too_many_requests"))) as client:
        await client.send_batch(picture(), numbers)
    assert "17745551000,17745551001,17745551002 and 2 more" in caplog.text
    assert numbers[4] not in caplog.text


async def test_the_same_job_twice_in_a_journaled_run_is_sent_once_and_replayed_once(tmp_path: Path) -> None:
    server = Server()
    jobs = bulk_jobs(2) + bulk_jobs(1)
    async with client_with(server) as client:
        outcomes = [o async for o in client.send_bulk(jobs, journal=tmp_path / "run.db")]
    assert sorted((o.index, o.replayed) for o in outcomes) == [(0, False), (1, False), (2, True)]
    assert {o.status for o in outcomes} == {OutcomeStatus.ACCEPTED}
    assert sum(len(r.recipients) for r in server.requests) == 2


async def test_leaving_a_batched_run_early_sends_nothing_more_and_reports_each_job_once() -> None:
    server = Server()
    seen: list[int] = []
    async with client_with(server, flavour(max_recipients=2)) as client:
        run = client.send_bulk(bulk_jobs(10), max_pending=2, progress=lambda p: seen.append(p.last.index))
        async with contextlib.aclosing(run) as outcomes:
            async for _ in outcomes:
                break
    assert len(seen) == len(set(seen))
    assert sum(len(r.recipients) for r in server.requests) == len(seen) <= 4


def test_a_token_echoed_through_json_escapes_is_redacted_too() -> None:
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in SECRET)
    with pytest.raises(BadRequestError) as caught:
        flavour().read(RawResponse(400, f'{{"code": "syntax_invalid_json", "text": "{escaped}"}}'.encode()))
    assert SECRET not in str(caught.value) + repr(caught.value.response)


async def test_a_batched_run_holds_at_most_max_pending_jobs_however_many_there_are() -> None:
    pulled = 0

    def counted() -> Iterator[BulkJob]:
        nonlocal pulled
        for job in bulk_jobs(50):
            pulled += 1
            yield job

    most = 0
    done = 0
    async with client_with(Server(), flavour(max_recipients=4)) as client:
        async for _ in client.send_bulk(counted(), max_pending=8):
            done += 1
            most = max(most, pulled - done)
    assert done == 50
    assert most <= 8

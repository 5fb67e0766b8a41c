"""Adversarial review of bulk runs: stopping a run while a request waits to be retried, bad jobs
in a batched run, a job source that fails midway, and batch answers that leave recipients out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmsjson import (
    BulkJob,
    MMSClient,
    OutcomeStatus,
    RawResponse,
    SmsRestFlavour,
    ThroughputExceeded,
)
from mmsjson.journal import BulkJournal
from mmsjson.models import MMS, Image, Slide
from mmsjson.retry import RetryPolicy
from mmsjson.testing import MockTransport
from mmsjson.transport import PreparedRequest
from tests.conftest import SECRET, picture_mms

SMS_URL = "https://us.sms.api.example.test/xms/v1/"
ACCEPTED_JSON = {"status": "success", "tracking-id": "T1"}


class _Backoff:
    """A retry policy whose back-off is an hour and which says when a request starts waiting it."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    def policy(self) -> RetryPolicy:
        waiting = self.waiting

        class Signalling(RetryPolicy):
            def delay(self, attempt: int, retry_after: float | None = None) -> float:
                waiting.set()
                return 3600.0

        return Signalling()


def json_client(handler: Any, retry: RetryPolicy | None = None) -> MMSClient:
    return MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None,
        transport=MockTransport(handler), retry=retry or RetryPolicy(base_delay=0.001, max_delay=0.002),
    )


def sms_client(handler: Any, retry: RetryPolicy | None = None, **options: Any) -> MMSClient:
    return MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL, **options), throughput=None,
        transport=MockTransport(handler), retry=retry or RetryPolicy(base_delay=0.001, max_delay=0.002),
    )


def media_mms() -> MMS:
    return MMS(slides=[Slide(text="Hi", image=Image("https://example.com/a.jpg"))], subject="Hi")


def batch_answer(request: PreparedRequest, **changes: Any) -> RawResponse:
    payload = request.json()
    answer = {"id": "B1", "to": payload["to"], "type": "mt_media", **changes}
    return RawResponse.from_json({k: v for k, v in answer.items() if v is not None}, 201)


async def test_a_run_stopped_while_a_throttled_job_waits_to_retry_resends_it_on_resume(
    tmp_path: Path,
) -> None:
    backoff = _Backoff()
    journal = tmp_path / "run.db"

    async def first_run(request: PreparedRequest) -> RawResponse:
        if request.json()["to"] == "15551230002":
            return RawResponse(429, b"slow down")
        await backoff.waiting.wait()
        return RawResponse.from_json(ACCEPTED_JSON)

    jobs = [BulkJob(to="15551230001", mms=picture_mms()), BulkJob(to="15551230002", mms=picture_mms())]
    async with json_client(first_run, backoff.policy()) as client, contextlib.aclosing(
        client.send_bulk(jobs, journal=journal)
    ) as run:
        async for outcome in run:
            assert outcome.status is OutcomeStatus.ACCEPTED
            break

    second = MockTransport(lambda request: RawResponse.from_json(ACCEPTED_JSON))
    async with MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, transport=second
    ) as client:
        outcomes = [o async for o in client.send_bulk(jobs, journal=journal)]
    by_number = {o.to: o for o in outcomes}
    assert by_number["15551230001"].replayed
    assert (by_number["15551230002"].status, by_number["15551230002"].replayed) == (
        OutcomeStatus.ACCEPTED, False
    )
    assert [r.json()["to"] for r in second.requests] == ["15551230002"]


async def test_a_job_waiting_to_be_retried_lets_the_next_job_have_its_slot() -> None:
    backoff = _Backoff()
    second_sent = asyncio.Event()

    def answer(request: PreparedRequest) -> RawResponse:
        if request.json()["to"] == "15551230001":
            return RawResponse(429, b"slow down")
        second_sent.set()
        return RawResponse.from_json(ACCEPTED_JSON)

    jobs = [BulkJob(to=f"1555123000{n}", mms=picture_mms()) for n in (1, 2)]
    async with MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, max_in_flight=1,
        transport=MockTransport(answer), retry=backoff.policy(),
    ) as client, contextlib.aclosing(client.send_bulk(jobs)) as run:
        async with asyncio.timeout(10):  # a guard against a hang, not a timing check
            outcome = await anext(run)
        assert (outcome.to, outcome.status) == ("15551230002", OutcomeStatus.ACCEPTED)
        assert second_sent.is_set()


async def test_a_throttled_batch_stopped_in_its_back_off_is_resent_on_resume(tmp_path: Path) -> None:
    backoff = _Backoff()
    journal = tmp_path / "run.db"
    other = media_mms()
    throttled = MMS(slides=[Slide(text="Other", image=Image("https://example.com/b.jpg"))])

    async def first_run(request: PreparedRequest) -> RawResponse:
        if request.json()["body"]["message"] == "Other":
            return RawResponse(429, b"")
        await backoff.waiting.wait()
        return batch_answer(request)

    jobs = [BulkJob(to="15551230001", mms=other), BulkJob(to="15551230002", mms=throttled)]
    async with sms_client(first_run, backoff.policy()) as client, contextlib.aclosing(
        client.send_bulk(jobs, journal=journal)
    ) as run:
        async for outcome in run:
            assert outcome.status is OutcomeStatus.ACCEPTED
            break

    second = MockTransport(batch_answer)
    async with MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL), throughput=None, transport=second
    ) as client:
        outcomes = {o.to: o async for o in client.send_bulk(jobs, journal=journal)}
    assert outcomes["15551230002"].status is OutcomeStatus.ACCEPTED
    assert not outcomes["15551230002"].replayed
    assert [r.json()["to"] for r in second.requests] == [["+15551230002"]]


async def test_a_pipeline_stopped_in_back_off_raises_the_throttling_error_not_a_cancellation() -> None:
    backoff = _Backoff()
    from mmsjson._pipeline import ClientStats, Pipeline, StopToken
    from mmsjson.flavours import JsonFlavour

    flavour = JsonFlavour(SECRET)
    pipeline = Pipeline(
        transport=MockTransport(lambda request: RawResponse(429, b"")), read=flavour.read,
        limiter=None, retry=backoff.policy(), max_in_flight=4, stats=ClientStats(),
    )
    stop = StopToken()
    wired: list[bool] = []

    async def before_wire() -> None:
        wired.append(True)

    request = flavour.send(picture_mms(), "15551230001", service_id="123", sender="12345")
    task = asyncio.create_task(pipeline.deliver(request, before_wire=before_wire, stop=stop))
    await backoff.waiting.wait()
    stop.stop()
    with pytest.raises(ThroughputExceeded) as caught:
        await task
    assert caught.value.attempts == 1 and wired == [True]


async def test_a_caller_cancelling_a_request_in_back_off_still_gets_a_cancellation() -> None:
    backoff = _Backoff()
    from mmsjson._pipeline import ClientStats, Pipeline, StopToken
    from mmsjson.flavours import JsonFlavour

    flavour = JsonFlavour(SECRET)
    pipeline = Pipeline(
        transport=MockTransport(lambda request: RawResponse(429, b"")), read=flavour.read,
        limiter=None, retry=backoff.policy(), max_in_flight=4, stats=ClientStats(),
    )
    request = flavour.send(picture_mms(), "15551230001", service_id="123", sender="12345")
    task = asyncio.create_task(pipeline.deliver(request, stop=StopToken()))
    await backoff.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- batched runs: bad jobs, failing sources, answers that leave recipients out ------------------


class _Exploding:
    """A job that is not a BulkJob and breaks whatever reads it."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


async def test_a_job_that_is_not_a_bulk_job_is_rejected_in_a_batched_run_as_in_a_plain_one() -> None:
    jobs: list[Any] = [BulkJob(to="15551230001", mms=media_mms()), _Exploding(),
                       BulkJob(to="15551230002", mms=media_mms())]
    async with sms_client(batch_answer) as client:
        outcomes = [o async for o in client.send_bulk(jobs)]
    statuses = sorted((o.index, o.status) for o in outcomes)
    assert statuses == [
        (0, OutcomeStatus.ACCEPTED), (1, OutcomeStatus.REJECTED), (2, OutcomeStatus.ACCEPTED),
    ]


async def test_a_job_source_failing_midway_sends_nothing_it_had_not_yet_packed(tmp_path: Path) -> None:
    transport = MockTransport(batch_answer)

    def source() -> Iterator[BulkJob]:
        yield BulkJob(to="15551230001", mms=media_mms())
        yield BulkJob(to="15551230002", mms=media_mms())
        raise OSError("the CSV file went away")

    async with MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL), throughput=None, transport=transport
    ) as client:
        with pytest.raises(OSError, match="went away"):
            async for _ in client.send_bulk(source(), journal=tmp_path / "j.db"):
                pass
    assert transport.requests == []
    with BulkJournal(tmp_path / "j.db") as journal:
        assert sum((await journal.counts()).values()) == 0


async def test_an_async_job_source_failing_midway_still_reports_nothing_twice() -> None:
    async def source() -> AsyncIterator[BulkJob]:
        for n in range(3):
            yield BulkJob(to=f"1555123000{n}", mms=media_mms())
        raise ValueError("bad row")

    async with sms_client(batch_answer) as client:
        with pytest.raises(ValueError, match="bad row"):
            async for _ in client.send_bulk(source()):
                pass
        assert client.stats.requests == 0


async def test_recipients_a_batch_answer_leaves_out_are_unknown_and_never_resent() -> None:
    transport_requests: list[PreparedRequest] = []

    def handler(request: PreparedRequest) -> RawResponse:
        transport_requests.append(request)
        return batch_answer(request, to=["+15551230001", "+15551230001", "+19999999999"])

    async with sms_client(handler) as client:
        result = await client.send_batch(media_mms(), ["15551230001", "15551230002", "15551230003"])
    statuses = {o.to: o.status for o in result.outcomes}
    assert statuses == {
        "15551230001": OutcomeStatus.ACCEPTED,
        "15551230002": OutcomeStatus.UNKNOWN,
        "15551230003": OutcomeStatus.UNKNOWN,
    }
    assert len(transport_requests) == 1


async def test_a_batch_answer_whose_to_is_not_a_list_of_numbers_leaves_nobody_accepted_twice() -> None:
    async with sms_client(lambda r: batch_answer(r, to="+15551230001")) as client:
        result = await client.send_batch(media_mms(), ["15551230001", "15551230002"])
    assert len(result.outcomes) == 2
    assert {o.status for o in result.outcomes} <= {OutcomeStatus.ACCEPTED, OutcomeStatus.UNKNOWN}


async def test_a_lost_batch_answer_leaves_every_recipient_unknown_and_is_not_resent() -> None:
    from mmsjson import TransportError

    calls: list[PreparedRequest] = []

    def handler(request: PreparedRequest) -> RawResponse:
        calls.append(request)
        raise TransportError("reset", outcome_unknown=True)

    async with sms_client(handler) as client:
        result = await client.send_batch(media_mms(), [f"1555123000{n}" for n in range(5)])
    assert {o.status for o in result.outcomes} == {OutcomeStatus.UNKNOWN}
    assert len(result.outcomes) == 5 and len(calls) == 1


async def test_http_429_mid_run_retries_only_the_throttled_batch() -> None:
    answers = iter([RawResponse(429, b""), None, None])
    calls: list[tuple[str, ...]] = []

    def handler(request: PreparedRequest) -> RawResponse:
        calls.append(request.recipients)
        answer = next(answers, None)
        return answer if answer is not None else batch_answer(request)

    jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in range(4)]
    async with sms_client(handler, max_recipients=2) as client:
        outcomes = [o async for o in client.send_bulk(jobs, max_pending=2)]
    assert {o.status for o in outcomes} == {OutcomeStatus.ACCEPTED}
    assert len(calls) == 3 and calls.count(calls[0]) == 2
    assert sorted(n for c in set(calls) for n in c) == [f"1555123000{n}" for n in range(4)]


# -- journal resume across flavours ---------------------------------------------------------------


def fallback_media_mms() -> MMS:
    return MMS(
        slides=[Slide(text="Hi", image=Image("https://example.com/a.jpg"))], subject="Hi",
        fallback_sms_text="See the picture",
    )


@pytest.mark.parametrize("direction", ["json-then-sms-rest", "sms-rest-then-json"])
async def test_a_journal_resumes_across_the_json_and_sms_rest_flavours_without_resending(
    tmp_path: Path, direction: str
) -> None:
    journal = tmp_path / "run.db"
    jobs = [BulkJob(to=f"1555123000{n}", mms=fallback_media_mms(), client_reference=f"r{n}")
            for n in range(3)]
    json_transport = MockTransport(lambda request: RawResponse.from_json(ACCEPTED_JSON))
    sms_transport = MockTransport(batch_answer)
    clients: list[Callable[[], MMSClient]] = [
        lambda: MMSClient(SECRET, service_id="123", sender="12345", throughput=None,
                          transport=json_transport),
        lambda: MMSClient(flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL),
                          sender="12345", service_id="123", throughput=None, transport=sms_transport),
    ]
    first, second = clients if direction == "json-then-sms-rest" else clients[::-1]
    async with first() as client:
        assert {o.status async for o in client.send_bulk(jobs, journal=journal)} == {
            OutcomeStatus.ACCEPTED
        }
    sent_first = len(json_transport.requests) + len(sms_transport.requests)
    async with second() as client:
        again = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert all(o.replayed and o.status is OutcomeStatus.ACCEPTED for o in again)
    assert len(json_transport.requests) + len(sms_transport.requests) == sent_first


@pytest.mark.parametrize("token", ["id", "to", "mt_media"])
def test_a_token_that_occurs_in_a_batch_answer_does_not_corrupt_it(token: str) -> None:
    flavour = SmsRestFlavour(token, "plan1", base_url=SMS_URL)
    request = flavour.send(media_mms(), "15551230001", service_id=None, sender=None)
    answer = flavour.read(batch_answer(request))
    assert flavour.send_result(answer).tracking_id == "B1"
    assert flavour.accepted_recipients(answer) == frozenset({"15551230001"})


def test_a_token_echoed_in_a_batch_error_is_redacted() -> None:
    from mmsjson import ApiError

    flavour = SmsRestFlavour("tok-SECRET-123", "plan1", base_url=SMS_URL)
    for body in (b'{"code": "unauthorized", "text": "bad token tok-SECRET-123"}',
                 b'{"code": "unauthorized", "text": "bad token tok\\u002dSECRET-123"}',
                 b"<html>tok-SECRET-123</html>"):
        with pytest.raises(ApiError) as caught:
            flavour.read(RawResponse(401, body))
        assert "SECRET" not in f"{caught.value} {caught.value.response!r} {caught.value.info!r}"


# -- a journal that cannot be written before a batch goes on the wire -------------------------------


async def test_a_transient_journal_failure_before_a_batch_stops_the_run_and_the_rerun_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmsjson import StoreError

    journal = BulkJournal(tmp_path / "run.db")
    real_sending = journal.sending
    failures = iter([StoreError("run.db", "database is locked")])

    async def flaky(key: str, recipient: str) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        await real_sending(key, recipient)

    monkeypatch.setattr(journal, "sending", flaky)
    transport = MockTransport(batch_answer)
    jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in range(3)]
    async with MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL), throughput=None, transport=transport
    ) as client:
        with pytest.raises(StoreError, match="locked"):
            async for _ in client.send_bulk(jobs, journal=journal):
                pass
        assert transport.requests == []
        outcomes = [o async for o in client.send_bulk(jobs, journal=journal)]
    journal.close()
    assert {(o.status, o.replayed) for o in outcomes} == {(OutcomeStatus.ACCEPTED, False)}
    assert len(transport.requests) == 1

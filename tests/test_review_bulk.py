"""Adversarial review of bulk runs and the journal: subclassed and hollow jobs, text SQLite cannot
store, a transport that raises CancelledError, batched runs sharing a journal, progress callbacks
that raise, runs cancelled twice, job sources that wait, keys reused for another person, and
answers a flavour cannot read."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from mmsjson import (
    MMS,
    BulkJob,
    Image,
    MMSClient,
    OutcomeStatus,
    RawResponse,
    Slide,
    SmsRestFlavour,
    ValidationError,
)
from mmsjson.flavours import JsonFlavour
from mmsjson.journal import BulkJournal
from mmsjson.testing import MockTransport
from mmsjson.transport import PreparedRequest
from tests.conftest import SECRET, picture_mms

SMS_URL = "https://us.sms.api.example.test/xms/v1/"
ACCEPTED_JSON = {"status": "success", "tracking-id": "T1"}


def media_mms() -> MMS:
    return MMS(slides=[Slide(text="Hi", image=Image("https://example.com/a.jpg"))], subject="Hi")


def json_client(handler: Any) -> MMSClient:
    return MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, transport=MockTransport(handler)
    )


def sms_client(handler: Any, flavour: type[SmsRestFlavour] = SmsRestFlavour) -> MMSClient:
    return MMSClient(
        flavour=flavour(SECRET, "plan1", base_url=SMS_URL), throughput=None,
        transport=MockTransport(handler),
    )


def batch_answer(request: PreparedRequest, batch_id: str = "B1") -> RawResponse:
    to = json.dumps(request.json()["to"])
    return RawResponse(201, f'{{"id": "{batch_id}", "type": "mt_media", "to": {to}}}'.encode())


def json_accepts(request: PreparedRequest) -> RawResponse:
    return RawResponse.from_json(ACCEPTED_JSON)


# -- BulkJob subclasses get attrs's __init__: it must check and convert as BulkJob's own does --------


@attrs.frozen(kw_only=True)
class TaggedJob(BulkJob):
    tag: str = ""


def test_an_attrs_subclass_of_bulk_job_refuses_a_field_of_the_wrong_type() -> None:
    with pytest.raises(ValidationError, match="to: must be a phone number as a string, not int"):
        TaggedJob(to=17745559144, mms_id="1")  # type: ignore[arg-type]


def test_an_attrs_subclass_of_bulk_job_keeps_display_only_numbers_as_a_hashable_tuple() -> None:
    job = TaggedJob(to="17745559144", mms_id="1", to_displayonly=["17745550002"], tag="a")
    assert job.to_displayonly == ("17745550002",)
    assert hash(job) == hash(TaggedJob(to="17745559144", mms_id="1", to_displayonly=("17745550002",), tag="a"))


def test_an_attrs_subclass_of_bulk_job_refuses_one_string_as_display_only_numbers() -> None:
    with pytest.raises(ValidationError, match="to_displayonly: must be a list of numbers"):
        TaggedJob(to="17745559144", mms_id="1", to_displayonly="17745550002")


# -- a job that cannot be prepared, whatever the reason, is rejected in a batched run too ----------


class _BrokenForOne(SmsRestFlavour):
    """A flavour with a bug that shows for one recipient only (not an MMSError)."""

    def send(self, mms: MMS, to: str, **options: Any) -> PreparedRequest:
        if to == "15551230002":
            raise TypeError("str is not valid UTF-8: surrogates not allowed")
        return super().send(mms, to, **options)


async def test_a_job_that_fails_to_prepare_unexpectedly_is_rejected_and_a_batched_run_goes_on() -> None:
    jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in (1, 2, 3)]
    async with sms_client(batch_answer, _BrokenForOne) as client:
        outcomes = sorted([(o.index, o.status) async for o in client.send_bulk(jobs)])
    assert outcomes == [
        (0, OutcomeStatus.ACCEPTED), (1, OutcomeStatus.REJECTED), (2, OutcomeStatus.ACCEPTED),
    ]


# -- text SQLite cannot store (a lone surrogate) must not end a journaled run ------------------------


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_a_job_key_with_a_lone_surrogate_is_journaled_and_a_rerun_replays_it(
    tmp_path: Path, flavour: str
) -> None:
    journal = tmp_path / "run.db"
    content = picture_mms() if flavour == "json" else media_mms()
    jobs = [BulkJob(to="15551230001", mms=content, key="row-\udcff"),
            BulkJob(to="15551230002", mms=content)]

    def make() -> MMSClient:
        return json_client(json_accepts) if flavour == "json" else sms_client(batch_answer)

    async with make() as client:
        first = {o.to: o.status async for o in client.send_bulk(jobs, journal=journal)}
    async with make() as client:
        again = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert first == {"15551230001": OutcomeStatus.ACCEPTED, "15551230002": OutcomeStatus.ACCEPTED}
    assert all(o.replayed and o.status is OutcomeStatus.ACCEPTED for o in again)


async def test_a_batch_answer_with_a_lone_surrogate_is_journaled_unknown_and_never_resent(
    tmp_path: Path,
) -> None:
    # The SMS REST reader refuses such an answer as no answer (strict JSON), after the request
    # may have created the batch: unknown, recorded, and not sent again on a rerun.
    journal = tmp_path / "run.db"
    jobs = [BulkJob(to="15551230001", mms=media_mms())]
    async with sms_client(lambda request: batch_answer(request, "B\\ud800")) as client:
        first = [o async for o in client.send_bulk(jobs, journal=journal)]
    transport = MockTransport(batch_answer)
    async with MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL), throughput=None, transport=transport
    ) as client:
        again = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert [o.status for o in first] == [OutcomeStatus.UNKNOWN]
    assert [(o.status, o.replayed) for o in again] == [(OutcomeStatus.UNKNOWN, True)]
    assert transport.requests == []


async def test_an_error_text_with_a_lone_surrogate_from_the_peer_is_journaled_and_replayed(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "run.db"
    refusal = b'{"code": "syntax_invalid_parameter_format", "text": "bad \\udcff"}'
    jobs = [BulkJob(to="15551230001", mms=media_mms()), BulkJob(to="15551230002", mms=media_mms())]
    async with sms_client(lambda request: RawResponse(400, refusal)) as client:
        first = [o async for o in client.send_bulk(jobs, journal=journal, max_pending=1)]
    async with sms_client(batch_answer) as client:
        again = [o async for o in client.send_bulk(jobs, journal=journal)]
    assert [o.status for o in first] == [OutcomeStatus.REJECTED] * 2
    assert [(o.status, o.replayed) for o in again] == [(OutcomeStatus.REJECTED, True)] * 2


# -- a transport that raises CancelledError without being cancelled --------------------------------


async def _cancelled_error(request: PreparedRequest) -> RawResponse:
    raise asyncio.CancelledError


async def test_a_transport_raising_cancelled_error_leaves_each_job_unknown_and_the_run_goes_on() -> None:
    jobs = [BulkJob(to=f"1555123000{n}", mms=picture_mms()) for n in range(3)]
    async with json_client(_cancelled_error) as client:
        outcomes = [o async for o in client.send_bulk(jobs, max_pending=1)]
    assert sorted((o.index, o.status) for o in outcomes) == [
        (n, OutcomeStatus.UNKNOWN) for n in range(3)
    ]


async def test_a_transport_raising_cancelled_error_leaves_a_batch_unknown_not_the_caller_cancelled() -> None:
    jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in range(3)]
    async with sms_client(_cancelled_error) as client:
        outcomes = [o async for o in client.send_bulk(jobs)]
        assert client.stats.requests == 1
    assert sorted((o.index, o.status) for o in outcomes) == [
        (n, OutcomeStatus.UNKNOWN) for n in range(3)
    ]


async def test_a_caller_cancelling_a_send_on_the_wire_still_gets_a_cancellation() -> None:
    on_wire = asyncio.Event()

    async def hang(request: PreparedRequest) -> RawResponse:
        on_wire.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with json_client(hang) as client:
        task = asyncio.create_task(client.send(picture_mms(), "15551230001"))
        await on_wire.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- batched runs sharing one journal object ----------------------------------------------------------


async def test_two_batched_runs_sharing_one_journal_object_send_each_person_once(tmp_path: Path) -> None:
    arrived: list[str] = []
    gate, three_arrived = asyncio.Event(), asyncio.Event()

    async def slow(request: PreparedRequest) -> RawResponse:
        arrived.extend(request.json()["to"])
        if len(arrived) >= 3:
            three_arrived.set()
        await gate.wait()
        return batch_answer(request)

    jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in range(3)]
    with BulkJournal(tmp_path / "run.db") as journal:
        async with sms_client(slow) as client:

            async def run() -> list[Any]:
                return [o async for o in client.send_bulk(jobs, journal=journal)]

            first, second = asyncio.create_task(run()), asyncio.create_task(run())
            async with asyncio.timeout(30):  # a guard against a hang, not a timing check
                await three_arrived.wait()
                for _ in range(50):  # turns of the loop for a duplicate to arrive, if claims failed
                    await asyncio.sleep(0)
                gate.set()
                outcomes = await first + await second
    assert sorted(arrived) == [f"+1555123000{n}" for n in range(3)]
    assert {o.status for o in outcomes} == {OutcomeStatus.ACCEPTED}
    assert sorted(o.replayed for o in outcomes) == [False] * 3 + [True] * 3


# -- a progress callback that raises --------------------------------------------------------------


class _ProgressFailed(Exception):
    pass


def _raising_progress(seen: list[int]) -> Any:
    """A progress callback that records each outcome's index, then raises, every time."""

    def progress(update: Any) -> None:
        seen.append(update.last.index if hasattr(update, "last") else len(seen))
        raise _ProgressFailed(f"progress call {len(seen)}")

    return progress


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_a_progress_callback_that_keeps_raising_still_hears_of_every_job_on_the_wire(
    flavour: str,
) -> None:
    gate, four_on_wire = asyncio.Event(), asyncio.Event()
    sent: list[PreparedRequest] = []

    async def held(request: PreparedRequest) -> RawResponse:
        sent.append(request)
        if len(sent) == (4 if flavour == "json" else 2):
            four_on_wire.set()
        await gate.wait()
        return json_accepts(request) if flavour == "json" else batch_answer(request)

    seen: list[int] = []
    if flavour == "json":
        client = json_client(held)
        jobs = [BulkJob(to=f"1555123000{n}", mms=picture_mms()) for n in range(8)]
    else:
        client = MMSClient(
            flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL, max_recipients=2),
            throughput=None, transport=MockTransport(held),
        )
        jobs = [BulkJob(to=f"1555123000{n}", mms=media_mms()) for n in range(8)]
    async with client:
        run = client.send_bulk(jobs, progress=_raising_progress(seen), max_pending=4)
        first = asyncio.ensure_future(anext(run))
        await four_on_wire.wait()
        gate.set()
        with pytest.raises(_ProgressFailed, match="progress call 1$"):
            await first
    assert sorted(seen) == [0, 1, 2, 3]


async def test_a_group_send_whose_progress_raises_raises_only_once_every_request_is_answered() -> None:
    answered: list[str] = []

    async def slow(request: PreparedRequest) -> RawResponse:
        for _ in range(len(answered) * 3):  # later answers take more turns of the loop
            await asyncio.sleep(0)
        answered.append(request.json()["to"])
        return json_accepts(request)

    seen: list[int] = []
    people = ["15551230001", "15551230002", "15551230003"]
    async with json_client(slow) as client:
        with pytest.raises(_ProgressFailed, match="progress call 1$"):
            await client.send_group(picture_mms(), people, progress=_raising_progress(seen))
        assert sorted(answered) == people
    assert len(seen) == 3


# -- a run cancelled again while it waits for the requests on the wire --------------------------------


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_a_run_cancelled_twice_still_lets_its_requests_on_the_wire_finish_and_be_journaled(
    tmp_path: Path, flavour: str
) -> None:
    gate, on_wire = asyncio.Event(), asyncio.Event()
    sent: list[PreparedRequest] = []
    reported: list[str] = []

    async def held(request: PreparedRequest) -> RawResponse:
        sent.append(request)
        on_wire.set()
        await gate.wait()
        return json_accepts(request) if flavour == "json" else batch_answer(request)

    if flavour == "json":
        client, content = json_client(held), picture_mms()
    else:
        client, content = sms_client(held), media_mms()
    jobs = [BulkJob(to=f"1555123000{n}", mms=content) for n in range(4)]
    with BulkJournal(tmp_path / "run.db") as journal:
        async with client:

            async def consume() -> None:
                async for _ in client.send_bulk(
                    jobs, journal=journal, max_pending=2,
                    progress=lambda update: reported.append(update.last.to),
                ):
                    pass

            task = asyncio.create_task(consume())
            await on_wire.wait()
            task.cancel()
            for _ in range(5):  # the run is now waiting for its requests on the wire
                await asyncio.sleep(0)
            task.cancel()
            for _ in range(5):
                await asyncio.sleep(0)
            gate.set()
            with pytest.raises(asyncio.CancelledError):
                await task
        counts = await journal.counts()
    assert sent and counts == {"accepted": sum(len(r.recipients) for r in sent)}
    assert sorted(reported) == sorted(to for r in sent for to in r.recipients)


async def test_a_run_over_a_job_source_that_swallows_one_cancellation_ends_when_cancelled_again() -> None:
    reading = asyncio.Event()

    async def stubborn() -> Any:
        yield BulkJob(to="15551230001", mms=picture_mms())
        reading.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await asyncio.Event().wait()

    async with json_client(json_accepts) as client:

        async def consume() -> None:
            async for _ in client.send_bulk(stubborn()):
                pass

        task = asyncio.create_task(consume())
        await reading.wait()
        task.cancel()
        for _ in range(5):  # the run now waits for its worker stuck in the job source
            await asyncio.sleep(0)
        task.cancel()
        async with asyncio.timeout(30):  # a guard against a hang, not a timing check
            with pytest.raises(asyncio.CancelledError):
                await task


# -- max_pending ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_pending", [0, -1, 2.5, "4"])
async def test_a_max_pending_that_is_not_a_positive_integer_is_refused_before_anything_is_sent(
    max_pending: Any,
) -> None:
    transport = MockTransport(json_accepts)
    async with MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, transport=transport
    ) as client:
        with pytest.raises(ValidationError, match="max_pending: must be an integer of at least 1"):
            async for _ in client.send_bulk([BulkJob(to="15551230001", mms=picture_mms())],
                                            max_pending=max_pending):
                pass
    assert transport.requests == []


# -- one key given to jobs for different people ---------------------------------------------------


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_a_job_whose_key_the_journal_has_for_another_person_is_refused_not_replayed_as_theirs(
    tmp_path: Path, flavour: str
) -> None:
    transport = MockTransport(json_accepts if flavour == "json" else batch_answer)
    if flavour == "json":
        client: MMSClient = MMSClient(
            SECRET, service_id="123", sender="12345", throughput=None, transport=transport
        )
        content = picture_mms()
    else:
        client = MMSClient(
            flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL), throughput=None,
            transport=transport,
        )
        content = media_mms()
    jobs = [BulkJob(to="15551230001", mms=content, key="row-7"),
            BulkJob(to="15551230002", mms=content, key="row-7")]
    async with client:
        outcomes = sorted([o async for o in client.send_bulk(jobs, journal=tmp_path / "run.db")],
                          key=lambda o: o.index)
    assert [(o.to, o.status, o.replayed) for o in outcomes] == [
        ("15551230001", OutcomeStatus.ACCEPTED, False),
        ("15551230002", OutcomeStatus.REJECTED, False),
    ]
    assert isinstance(outcomes[1].error, ValidationError) and outcomes[1].error.path == "key"
    assert [r.recipients for r in transport.requests] == [("15551230001",)]


# -- an async job source that waits ---------------------------------------------------------------


async def test_a_batched_run_sends_what_it_packed_while_its_async_job_source_waits() -> None:
    more = asyncio.Event()

    async def trickle() -> Any:
        for n in range(3):
            yield BulkJob(to=f"1555123000{n}", mms=media_mms())
        await more.wait()  # a queue with nothing in it yet
        yield BulkJob(to="15551230009", mms=media_mms())

    async with sms_client(batch_answer) as client:
        run = client.send_bulk(trickle())
        async with asyncio.timeout(30):  # a guard against a hang, not a timing check
            first = [await anext(run) for _ in range(3)]
            more.set()
            rest = [o async for o in run]
    assert sorted(o.index for o in first) == [0, 1, 2]
    assert [o.index for o in rest] == [3]
    assert {o.status for o in first + rest} == {OutcomeStatus.ACCEPTED}


async def test_an_async_job_source_that_waits_a_moment_per_job_still_fills_its_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmsjson import _batching

    monkeypatch.setattr(_batching, "_LINGER", 3600.0)  # no partial batch for a moment's wait

    async def per_line() -> Any:  # like a file read line by line in a thread
        for n in range(6):
            await asyncio.sleep(0)
            yield BulkJob(to=f"1555123000{n}", mms=media_mms())

    transport = MockTransport(batch_answer)
    async with MMSClient(
        flavour=SmsRestFlavour(SECRET, "plan1", base_url=SMS_URL, max_recipients=3),
        throughput=None, transport=transport,
    ) as client:
        outcomes = [o async for o in client.send_bulk(per_line())]
    assert len(outcomes) == 6
    assert [len(r.recipients) for r in transport.requests] == [3, 3]


# -- a lock file that another program holds and filled with bytes of its own -------------------------


def test_a_journal_whose_lock_file_another_program_holds_with_binary_content_is_busy(
    tmp_path: Path,
) -> None:
    from mmsjson import JournalBusy

    fcntl = pytest.importorskip("fcntl")

    with open(tmp_path / "run.db.lock", "wb") as lock:
        lock.write(b"\xff\xfe\x00" + b"x" * 100_000)
        lock.flush()
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        with pytest.raises(JournalBusy) as caught:
            BulkJournal(tmp_path / "run.db")
    assert len(str(caught.value)) < 1000


# -- a flavour that fails to read an answer it accepted --------------------------------------------


class _JsonUnreadable(JsonFlavour):
    def send_tracking_id(self, answer: Any) -> str:
        raise KeyError("tracking-id")

    def send_result(self, answer: Any) -> Any:
        raise KeyError("tracking-id")


class _SmsUnreadable(SmsRestFlavour):
    @staticmethod
    def accepted_recipients(answer: Mapping[str, Any]) -> frozenset[str] | None:
        raise KeyError("to")


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_an_accepted_answer_the_flavour_cannot_read_leaves_its_jobs_unknown_and_the_run_goes_on(
    tmp_path: Path, flavour: str
) -> None:
    if flavour == "json":
        client = MMSClient(
            flavour=_JsonUnreadable(SECRET), service_id="123", sender="12345", throughput=None,
            transport=MockTransport(json_accepts),
        )
        content = picture_mms()
    else:
        client = MMSClient(
            flavour=_SmsUnreadable(SECRET, "plan1", base_url=SMS_URL, max_recipients=2),
            throughput=None, transport=MockTransport(batch_answer),
        )
        content = media_mms()
    jobs = [BulkJob(to=f"1555123000{n}", mms=content) for n in range(3)]
    async with client:
        outcomes = [o async for o in client.send_bulk(jobs, journal=tmp_path / "run.db")]
        again = [o async for o in client.send_bulk(jobs, journal=tmp_path / "run.db")]
    assert sorted((o.index, o.status) for o in outcomes) == [(n, OutcomeStatus.UNKNOWN) for n in range(3)]
    assert all(o.replayed and o.status is OutcomeStatus.UNKNOWN for o in again)


async def test_a_group_send_whose_accepted_answers_the_flavour_cannot_read_gives_unknown_outcomes() -> None:
    async with MMSClient(
        flavour=_JsonUnreadable(SECRET), service_id="123", sender="12345", throughput=None,
        transport=MockTransport(json_accepts),
    ) as client:
        result = await client.send_group(picture_mms(), ["15551230001", "15551230002"])
    assert [o.status for o in result.outcomes] == [OutcomeStatus.UNKNOWN] * 2


# -- busy_timeout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("busy_timeout", [float("inf"), float("nan"), -1, "5", True])
def test_a_journal_busy_timeout_that_is_not_a_finite_number_of_seconds_is_refused(
    tmp_path: Path, busy_timeout: Any
) -> None:
    with pytest.raises(ValidationError, match="busy_timeout: must be a finite number of seconds"):
        BulkJournal(tmp_path / "run.db", busy_timeout=busy_timeout)
    BulkJournal(tmp_path / "run.db").close()  # and nothing was left holding it


# -- a progress callback written as a coroutine function ------------------------------------------


async def _async_progress(update: Any) -> None:
    """Never awaited by a run: progress is called, not awaited, after every outcome."""


async def test_a_bulk_run_refuses_a_progress_coroutine_function_before_anything_is_sent() -> None:
    transport = MockTransport(json_accepts)
    async with MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, transport=transport
    ) as client:
        with pytest.raises(ValidationError, match="progress: must be a plain function"):
            async for _ in client.send_bulk(
                [BulkJob(to="15551230001", mms=picture_mms())], progress=_async_progress
            ):
                pass
    assert transport.requests == []


async def test_a_group_send_refuses_a_progress_coroutine_function_before_anything_is_sent() -> None:
    transport = MockTransport(json_accepts)
    async with MMSClient(
        SECRET, service_id="123", sender="12345", throughput=None, transport=transport
    ) as client:
        with pytest.raises(ValidationError, match="progress: must be a plain function"):
            await client.send_group(picture_mms(), ["15551230001"], progress=_async_progress)
    assert transport.requests == []


# -- a job whose fields cannot even be read -------------------------------------------------------


@pytest.mark.parametrize("flavour", ["json", "sms_rest"])
async def test_a_bulk_job_with_no_fields_set_is_rejected_and_the_run_goes_on(flavour: str) -> None:
    hollow = object.__new__(BulkJob)  # as a broken unpickling or a careless subclass leaves it
    if flavour == "json":
        client, content = json_client(json_accepts), picture_mms()
    else:
        client, content = sms_client(batch_answer), media_mms()
    jobs = [BulkJob(to="15551230001", mms=content), hollow, BulkJob(to="15551230002", mms=content)]
    async with client:
        outcomes = sorted([(o.index, o.to, o.status) async for o in client.send_bulk(jobs)])
    assert outcomes == [
        (0, "15551230001", OutcomeStatus.ACCEPTED), (1, "?", OutcomeStatus.REJECTED),
        (2, "15551230002", OutcomeStatus.ACCEPTED),
    ]

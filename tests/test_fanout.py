"""Group and bulk fan-out against the fake server: one request per person, an outcome for each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mmsjson import (
    MMS,
    BulkJob,
    BulkJournal,
    BulkOutcome,
    BulkProgress,
    MMSClient,
    OutcomeStatus,
    PreparedRequest,
    RawResponse,
    Slide,
    ValidationError,
    _fanout,
)
from mmsjson._fanout import _bulk_outcome
from mmsjson.errors import StoreError
from mmsjson.testing import FakeMMSServer, Handler, MockTransport

PEOPLE = ["17745550001", "17745550002", "17745550003"]


async def test_a_group_of_n_is_n_requests_each_showing_the_others_in_order(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        result = await client.send_group(mms, PEOPLE)
    shown = {r.payload["to"]: r.payload["to-displayonly"] for r in fake.accepted()}
    assert shown == {
        "17745550001": "17745550002,17745550003",
        "17745550002": "17745550001,17745550003",
        "17745550003": "17745550001,17745550002",
    }
    assert [o.to for o in result.outcomes] == PEOPLE and result.ok


async def test_participants_are_normalised_and_deduplicated(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        result = await client.send_group(mms, ["+1 774 555 0001", "17745550002", "17745550001"])
    assert [o.to for o in result.outcomes] == ["17745550001", "17745550002"]
    assert fake.deliveries() == {"17745550001": 1, "17745550002": 1}


async def test_a_group_of_one_has_no_display_only_list(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        await client.send_group(mms, ["17745550001"])
    assert "to-displayonly" not in fake.accepted()[0].payload


async def test_a_bad_participant_is_refused_before_anything_is_sent(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        with pytest.raises(ValidationError, match=r"^participants\[1\]: "):
            await client.send_group(mms, ["17745550001", "0017745550002"])
    assert not fake.arrivals


async def test_one_participants_failure_does_not_stop_the_others(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_drop()
    async with make_client() as client:
        result = await client.send_group(mms, PEOPLE)
    assert sorted(o.status for o in result.outcomes) == ["accepted", "accepted", "unknown"]
    assert len(result.unknown) == 1 and not result.ok


async def test_a_rejected_participant_keeps_the_code(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client(max_in_flight=1) as client:
        fake.inject_status(400, body="<html>no</html>")
        result = await client.send_group(mms, PEOPLE)
    rejected = result.rejected
    assert len(rejected) == 1 and rejected[0].error is not None
    assert rejected[0].info is not None and "HTTP 400" in rejected[0].info


async def test_a_saved_template_goes_to_a_group_with_sendsavedmms(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        saved = await client.save(mms, name="promo")
        mms_id = fake.mms_id_for(saved.tracking_id)
        assert mms_id is not None
        result = await client.send_group(mms_id, PEOPLE, custom_texts={1: "Hi all"})
    assert result.ok
    sent = fake.accepted("sendsavedmms")
    assert {r.payload["mms-id"] for r in sent} == {mms_id} and len(sent) == 3


async def test_a_group_result_is_indexed_by_number(make_client: Callable[..., MMSClient], mms: MMS) -> None:
    async with make_client() as client:
        result = await client.send_group(mms, PEOPLE)
    assert result["17745550002"].status is OutcomeStatus.ACCEPTED


# -- bulk ---------------------------------------------------------------------------------------


def jobs(mms: MMS, count: int, start: int = 0) -> Iterator[BulkJob]:
    for i in range(start, start + count):
        yield BulkJob(to=f"1774555{i:04d}", mms=mms, client_reference=f"job-{i}")


async def test_bulk_gives_every_job_exactly_one_outcome(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        outcomes = [o async for o in client.send_bulk(jobs(mms, 300))]
    assert sorted(o.index for o in outcomes) == list(range(300))
    assert all(o.status is OutcomeStatus.ACCEPTED and o.tracking_id for o in outcomes)
    assert sorted(fake.deliveries().values()) == [1] * 300


async def test_bulk_takes_an_async_iterable(make_client: Callable[..., MMSClient], mms: MMS) -> None:
    async def source() -> AsyncIterator[BulkJob]:
        for job in jobs(mms, 5):
            yield job

    async with make_client() as client:
        assert len([o async for o in client.send_bulk(source())]) == 5


async def test_bulk_reads_jobs_lazily_with_a_bounded_number_under_way(
    make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    read = 0
    most_ahead = 0
    done = 0

    def counted() -> Iterator[BulkJob]:
        nonlocal read, most_ahead
        for job in jobs(mms, 200):
            read += 1
            most_ahead = max(most_ahead, read - done)
            yield job

    async with make_client(max_in_flight=4) as client:
        async for _ in client.send_bulk(counted(), max_pending=8):
            done += 1
    assert most_ahead <= 9


async def test_a_bad_job_is_rejected_and_the_run_goes_on(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    bad = [BulkJob(to="not a number", mms=mms), BulkJob(to="17745550001"), *jobs(mms, 2, start=5)]
    async with make_client() as client:
        outcomes = sorted([o async for o in client.send_bulk(bad)], key=lambda o: o.index)
    assert [o.status for o in outcomes] == ["rejected", "rejected", "accepted", "accepted"]
    assert isinstance(outcomes[0].error, ValidationError) and isinstance(outcomes[1].error, ValidationError)
    assert len(fake.deliveries()) == 2


async def test_a_rejection_by_the_api_keeps_its_code(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        outcomes = [o async for o in client.send_bulk([BulkJob(to="17745550001", mms_id="404")])]
    assert (outcomes[0].status, outcomes[0].code) == ("rejected", "E241")


async def test_progress_is_reported_after_every_outcome(make_client: Callable[..., MMSClient], mms: MMS) -> None:
    seen: list[BulkProgress] = []
    async with make_client() as client:
        async for _ in client.send_bulk(jobs(mms, 10), progress=seen.append):
            pass
    assert [p.done for p in seen] == list(range(1, 11))
    assert seen[-1].accepted == 10


async def test_leaving_the_loop_early_reports_what_was_sent_and_sends_no_more(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    yielded: list[BulkOutcome] = []
    reported: list[BulkOutcome] = []
    before = asyncio.all_tasks()
    async with make_client(max_in_flight=4) as client:
        run = client.send_bulk(jobs(mms, 1000), progress=lambda p: reported.append(p.last))
        async for outcome in run:
            yielded.append(outcome)
            if len(yielded) == 20:
                break
        await run.aclose()
        ours = [t for t in asyncio.all_tasks() - before if "mmsjson" in t.get_coro().cr_code.co_filename]  # type: ignore[union-attr]
    assert ours == []
    assert len(fake.arrivals) == client.stats.requests
    accepted = {r.payload["client-reference"] for r in fake.accepted()}
    assert accepted == {o.job.client_reference for o in reported if o.status == "accepted"}
    assert len({o.index for o in reported}) == len(reported)


async def test_cancelling_a_run_loses_no_sent_job_and_reports_none_twice(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    reported: list[BulkOutcome] = []
    thirty_done = asyncio.Event()
    fake.latency = 0.02

    def record(progress: BulkProgress) -> None:
        reported.append(progress.last)
        if len(reported) >= 30:
            thirty_done.set()

    async def consume(client: MMSClient) -> None:
        async for _ in client.send_bulk(jobs(mms, 1000), progress=record):
            pass

    async with make_client(max_in_flight=8) as client:
        task = asyncio.create_task(consume(client))
        await thirty_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    accepted = {r.payload["client-reference"] for r in fake.accepted()}
    assert accepted == {o.job.client_reference for o in reported}
    assert len({o.index for o in reported}) == len(reported)


async def test_a_failure_for_one_job_does_not_stop_the_run(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    fake.inject_drop()
    async with make_client(max_in_flight=1) as client:
        outcomes = [o async for o in client.send_bulk(jobs(mms, 5))]
    assert sorted(o.status for o in outcomes) == ["accepted"] * 4 + ["unknown"]


def mocked(handler: Handler, **options: Any) -> MMSClient:
    return MMSClient(
        "key", service_id="1", sender="12345", throughput=None,
        transport=MockTransport(handler), **options,
    )


def accept(request: PreparedRequest) -> RawResponse:
    return RawResponse.from_json({"status": "success", "tracking-id": request.json()["to"]})


async def test_a_job_that_cannot_be_prepared_for_any_reason_is_rejected_and_the_run_goes_on(
    mms: MMS, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mocked(accept)
    prepare = client._job_request

    def flaky(job: BulkJob) -> PreparedRequest:
        if job.to.endswith("3"):
            raise RuntimeError("a bug in a flavour")
        return prepare(job)

    monkeypatch.setattr(client, "_job_request", flaky)
    async with client:
        outcomes = [o async for o in client.send_bulk(jobs(mms, 5))]
    statuses = {o.to: o.status for o in outcomes}
    assert sorted(statuses.values()) == ["accepted"] * 4 + ["rejected"]
    assert statuses["17745550003"] == "rejected"


async def test_an_unexpected_error_from_a_transport_is_an_unknown_outcome_not_a_crash(mms: MMS) -> None:
    def broken(request: PreparedRequest) -> RawResponse:
        if request.json()["to"].endswith("2"):
            raise ValueError("header value is invalid")
        return accept(request)

    async with mocked(broken) as client:
        outcomes = {o.to: o async for o in client.send_bulk(jobs(mms, 3))}
    assert outcomes["17745550002"].status == "unknown"
    assert "ValueError" in str(outcomes["17745550002"].error)


async def test_a_journal_write_that_fails_before_the_wire_stops_the_run_and_sends_nothing(
    mms: MMS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[PreparedRequest] = []

    def record(request: PreparedRequest) -> RawResponse:
        sent.append(request)
        return accept(request)

    journal = BulkJournal(tmp_path / "run.db")

    async def failing(key: str, recipient: str) -> None:
        raise StoreError("run.db", "disk full")

    monkeypatch.setattr(journal, "sending", failing)
    async with mocked(record) as client:
        with pytest.raises(StoreError, match="disk full"):
            async for _ in client.send_bulk(jobs(mms, 3), journal=journal):
                pass
    journal.close()
    assert sent == []


async def test_two_runs_sharing_one_journal_object_send_each_person_once(mms: MMS, tmp_path: Path) -> None:
    arrived: list[str] = []
    gate, four_arrived = asyncio.Event(), asyncio.Event()

    async def slow(request: PreparedRequest) -> RawResponse:
        arrived.append(request.json()["to"])
        if len(arrived) == 4:
            four_arrived.set()
        await gate.wait()
        return accept(request)

    journal = BulkJournal(tmp_path / "run.db")
    async with mocked(slow) as client:

        async def run() -> list[BulkOutcome]:
            return [o async for o in client.send_bulk(jobs(mms, 4), journal=journal)]

        first, second = asyncio.create_task(run()), asyncio.create_task(run())
        await four_arrived.wait()
        await asyncio.sleep(0.05)  # room for a duplicate to arrive, if the claims failed
        gate.set()
        outcomes = await first + await second
    journal.close()
    assert sorted(arrived) == sorted(set(arrived)) and len(arrived) == 4
    assert all(o.status == "accepted" for o in outcomes)


async def test_a_bulk_run_starts_no_more_jobs_than_can_be_on_the_wire(mms: MMS) -> None:
    read = sent = 0
    on_the_wire, gate = asyncio.Event(), asyncio.Event()

    def counted() -> Iterator[BulkJob]:
        nonlocal read
        for job in jobs(mms, 20):
            read += 1
            yield job

    async def held(request: PreparedRequest) -> RawResponse:
        nonlocal sent
        sent += 1
        if sent == 4:
            on_the_wire.set()
        await gate.wait()
        return accept(request)

    async with mocked(held, max_in_flight=4) as client:
        run = asyncio.create_task(_collect(client.send_bulk(counted(), max_pending=8)))
        await on_the_wire.wait()
        for _ in range(20):  # every worker that could start gets its turn
            await asyncio.sleep(0)
        assert read == 4
        gate.set()
        assert sorted(o.index for o in await run) == list(range(20))


async def test_a_bulk_run_starts_while_other_requests_hold_every_in_flight_slot(mms: MMS) -> None:
    gate = asyncio.Event()

    async def held(request: PreparedRequest) -> RawResponse:
        if request.json()["to"] == "17745559999":
            await gate.wait()
        return accept(request)

    async with mocked(held, max_in_flight=1) as client:
        busy = asyncio.create_task(client.send(mms, "17745559999"))
        await asyncio.sleep(0)
        run = asyncio.create_task(_collect(client.send_bulk(jobs(mms, 3))))
        await asyncio.sleep(0)
        gate.set()
        await busy
        assert sorted(o.status for o in await run) == ["accepted"] * 3


async def _collect(outcomes: AsyncIterator[BulkOutcome]) -> list[BulkOutcome]:
    return [o async for o in outcomes]


async def test_a_caller_slower_than_the_wire_holds_the_run_at_max_pending_jobs(mms: MMS) -> None:
    sent = 0

    def counted(request: PreparedRequest) -> RawResponse:
        nonlocal sent
        sent += 1
        return accept(request)

    async with mocked(counted) as client, contextlib.aclosing(
        client.send_bulk(jobs(mms, 100), max_pending=4)
    ) as run:
        first = await anext(run)
        for _ in range(50):  # the workers get every chance to run ahead
            await asyncio.sleep(0)
        assert sent <= 5
        rest = [o async for o in run]
    assert sorted(o.index for o in [first, *rest]) == list(range(100))
    assert sent == 100


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_a_job_source_failing_midway_ends_the_run_with_its_error_after_what_it_gave(
    mms: MMS, kind: str
) -> None:
    def plain() -> Iterator[BulkJob]:
        yield from jobs(mms, 3)
        raise OSError("the CSV file went away")

    async def asynchronous() -> AsyncIterator[BulkJob]:
        for job in plain():
            yield job

    sent: list[str] = []

    def record(request: PreparedRequest) -> RawResponse:
        sent.append(request.json()["to"])
        return accept(request)

    reported: list[BulkOutcome] = []
    source = plain() if kind == "plain" else asynchronous()
    async with mocked(record) as client:
        run = client.send_bulk(source, progress=lambda p: reported.append(p.last))
        with pytest.raises(OSError, match="went away"):
            await _collect(run)
    assert sorted(sent) == ["17745550000", "17745550001", "17745550002"]
    assert sorted(o.to for o in reported) == sorted(sent)


@pytest.mark.parametrize(
    "fields",
    [
        {"mms": MMS(slides=[Slide(text="no fallback text")])},
        {"mms": MMS(slides=[Slide(text="hi")], fallback_sms_text="hi"), "subject": "a template's"},
        {"mms": MMS(slides=[Slide(text="hi")], fallback_sms_text="hi"), "sender": "12"},
    ],
)
async def test_a_job_with_a_bad_recipient_and_another_fault_is_rejected_for_its_recipient(
    make_client: Callable[..., MMSClient], fields: dict[str, Any]
) -> None:
    async with make_client() as client:
        outcomes = [o async for o in client.send_bulk([BulkJob(to="not a number", **fields)])]
    assert isinstance(outcomes[0].error, ValidationError) and outcomes[0].error.path == "to"


async def test_a_bulk_job_reaches_the_wire_with_its_recipient_normalised(
    fake: FakeMMSServer, make_client: Callable[..., MMSClient], mms: MMS
) -> None:
    async with make_client() as client:
        outcomes = [o async for o in client.send_bulk([BulkJob(to="+1 (774) 555-0001", mms=mms)])]
    assert outcomes[0].to == "17745550001" and fake.deliveries() == {"17745550001": 1}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "success", "tracking-id": "T1", "to": "17745550001"},
        {"status": "success", "tracking-id": 5},
        {"status": "success", "tracking-id": None},
        {"status": "success"},
    ],
)
async def test_a_bulk_outcome_has_the_tracking_id_a_send_reads_from_the_same_answer(
    mms: MMS, answer: dict[str, Any]
) -> None:
    client = mocked(lambda request: RawResponse.from_json(answer))
    sent = await client.send(mms, "17745550001")
    outcomes = [o async for o in client.send_bulk([BulkJob(to="17745550001", mms=mms)])]
    assert outcomes[0].status == "accepted" and outcomes[0].tracking_id == sent.tracking_id


async def test_a_flavour_that_only_reads_whole_results_gives_bulk_outcomes_their_tracking_id(
    mms: MMS,
) -> None:
    client = mocked(accept)

    class Plain:
        """The JSON flavour without its tracking-id reader."""

        def __getattr__(self, name: str) -> Any:
            if name == "send_tracking_id":
                raise AttributeError(name)
            return getattr(flavour, name)

    flavour, client.flavour = client.flavour, Plain()
    outcomes = [o async for o in client.send_bulk([BulkJob(to="17745550001", mms=mms)])]
    assert outcomes[0].tracking_id == "17745550001"


def outcome_fields(job: BulkJob) -> dict[str, Any]:
    return {"to": "17745550001", "status": OutcomeStatus.ACCEPTED, "tracking_id": "T", "error": None,
            "attempts": 1, "job": job, "index": 7}


def test_a_bulk_outcome_built_by_hand_is_the_one_the_class_builds(mms: MMS) -> None:
    job = BulkJob(to="17745550001", mms=mms)
    by_hand, by_class = _bulk_outcome(**outcome_fields(job)), BulkOutcome(**outcome_fields(job))
    assert type(by_hand) is BulkOutcome
    assert (by_hand, repr(by_hand), hash(by_hand)) == (by_class, repr(by_class), hash(by_class))
    assert attrs.asdict(by_hand, recurse=False) == attrs.asdict(by_class, recurse=False)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        by_hand.index = 8  # type: ignore[misc]


def test_a_bulk_outcome_is_built_by_its_class_when_the_class_is_not_what_was_expected(
    mms: MMS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fanout, "_OUTCOME_BY_HAND", False)
    monkeypatch.setattr(_fanout, "_OUTCOME_SLOTS", ())
    job = BulkJob(to="17745550001", mms=mms)
    assert _bulk_outcome(**outcome_fields(job)) == BulkOutcome(**outcome_fields(job))

"""Group and bulk fan-out on top of the client's single-send path.

Fan-out never talks HTTP itself: it hands each request body to the client's ``deliver`` function,
so every request goes through the same in-flight cap, limiter and retry rules. Every recipient gets
an outcome; one recipient's failure never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from functools import partial
from typing import Any, Protocol

from attrs import define, frozen

from mmsjson.errors import MMSError, TransportError, api_error_from_code
from mmsjson.journal import SENDING, BulkJournal, JournalEntry, job_key
from mmsjson.models import MMS, BulkJob, BulkOutcome, GroupResult, Outcome, OutcomeStatus

__all__ = ["BulkProgress", "Delivery", "group_jobs", "run_group", "stream_bulk"]


@define
class Delivery:
    """The state of one request as the client works on it, read by a bulk run that is stopping.

    ``on_wire`` is true while the request may be on the wire or its outcome is being journaled:
    such a job is awaited, never cancelled. ``before_wire`` runs (once) after the limiter lets the
    request start and before it is written.
    """

    attempts: int = 0
    on_wire: bool = False
    stopping: bool = False
    before_wire: Callable[[], Awaitable[None]] | None = None


class Deliver(Protocol):
    def __call__(self, body: bytes, delivery: Delivery | None = None) -> Awaitable[dict[str, Any]]:
        ...


@frozen(kw_only=True)
class BulkProgress:
    """Counts so far in a bulk run, and the outcome that was just recorded."""

    started: int
    accepted: int
    rejected: int
    unknown: int
    in_flight: int
    last: BulkOutcome

    @property
    def done(self) -> int:
        return self.accepted + self.rejected + self.unknown


def _status_of(error: MMSError) -> OutcomeStatus:
    if isinstance(error, TransportError) and error.outcome_unknown:
        return OutcomeStatus.UNKNOWN
    return OutcomeStatus.REJECTED


async def _outcome(deliver: Deliver, to: str, body: bytes, delivery: Delivery) -> Outcome:
    try:
        answer = await deliver(body, delivery)
    except MMSError as error:
        return Outcome(
            to=to, status=_status_of(error), error=error, attempts=delivery.attempts
        )
    return Outcome(
        to=to,
        status=OutcomeStatus.ACCEPTED,
        tracking_id=str(answer.get("tracking-id", "")),
        attempts=delivery.attempts,
    )


def group_jobs(
    content: MMS | str,
    participants: Sequence[str],
    *,
    client_reference: str | None = None,
    custom_texts: Mapping[int, str] | None = None,
) -> list[BulkJob]:
    """A group send as bulk jobs (one per participant, the others display-only), for a journal."""
    jobs = []
    for index, person in enumerate(participants):
        others = (*participants[:index], *participants[index + 1:])
        if isinstance(content, MMS):
            jobs.append(
                BulkJob(to=person, mms=content, to_displayonly=others, client_reference=client_reference)
            )
        else:
            jobs.append(BulkJob(
                to=person, mms_id=content, to_displayonly=others,
                client_reference=client_reference, custom_texts=custom_texts,
            ))
    return jobs


async def run_group(
    deliver: Deliver,
    requests: Sequence[tuple[str, bytes]],
    progress: Callable[[Outcome], object] | None = None,
) -> GroupResult:
    """Send each ``(recipient, body)`` concurrently and collect one outcome per recipient."""

    async def one(to: str, body: bytes) -> Outcome:
        outcome = await _outcome(deliver, to, body, Delivery())
        if progress is not None:
            progress(outcome)
        return outcome

    outcomes = await asyncio.gather(*(one(to, body) for to, body in requests))
    return GroupResult(outcomes=tuple(outcomes))


def _replayed(entry: JournalEntry, job: BulkJob, index: int) -> BulkOutcome:
    final = (OutcomeStatus.ACCEPTED, OutcomeStatus.REJECTED)
    status = OutcomeStatus(entry.state) if entry.state in final else OutcomeStatus.UNKNOWN
    error: MMSError | None = None
    if status is OutcomeStatus.REJECTED:
        error = api_error_from_code(entry.code, entry.info) if entry.code else MMSError(entry.info or "")
    elif status is OutcomeStatus.UNKNOWN:
        error = TransportError(
            "an earlier run may have sent this job; see the journal", outcome_unknown=True
        )
    return BulkOutcome(
        to=entry.recipient, status=status, tracking_id=entry.tracking_id, error=error,
        job=job, index=index, replayed=True,
    )


async def _run_job(
    index: int,
    job: BulkJob,
    build: Callable[[BulkJob], tuple[str, bytes]],
    deliver: Deliver,
    delivery: Delivery,
    journal: BulkJournal | None,
    claims: dict[str, asyncio.Event],
) -> BulkOutcome:
    try:
        to, body = build(job)
    except MMSError as error:
        return BulkOutcome(
            to=str(job.to) if isinstance(job, BulkJob) else "?",
            status=OutcomeStatus.REJECTED,
            error=error,
            job=job,
            index=index,
        )
    if journal is None:
        outcome = await _outcome(deliver, to, body, delivery)
    else:
        key = job.key or job_key(body)
        while key in claims:
            await claims[key].wait()
        claims[key] = claim = asyncio.Event()
        try:
            entry = await journal.entry(key)
            if entry is not None and not entry.resend:
                if entry.state == SENDING:
                    await journal.record(key, to, OutcomeStatus.UNKNOWN)
                return _replayed(entry, job, index)
            delivery.before_wire = partial(journal.sending, key, to)
            outcome = await _outcome(deliver, to, body, delivery)
            delivery.on_wire = True
            await journal.record(
                key, to, outcome.status, tracking_id=outcome.tracking_id, error=outcome.error
            )
        finally:
            delivery.on_wire = False
            del claims[key]
            claim.set()
    return BulkOutcome(
        to=outcome.to, status=outcome.status, tracking_id=outcome.tracking_id,
        error=outcome.error, attempts=outcome.attempts, job=job, index=index,
    )


class _Tally:
    def __init__(self, progress: Callable[[BulkProgress], object] | None) -> None:
        self.progress = progress
        self.started = 0
        self.counts = dict.fromkeys(OutcomeStatus, 0)

    def record(self, outcome: BulkOutcome, in_flight: int) -> None:
        self.counts[outcome.status] += 1
        if self.progress is not None:
            self.progress(
                BulkProgress(
                    started=self.started,
                    accepted=self.counts[OutcomeStatus.ACCEPTED],
                    rejected=self.counts[OutcomeStatus.REJECTED],
                    unknown=self.counts[OutcomeStatus.UNKNOWN],
                    in_flight=in_flight,
                    last=outcome,
                )
            )


async def _drain(pending: dict[asyncio.Task[BulkOutcome], Delivery], tally: _Tally) -> None:
    """Stop a run: drop what has not been sent, await what is on the wire and record it."""
    for task, delivery in pending.items():
        delivery.stopping = True
        if not delivery.on_wire:
            task.cancel()
    while pending:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            del pending[task]
            if not task.cancelled():
                tally.record(task.result(), len(pending))


async def stream_bulk(
    jobs: Iterable[BulkJob] | AsyncIterable[BulkJob],
    build: Callable[[BulkJob], tuple[str, bytes]],
    deliver: Deliver,
    *,
    max_pending: int,
    progress: Callable[[BulkProgress], object] | None = None,
    journal: BulkJournal | None = None,
) -> AsyncGenerator[BulkOutcome, None]:
    """Run ``jobs`` with at most ``max_pending`` under way, yielding outcomes as they complete."""
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    tally = _Tally(progress)
    pending: dict[asyncio.Task[BulkOutcome], Delivery] = {}
    claims: dict[str, asyncio.Event] = {}
    source = _jobs_of(jobs)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < max_pending:
                try:
                    job = await anext(source)
                except StopAsyncIteration:
                    exhausted = True
                    break
                delivery = Delivery()
                task = asyncio.create_task(
                    _run_job(tally.started, job, build, deliver, delivery, journal, claims)
                )
                pending[task] = delivery
                tally.started += 1
            if not pending:
                return
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                del pending[task]
                outcome = task.result()
                tally.record(outcome, len(pending))
                yield outcome
    finally:
        if pending:
            await _drain(pending, tally)


async def _jobs_of(jobs: Iterable[BulkJob] | AsyncIterable[BulkJob]) -> AsyncIterator[BulkJob]:
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            yield job
    else:
        for job in jobs:
            yield job

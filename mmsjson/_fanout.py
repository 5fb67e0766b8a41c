"""Group and bulk fan-out on top of the send pipeline.

Fan-out never builds or posts a request itself: the wire flavour prepares each one and the
pipeline delivers it, so every request goes through the same in-flight cap, limiter and retry
rules. Every recipient gets an outcome; one recipient's failure never stops the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from functools import partial
from typing import Any

from mmsjson._log import pipeline_log
from mmsjson._pipeline import Pipeline, StopToken
from mmsjson._slots import slot_setters
from mmsjson.errors import MMSError, TransportError, ValidationError, api_error_from_code
from mmsjson.flavours.base import Answer
from mmsjson.journal import SENDING, BulkJournal, JournalEntry, job_key
from mmsjson.models import (
    MMS,
    BulkJob,
    BulkOutcome,
    BulkProgress,
    GroupResult,
    Outcome,
    OutcomeStatus,
    SendResult,
)
from mmsjson.retry import Verdict, classify
from mmsjson.transport import PreparedRequest

__all__ = ["group_jobs", "run_group", "stream_bulk"]

#: Builds the request of one bulk job (the flavour's, with the client's defaults).
Prepare = Callable[[BulkJob], PreparedRequest]
#: Reads an accepted answer as a result (the flavour's ``send_result``).
ReadResult = Callable[[Answer], SendResult]
#: Reads the tracking id of an accepted answer: all a bulk outcome keeps of it.
ReadTrackingId = Callable[[Answer], str | None]


#: ``BulkOutcome``'s slot setters, for :func:`_bulk_outcome` (see :mod:`mmsjson._slots`): empty,
#: and outcomes are built by the class, if it no longer has these fields.
_OUTCOME_SLOTS: tuple[Callable[[BulkOutcome, Any], None], ...] = slot_setters(
    BulkOutcome, ("to", "status", "tracking_id", "error", "attempts", "job", "index", "replayed")
)
_OUTCOME_BY_HAND = bool(_OUTCOME_SLOTS)


#: ``OutcomeStatus.ACCEPTED`` without an enum look-up per job.
_ACCEPTED = OutcomeStatus.ACCEPTED


def _bulk_outcome(
    to: str, status: OutcomeStatus, tracking_id: str | None, error: MMSError | None,
    attempts: int, job: BulkJob, index: int,
) -> BulkOutcome:
    """``BulkOutcome(...)`` of a job sent in this run, at half the cost: every job has one."""
    if not _OUTCOME_BY_HAND:
        return BulkOutcome(
            to=to, status=status, tracking_id=tracking_id, error=error, attempts=attempts,
            job=job, index=index,
        )
    set_to, set_status, set_tracking_id, set_error, set_attempts, set_job, set_index, set_replayed = (
        _OUTCOME_SLOTS
    )
    outcome: BulkOutcome = object.__new__(BulkOutcome)
    set_to(outcome, to)
    set_status(outcome, status)
    set_tracking_id(outcome, tracking_id)
    set_error(outcome, error)
    set_attempts(outcome, attempts)
    set_job(outcome, job)
    set_index(outcome, index)
    set_replayed(outcome, False)
    return outcome


def _unreadable(exc: Exception, attempts: int) -> TransportError:
    """The error of an answer the service accepted but the flavour could not read (a flavour
    bug): who was sent what is not known, so its jobs are unknown, never resent."""
    error = TransportError(
        f"unexpected {type(exc).__name__} while reading an accepted answer", outcome_unknown=True
    )
    error.attempts = attempts
    return error


def _status_of(error: MMSError) -> OutcomeStatus:
    return OutcomeStatus.UNKNOWN if classify(error) is Verdict.UNKNOWN else OutcomeStatus.REJECTED


async def _outcome(
    pipeline: Pipeline,
    request: PreparedRequest,
    result: ReadResult,
    *,
    before_wire: Callable[[], Awaitable[None]] | None = None,
    stop: StopToken | None = None,
) -> Outcome:
    """The outcome of one request; an error of ``before_wire`` (the journal) is raised, not an outcome."""
    to = request.recipients[0]
    delivered = await pipeline.attempt(request, before_wire=before_wire, stop=stop)
    if isinstance(delivered, MMSError):
        return Outcome(to=to, status=_status_of(delivered), error=delivered, attempts=delivered.attempts)
    answer, attempts = delivered
    try:
        tracking_id = result(answer).tracking_id
    except Exception as exc:
        error = _unreadable(exc, attempts)
        return Outcome(to=to, status=OutcomeStatus.UNKNOWN, error=error, attempts=attempts)
    return Outcome(
        to=to, status=OutcomeStatus.ACCEPTED, tracking_id=tracking_id, attempts=attempts
    )


def group_jobs(content: MMS | str, participants: Sequence[str], **shared: Any) -> list[BulkJob]:
    """A group send as bulk jobs (one per participant, the others display-only), for a journal.

    ``shared`` are :class:`BulkJob` fields every job gets (``client_reference``, ``from_mask``,
    a saved template's ``custom_texts`` or ``subject``...).
    """
    content_field: dict[str, Any] = {"mms" if isinstance(content, MMS) else "mms_id": content}
    return [
        BulkJob(
            to=person, to_displayonly=(*participants[:index], *participants[index + 1:]),
            **content_field, **shared,
        )
        for index, person in enumerate(participants)
    ]


async def run_group(
    pipeline: Pipeline,
    requests: Sequence[PreparedRequest],
    result: ReadResult,
    progress: Callable[[Outcome], object] | None = None,
) -> GroupResult:
    """Send each request concurrently and collect one outcome per recipient.

    An error of ``progress`` is raised once every request is answered (and every outcome passed
    to ``progress``), so that none is left running unseen.
    """
    failures: list[Exception] = []

    async def one(request: PreparedRequest) -> Outcome:
        outcome = await _outcome(pipeline, request, result)
        if progress is not None:
            try:
                progress(outcome)
            except Exception as exc:
                failures.append(exc)
        return outcome

    outcomes = await asyncio.gather(*(one(request) for request in requests))
    if failures:
        raise failures[0]
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


def _settled(
    delivered: tuple[Answer, int] | MMSError, to: str, tracking_id: ReadTrackingId, job: BulkJob,
    index: int,
) -> BulkOutcome:
    """The job's outcome from what :meth:`Pipeline.attempt` returned."""
    if isinstance(delivered, MMSError):
        return _bulk_outcome(
            to, _status_of(delivered), None, delivered, delivered.attempts, job, index
        )
    answer, attempts = delivered
    try:
        read = tracking_id(answer)
    except Exception as exc:
        return _bulk_outcome(
            to, OutcomeStatus.UNKNOWN, None, _unreadable(exc, attempts), attempts, job, index
        )
    return _bulk_outcome(to, _ACCEPTED, read, None, attempts, job, index)


def _key_taken(job: BulkJob, index: int) -> BulkOutcome:
    """The rejected outcome of a job whose key the journal holds for another recipient: that
    job's outcome is not this one's, and sending would leave the journal naming the wrong person."""
    return _unprepared(
        ValidationError("key", "is the key of a job to another recipient in this journal"), job, index
    )


def _unprepared(exc: Exception, job: BulkJob, index: int) -> BulkOutcome:
    """The rejected outcome of a job that could not be prepared, whatever it held."""
    error = exc if isinstance(exc, MMSError) else MMSError(
        f"the job could not be prepared: {type(exc).__name__}: {exc}"
    )
    try:
        to = str(job.to) if isinstance(job, BulkJob) else "?"
    except Exception:  # a job whose fields cannot even be read
        to = "?"
    return BulkOutcome(
        to=to,
        status=OutcomeStatus.REJECTED,
        error=error,
        job=job,
        index=index,
    )


async def _journaled(
    index: int,
    job: BulkJob,
    request: PreparedRequest,
    pipeline: Pipeline,
    tracking_id: ReadTrackingId,
    stop: StopToken,
    journal: BulkJournal,
) -> BulkOutcome:
    """Send a job at most once across runs: replay its journaled outcome, or record it around
    the send; one job per key at a time, also across runs sharing the journal."""
    to = request.recipients[0]
    key = job.key or job_key(request.identity or request.body)
    claims = journal.claims
    while key in claims:
        await claims[key].wait()
    claims[key] = claim = asyncio.Event()
    try:
        entry = await journal.entry(key)
        if entry is not None and entry.recipient != to:
            return _key_taken(job, index)
        if entry is not None and not entry.resend:
            if entry.state == SENDING:
                await journal.record(key, to, OutcomeStatus.UNKNOWN)
            return _replayed(entry, job, index)
        outcome = _settled(
            await pipeline.attempt(
                request, before_wire=partial(journal.sending, key, to), stop=stop
            ),
            to, tracking_id, job, index,
        )
        await journal.record(
            key, to, outcome.status, tracking_id=outcome.tracking_id, error=outcome.error
        )
    finally:
        del claims[key]
        claim.set()
    return outcome


class _Tally:
    """Counts of a bulk run, reported to ``progress`` after every outcome (and only counted by
    status when there is a ``progress`` to report them to)."""

    __slots__ = ("counts", "done", "progress", "started")

    def __init__(self, progress: Callable[[BulkProgress], object] | None) -> None:
        self.progress = progress
        self.started = 0
        self.done = 0
        self.counts = dict.fromkeys(OutcomeStatus, 0)

    def record(self, outcome: BulkOutcome, in_flight: int) -> None:
        self.done += 1
        if self.progress is not None:
            self.counts[outcome.status] += 1
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

    def record_ending(self, outcome: BulkOutcome, in_flight: int) -> None:
        """:meth:`record` for a run that is ending: a ``progress`` that fails (again) is logged,
        so it neither keeps the outcomes after this one from it nor hides the run's own error."""
        try:
            self.record(outcome, in_flight)
        except Exception:
            pipeline_log.warning(
                "bulk progress callback failed for job %d as the run ended", outcome.index,
                exc_info=True,
            )


_END: Any = object()


async def _outlast(
    tasks: Iterable[asyncio.Task[Any]], cancelled_again: Callable[[], object] | None = None
) -> None:
    """Wait until ``tasks`` are done, also if this task is cancelled meanwhile (the cancellation
    is raised after, and ``cancelled_again`` called at once): a request on the wire is never
    cancelled by its run stopping."""
    cancelled = False
    pending = {task for task in tasks if not task.done()}
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
            if cancelled_again is not None:
                cancelled_again()
        pending = {task for task in pending if not task.done()}
    if cancelled:
        raise asyncio.CancelledError


async def stream_bulk(
    jobs: Iterable[BulkJob] | AsyncIterable[BulkJob],
    prepare: Prepare,
    pipeline: Pipeline,
    tracking_id: ReadTrackingId,
    *,
    max_pending: int,
    progress: Callable[[BulkProgress], object] | None = None,
    journal: BulkJournal | None = None,
) -> AsyncGenerator[BulkOutcome, None]:
    """Run ``jobs`` with at most ``max_pending`` under way, yielding outcomes as they complete.

    Up to ``max_pending`` worker coroutines each take the next job when they are free, so jobs
    are read lazily and a job costs no task of its own (a task, its context and its callbacks
    per job were most of what set the garbage collector off in long runs). The pool grows only
    into in-flight slots that are free (and when a request gives its slot up to wait for a
    retry): a worker beyond them would wait for a slot, a future and a wake-up per job, and
    send nothing sooner. A job is under way from when it is taken until its outcome is yielded,
    so a caller slower than the wire holds the run rather than letting outcomes pile up. A plain
    iterable is read with ``next`` (it cannot be interrupted, so workers need no lock); an async
    one under a lock. If the run is left, cancelled or fails,
    workers waiting for a job or a start are stopped, those on the wire finish, and their
    outcomes are recorded but not yielded.
    """
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    tally = _Tally(progress)
    stop = StopToken(backing_off=lambda: grow(0))
    loop = asyncio.get_running_loop()
    iterator = None if isinstance(jobs, AsyncIterable) else iter(jobs)
    source = aiter(jobs) if isinstance(jobs, AsyncIterable) else None
    taking = asyncio.Lock()
    finished: deque[BulkOutcome | BaseException | None] = deque()
    wake: asyncio.Future[None] | None = None
    workers: set[asyncio.Task[None]] = set()
    waiting: set[asyncio.Task[None]] = set()
    unstarted = 0  # workers created that have not run yet (each will want a slot)
    room: asyncio.Future[None] | None = None  # workers wait here while the caller lags behind

    def put(item: BulkOutcome | BaseException | None) -> None:
        finished.append(item)
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def take(me: asyncio.Task[None]) -> BulkJob:
        assert source is not None
        waiting.add(me)
        try:
            async with taking:
                if stop.stopped:
                    return _END  # type: ignore[no-any-return]
                try:
                    return await anext(source)
                except StopAsyncIteration:
                    return _END  # type: ignore[no-any-return]
        finally:
            waiting.discard(me)

    async def wait_for_room(me: asyncio.Task[None]) -> None:
        """Wait while ``max_pending`` jobs are taken and not yet yielded: a caller slower than the
        wire holds the run there, instead of outcomes piling up."""
        nonlocal room
        waiting.add(me)
        try:
            while tally.started - tally.done >= max_pending and not stop.stopped:
                if room is None or room.done():
                    room = loop.create_future()
                await room
        finally:
            waiting.discard(me)

    async def work() -> None:
        nonlocal unstarted
        unstarted -= 1
        me = asyncio.current_task()
        assert me is not None
        slots = pipeline.slots
        try:
            while not stop.stopped:
                if tally.started - tally.done >= max_pending:
                    await wait_for_room(me)
                    continue
                job = next(iterator, _END) if iterator is not None else await take(me)
                if job is _END:
                    return
                index = tally.started
                tally.started += 1
                if slots.free > 1 + unstarted:
                    grow(1)
                try:
                    request = prepare(job)
                except Exception as exc:  # one bad job, whatever it holds, must not end the run
                    outcome = _unprepared(exc, job, index)
                else:
                    if journal is not None:
                        outcome = await _journaled(
                            index, job, request, pipeline, tracking_id, stop, journal
                        )
                    else:  # what Pipeline.attempt does with no hook, a coroutine less per job
                        try:
                            answer, attempts = await pipeline.deliver(request, stop=stop)
                        except MMSError as error:
                            outcome = _bulk_outcome(
                                request.recipients[0], _status_of(error), None, error,
                                error.attempts, job, index,
                            )
                        else:
                            try:
                                read = tracking_id(answer)
                            except Exception as exc:
                                outcome = _bulk_outcome(
                                    request.recipients[0], OutcomeStatus.UNKNOWN, None,
                                    _unreadable(exc, attempts), attempts, job, index,
                                )
                            else:
                                outcome = _bulk_outcome(
                                    request.recipients[0], _ACCEPTED, read, None, attempts, job,
                                    index,
                                )
                            del answer
                finished.append(outcome)
                if wake is not None and not wake.done():
                    wake.set_result(None)
                # Hold no answer or outcome while waiting for the next one: freed now, their
                # memory is reused warm by the next job instead of once every worker has moved on.
                del outcome
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the job source or the journal failed: the run ends with it
            put(exc)
        finally:
            put(None)

    def start() -> None:
        nonlocal unstarted
        unstarted += 1
        workers.add(loop.create_task(work()))

    def grow(mine: int) -> None:
        """Start a worker if the pipeline has a slot free for it (besides ``mine``, the caller's
        next request) and none is idle: one more would only wait for a slot, a wake-up per job."""
        if (
            not waiting and len(workers) < max_pending and not stop.stopped
            and pipeline.slots.free > mine + unstarted
        ):
            start()

    start()
    ended = 0
    try:
        while ended < len(workers):
            if not finished:
                wake = loop.create_future()
                await wake
                continue
            item = finished.popleft()
            if type(item) is BulkOutcome:
                if progress is None:
                    tally.done += 1
                else:
                    tally.record(item, tally.started - tally.done - 1)
                if room is not None and not room.done():
                    room.set_result(None)
                yield item
            elif item is None:
                ended += 1
            else:
                assert isinstance(item, BaseException)
                raise item
    finally:
        try:
            if not all(worker.done() for worker in workers):
                stop.stop()

                def cancel_waiting() -> None:
                    for worker in list(waiting):
                        worker.cancel()

                cancel_waiting()
                await _outlast(workers, cancel_waiting)  # again: a job source may swallow one
        finally:
            while finished:
                item = finished.popleft()
                if item is not None and not isinstance(item, BaseException):
                    tally.record_ending(item, tally.started - tally.done - 1)

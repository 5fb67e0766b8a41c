"""Bulk runs and batch sends through a flavour whose requests carry many recipients (SMS REST).

Jobs whose requests differ only in the recipient (same content, sender and options) are packed
into one request of at most the flavour's ``max_recipients``. Every recipient still gets its own
outcome: accepted with the batch's id when the answer lists them, rejected or unknown with the
batch's error otherwise (a batch whose answer was lost leaves every recipient in it unknown). The
journal records each recipient under its own job key, as it would for one request per job, so a
run can resume through another flavour.

At most ``max_pending`` jobs are under way (packed or on the wire), so memory stays flat however
many jobs there are. A partial batch is sent when no more jobs can be taken in: the jobs ran out,
``max_pending`` jobs are under way, an async source has had no job ready for ``_LINGER`` seconds,
or a job must wait for an earlier one with the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from typing import Any, Protocol

from attrs import define

from mmsjson._fanout import (
    _END,
    _key_taken,
    _outlast,
    _replayed,
    _status_of,
    _Tally,
    _unprepared,
    _unreadable,
)
from mmsjson._pipeline import Pipeline, StopToken
from mmsjson.errors import MMSError, TransportError
from mmsjson.flavours.base import Answer
from mmsjson.journal import SENDING, BulkJournal, job_key
from mmsjson.models import (
    BulkJob,
    BulkOutcome,
    BulkProgress,
    GroupResult,
    Outcome,
    OutcomeStatus,
    SendResult,
)
from mmsjson.transport import PreparedRequest

__all__ = ["Batcher", "batcher_of", "run_batches", "stream_batched"]

#: How long jobs packed from an async source wait for more before their batch is sent anyway,
#: in seconds: a source that waits briefly per job (a file read in a thread) still fills batches.
_LINGER = 0.05


class Batcher(Protocol):
    """What a flavour offers to carry many recipients per request."""

    max_recipients: int

    def batch_key(self, request: PreparedRequest) -> bytes: ...

    def pack(self, requests: Sequence[PreparedRequest]) -> PreparedRequest: ...

    def accepted_recipients(self, answer: Answer) -> frozenset[str] | None: ...

    def send_result(self, answer: Answer) -> SendResult: ...


def batcher_of(flavour: object) -> Batcher | None:
    """``flavour`` if its requests may carry more than one recipient, else None."""
    if getattr(flavour, "max_recipients", 1) > 1 and callable(getattr(flavour, "pack", None)):
        return flavour  # type: ignore[return-value]
    return None


async def _deliver_batch(
    pipeline: Pipeline,
    batcher: Batcher,
    request: PreparedRequest,
    *,
    before_wire: Callable[[], Any] | None = None,
    stop: StopToken | None = None,
) -> list[Outcome]:
    """One outcome per recipient of ``request``, in its order; an error of ``before_wire`` (the
    journal) is raised, not an outcome: the batch was not sent, and the run stops as it would for
    one request per job."""
    delivered = await pipeline.attempt(request, before_wire=before_wire, stop=stop)
    if isinstance(delivered, MMSError):
        status = _status_of(delivered)
        return [
            Outcome(to=to, status=status, error=delivered, attempts=delivered.attempts)
            for to in request.recipients
        ]
    answer, attempts = delivered
    try:
        listed = batcher.accepted_recipients(answer)
        tracking_id = batcher.send_result(answer).tracking_id
    except Exception as exc:
        unreadable = _unreadable(exc, attempts)
        return [
            Outcome(to=to, status=OutcomeStatus.UNKNOWN, error=unreadable, attempts=attempts)
            for to in request.recipients
        ]
    outcomes = []
    for to in request.recipients:
        if listed is None or to in listed:
            outcomes.append(Outcome(
                to=to, status=OutcomeStatus.ACCEPTED, tracking_id=tracking_id, attempts=attempts
            ))
        else:
            missing = TransportError(
                f"batch {tracking_id} was accepted but its answer does not list this recipient",
                outcome_unknown=True,
            )
            outcomes.append(
                Outcome(to=to, status=OutcomeStatus.UNKNOWN, error=missing, attempts=attempts)
            )
    return outcomes


async def run_batches(
    pipeline: Pipeline,
    requests: Sequence[PreparedRequest],
    batcher: Batcher,
    progress: Callable[[Outcome], object] | None = None,
) -> GroupResult:
    """Send each batch concurrently; one outcome per recipient, in the order of the batches. An
    error of ``progress`` is raised once every batch is answered, as :func:`run_group` does."""
    failures: list[Exception] = []

    async def one(request: PreparedRequest) -> list[Outcome]:
        outcomes = await _deliver_batch(pipeline, batcher, request)
        if progress is not None:
            for outcome in outcomes:
                try:
                    progress(outcome)
                except Exception as exc:
                    failures.append(exc)
        return outcomes

    results = await asyncio.gather(*(one(request) for request in requests))
    if failures:
        raise failures[0]
    return GroupResult(outcomes=tuple(o for outcomes in results for o in outcomes))


@define
class _Item:
    index: int
    job: BulkJob
    request: PreparedRequest
    key: str | None = None
    #: This run's claim on ``key`` in the journal, from when it is looked up until its outcome.
    claim: asyncio.Event | None = None

    @property
    def to(self) -> str:
        return self.request.recipients[0]


def _bulk_outcome(item: _Item, outcome: Outcome) -> BulkOutcome:
    return BulkOutcome(
        to=outcome.to, status=outcome.status, tracking_id=outcome.tracking_id,
        error=outcome.error, attempts=outcome.attempts, job=item.job, index=item.index,
    )


async def _not_sent(journal: BulkJournal, items: list[_Item]) -> None:
    """Undo "may be on the wire" for ``items`` when the rest of their batch could not be journaled:
    the batch is not sent, so each is recorded as surely not accepted (resent by the rerun). If
    even that fails they stay "sending", which a rerun reports as unknown: never sent twice."""
    unsent = TransportError(
        "not sent: the journal could not be written", outcome_unknown=False, retryable=True
    )
    with contextlib.suppress(Exception):
        await asyncio.gather(*(
            journal.record(item.key, item.to, OutcomeStatus.REJECTED, error=unsent)
            for item in items if item.key is not None
        ))


async def _run_pack(
    items: list[_Item],
    batcher: Batcher,
    pipeline: Pipeline,
    stop: StopToken,
    journal: BulkJournal | None,
) -> list[BulkOutcome]:
    request = batcher.pack([item.request for item in items])
    before_wire = None
    if journal is not None:
        record = journal

        async def before_wire() -> None:
            keyed = [(item, item.key) for item in items if item.key is not None]
            written = await asyncio.gather(
                *(record.sending(key, item.to) for item, key in keyed), return_exceptions=True
            )
            failed = next((w for w in written if isinstance(w, BaseException)), None)
            if failed is not None:
                await _not_sent(record, [i for (i, _), w in zip(keyed, written, strict=True) if w is None])
                raise failed

    outcomes = await _deliver_batch(pipeline, batcher, request, before_wire=before_wire, stop=stop)
    by_number = {outcome.to: outcome for outcome in outcomes}
    results = [_bulk_outcome(item, by_number[item.to]) for item in items]
    if journal is not None:
        await asyncio.gather(*(
            journal.record(
                item.key, result.to, result.status, tracking_id=result.tracking_id,
                error=result.error,
            )
            for item, result in zip(items, results, strict=True) if item.key is not None
        ))
    return results


class _BatchRun:
    """The state of one batched bulk run: open packs, batches under way, claimed job keys."""

    def __init__(
        self,
        batcher: Batcher,
        prepare: Callable[[BulkJob], PreparedRequest],
        pipeline: Pipeline,
        journal: BulkJournal | None,
    ) -> None:
        self.batcher = batcher
        self.prepare = prepare
        self.pipeline = pipeline
        self.journal = journal
        self.stop = StopToken()
        self.packs: dict[bytes, list[_Item]] = {}
        self.members: dict[bytes, set[str]] = {}
        self.buffered = 0
        self.in_flight = 0
        self.pending: dict[asyncio.Task[list[BulkOutcome]], list[_Item]] = {}
        #: Jobs being worked on by key, shared with every run on the journal (see
        #: :attr:`BulkJournal.claims`); ``claimed`` are this run's.
        self.claims: dict[str, asyncio.Event] = journal.claims if journal is not None else {}
        self.claimed: set[str] = set()
        self.ready: deque[BulkOutcome] = deque()

    @property
    def under_way(self) -> int:
        """Jobs taken in and not yet reported: packed, on the wire, or with an outcome to yield."""
        return self.buffered + self.in_flight + len(self.ready)

    def launch(self, pack_key: bytes) -> None:
        items = self.packs.pop(pack_key)
        self.members.pop(pack_key)
        self.buffered -= len(items)
        self.in_flight += len(items)
        task = asyncio.create_task(
            _run_pack(items, self.batcher, self.pipeline, self.stop, self.journal)
        )
        # Released when the batch ends, also while the run waits for another run's claim.
        task.add_done_callback(lambda _: self.release(items))
        self.pending[task] = items

    def launch_all(self) -> None:
        for pack_key in list(self.packs):
            self.launch(pack_key)

    def add(self, item: _Item) -> None:
        pack_key = self.batcher.batch_key(item.request)
        if item.to in self.members.get(pack_key, ()):
            self.launch(pack_key)
        self.packs.setdefault(pack_key, []).append(item)
        self.members.setdefault(pack_key, set()).add(item.to)
        self.buffered += 1
        if len(self.packs[pack_key]) >= self.batcher.max_recipients:
            self.launch(pack_key)
        elif self.buffered >= self.batcher.max_recipients:
            self.launch(max(self.packs, key=lambda k: len(self.packs[k])))

    def item(self, index: int, job: BulkJob) -> _Item | None:
        """The job's item, or None when it was refused before I/O (its outcome is ready)."""
        try:
            request = self.prepare(job)
        except Exception as exc:  # one bad job, whatever it holds, must not end the run
            self.ready.append(_unprepared(exc, job, index))
            return None
        item = _Item(index, job, request)
        if self.journal is not None:
            item.key = job.key or job_key(request.identity or request.body)
        return item

    async def admit(self, item: _Item) -> None:
        """Pack ``item``, or replay its journaled outcome (its key must not be claimed)."""
        if self.journal is not None and item.key is not None:
            item.claim = self.claims[item.key] = asyncio.Event()
            self.claimed.add(item.key)
            try:
                entry = await self.journal.entry(item.key)
                if entry is not None and entry.recipient != item.to:
                    self.ready.append(_key_taken(item.job, item.index))
                    self.release([item])
                    return
                if entry is not None and not entry.resend:
                    if entry.state == SENDING:
                        await self.journal.record(item.key, item.to, OutcomeStatus.UNKNOWN)
                    self.ready.append(_replayed(entry, item.job, item.index))
                    self.release([item])
                    return
            except BaseException:
                self.release([item])
                raise
        self.add(item)

    def release(self, items: list[_Item]) -> None:
        """Let the next job with each item's key go ahead, in this run or another."""
        for item in items:
            claim = item.claim
            if claim is not None and item.key is not None:
                item.claim = None
                if self.claims.get(item.key) is claim:
                    del self.claims[item.key]
                self.claimed.discard(item.key)
                claim.set()

    def finished(self, task: asyncio.Task[list[BulkOutcome]]) -> list[BulkOutcome]:
        items = self.pending.pop(task)
        self.in_flight -= len(items)
        self.release(items)
        return task.result()


async def stream_batched(
    jobs: Iterable[BulkJob] | AsyncIterable[BulkJob],
    prepare: Callable[[BulkJob], PreparedRequest],
    pipeline: Pipeline,
    batcher: Batcher,
    *,
    max_pending: int,
    progress: Callable[[BulkProgress], object] | None = None,
    journal: BulkJournal | None = None,
) -> AsyncGenerator[BulkOutcome, None]:
    """Run ``jobs`` packed into batches, at most ``max_pending`` jobs under way; yield an outcome
    per job as its batch completes."""
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    tally = _Tally(progress)
    run = _BatchRun(batcher, prepare, pipeline, journal)
    iterator = None if isinstance(jobs, AsyncIterable) else iter(jobs)
    source = aiter(jobs) if isinstance(jobs, AsyncIterable) else None
    #: The next job of an async source, read while batches are under way: a source that waits
    #: (a queue, a slow query) holds neither the outcomes to yield nor, past ``_LINGER`` seconds,
    #: the jobs already packed. ``waiting_since`` is when it began to wait (None: it has not).
    reading: asyncio.Task[BulkJob] | None = None
    waiting_since: float | None = None
    loop = asyncio.get_running_loop()
    exhausted = False
    held: _Item | None = None
    try:
        while True:
            if held is not None:
                key = held.key
                assert key is not None
                if key not in run.claims:
                    await run.admit(held)
                    held = None
                elif key not in run.claimed:  # another run's: wait for its outcome
                    await run.claims[key].wait()
                    continue
            while not exhausted and held is None and run.under_way < max_pending:
                if source is None:
                    assert iterator is not None
                    job = next(iterator, _END)
                    if job is _END:
                        exhausted = True
                        break
                else:
                    if reading is None:
                        reading = asyncio.ensure_future(anext(source))
                        await asyncio.sleep(0)  # one turn: a source with a job ready gives it now
                    if not reading.done():
                        if waiting_since is None:
                            waiting_since = loop.time()
                        break
                    waiting_since = None
                    try:
                        job = reading.result()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    finally:
                        if reading.done():
                            reading = None
                item = run.item(tally.started, job)
                tally.started += 1
                if item is None:
                    continue
                if item.key is not None and item.key in run.claims:
                    held = item
                    break
                await run.admit(item)
            if waiting_since is None or loop.time() - waiting_since >= _LINGER:
                run.launch_all()
            while run.ready:
                outcome = run.ready.popleft()
                tally.record(outcome, run.in_flight)
                yield outcome
            waits: set[asyncio.Future[Any]] = set(run.pending)
            if reading is not None:
                waits.add(reading)
            if not waits:
                if exhausted and held is None:
                    return
                continue
            linger = None
            if waiting_since is not None and run.packs:
                linger = max(0.0, waiting_since + _LINGER - loop.time())
            done, _ = await asyncio.wait(waits, timeout=linger, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not reading:
                    run.ready.extend(run.finished(task))  # type: ignore[arg-type]
    finally:
        if reading is not None:
            reading.cancel()
            await _outlast([reading], reading.cancel)
            if not reading.cancelled():
                reading.exception()  # the run ends with its own error, or was left
        for items in run.packs.values():
            run.release(items)
        run.stop.stop()
        try:
            await _outlast(run.pending)
        finally:
            for task in list(run.pending):
                if task.cancelled() or task.exception() is not None:  # not sent, or the run's error
                    run.in_flight -= len(run.pending.pop(task))
                else:
                    run.ready.extend(run.finished(task))
            while run.ready:
                tally.record_ending(run.ready.popleft(), run.in_flight)

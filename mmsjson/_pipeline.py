"""The send pipeline every request takes: in-flight cap, limiter, transport, classify, retry.

It knows nothing of wire formats (the flavour reads answers) nor of fan-out (which talks to it
through two hooks): ``before_wire`` runs once, after the limiter let the first try start and before
its request is written (the journal records "may be on the wire" there), and a :class:`StopToken`
lets a stopping bulk run cancel requests that are still waiting while those on the wire finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import define

from mmsjson._log import pipeline_log, transport_log
from mmsjson.errors import ApiError, MMSError, ThroughputExceeded, TransportError
from mmsjson.flavours.base import Answer
from mmsjson.limiting.base import Limiter
from mmsjson.retry import RetryPolicy, Verdict, classify
from mmsjson.transport import PreparedRequest, RawResponse, Transport

__all__ = ["ClientStats", "Pipeline", "StopToken"]

_NO_TICKETS: list[Any] = []
#: The service's throughput window: a request refused with E113 is retried once it has passed.
_WINDOW = 1.0


@define
class ClientStats:
    """Counters a user can read: requests sent, retries, and how the answers went."""

    requests: int = 0
    retries: int = 0
    accepted: int = 0
    rejected: int = 0
    unknown: int = 0
    throttled: int = 0


class StopToken:
    """Stops the requests of a run that have not reached the wire; those on it finish.

    :meth:`stop` cancels every request waiting for an in-flight slot, the limiter or a retry's
    back-off, and makes later ones stop before they start. A request whose ``before_wire`` hook ran
    is never cancelled by it: on the wire it finishes, and waiting to be retried it ends with the
    error of its last try, so its outcome is always learned and recorded.

    ``backing_off`` is called when a request of the run gives its in-flight slot up to wait for a
    retry (a bulk run then lets another job have the slot).
    """

    __slots__ = ("_waiting", "backing_off", "stopped")

    def __init__(self, backing_off: Callable[[], object] | None = None) -> None:
        self.stopped = False
        self.backing_off = backing_off
        self._waiting: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        self.stopped = True
        waiting, self._waiting = self._waiting, set()
        for task in waiting:
            task.cancel()


class _Slots:
    """The in-flight cap: a count while slots are free, first come first served when none is.

    It is :class:`asyncio.Semaphore` without its costs on the hot path (a coroutine per acquire,
    a generator per ``locked()``): a send takes a free slot with a subtraction. ``free`` is above
    zero only while nobody waits, because :meth:`release` hands a slot straight to the first
    waiter instead of counting it.
    """

    __slots__ = ("_waiting", "free")

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait until :meth:`release` hands over a slot (call it only when ``free`` is 0)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed over as the wait was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
            raise

    def release(self) -> None:
        waiting = self._waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


def _who(request: PreparedRequest) -> str:
    """The recipients for a log line: a batch of hundreds is summed up, not listed."""
    shown = ",".join(request.recipients[:3])
    more = len(request.recipients) - 3
    return f"{shown} and {more} more" if more > 0 else shown


def _cancelling() -> bool:
    """Whether the running task is being cancelled (a CancelledError it sees is then its own)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _stopped_after(error: MMSError | None, stop: StopToken, task: asyncio.Task[Any]) -> None:
    """Raise ``error`` instead of the cancellation when ``stop`` cancelled a request between tries.

    Its first try went on the wire and ``error`` is what the last one got, so that, not "stopped
    before sending", is its outcome: a stopped run records a throttled request as surely not
    accepted (resent on resume) and a lost answer as unknown. A cancellation from elsewhere
    (the caller's) is left as it is.
    """
    if error is not None and stop.stopped and task.cancelling() == 1:
        task.uncancel()
        raise error from None


class Pipeline:
    """Delivers prepared requests, retrying only what :func:`~mmsjson.retry.classify` allows."""

    def __init__(
        self,
        *,
        transport: Transport,
        read: Callable[[RawResponse], Answer],
        limiter: Limiter[Any] | None,
        retry: RetryPolicy,
        max_in_flight: int,
        stats: ClientStats,
    ) -> None:
        self.transport = transport
        self.limiter = limiter
        self.retry = retry
        self.stats = stats
        self._read = read
        #: The in-flight cap; its ``free`` count is what a bulk run may grow into.
        self.slots = _Slots(max_in_flight)

    async def _wait_for_start(self, cost: int) -> list[Any]:
        slots = self.slots
        if slots.free:
            slots.free -= 1
        else:
            await slots.wait()
        tickets: list[Any] = []
        if self.limiter is None:
            return tickets
        try:
            for _ in range(cost):
                tickets.append(await self.limiter.acquire())
        except BaseException:
            self._finish(tickets)
            raise
        return tickets

    def _finish(self, tickets: list[Any]) -> None:
        if self.limiter is not None:
            for ticket in tickets:
                if ticket is not None:
                    self.limiter.finished(ticket)
        self.slots.release()

    async def deliver(
        self,
        request: PreparedRequest,
        *,
        before_wire: Callable[[], Awaitable[None]] | None = None,
        stop: StopToken | None = None,
    ) -> tuple[Answer, int]:
        """Send ``request`` until accepted or :func:`classify` forbids another try.

        Returns the accepted answer and the number of tries; raises the last error, its
        ``attempts`` set. An error raised by ``before_wire`` propagates as it is: the request
        was not sent, and its outcome is not the API's. ``stop`` cancels it only while it
        waits, never between ``before_wire`` and the answer's arrival.
        """
        task: asyncio.Task[Any] | None = None
        attempts = 0
        error: MMSError | None = None
        while True:
            attempts += 1
            if stop is not None and stop.stopped:
                raise asyncio.CancelledError if error is None else error
            if stop is not None and self.limiter is None and self.slots.free:
                self.slots.free -= 1
                tickets = _NO_TICKETS
            elif stop is not None:
                task = task or asyncio.current_task()
                assert task is not None
                stop._waiting.add(task)
                try:
                    tickets = await self._wait_for_start(request.cost)
                except asyncio.CancelledError:
                    _stopped_after(error, stop, task)
                    raise
                finally:
                    stop._waiting.discard(task)
            elif self.limiter is None:
                slots = self.slots
                if slots.free:
                    slots.free -= 1
                else:
                    await slots.wait()
                tickets = _NO_TICKETS
            else:
                tickets = await self._wait_for_start(request.cost)
            try:
                if before_wire is not None:
                    await before_wire()
                    before_wire = None
                self.stats.requests += 1
                if transport_log.isEnabledFor(logging.DEBUG):
                    transport_log.debug(
                        "%s to %s, try %d: %s", request.action, _who(request),
                        attempts, request.url,
                    )
                try:
                    answer = self._read(await self.transport.post(request))
                except MMSError as exc:
                    error = exc
                except Exception as exc:  # a transport or flavour bug must not lose the outcome
                    error = TransportError(
                        f"unexpected {type(exc).__name__} while sending", outcome_unknown=True
                    )
                except asyncio.CancelledError:
                    if _cancelling():
                        raise
                    error = TransportError(  # nobody cancelled this task: a transport bug
                        "unexpected CancelledError while sending", outcome_unknown=True
                    )
                else:
                    self.stats.accepted += 1
                    return answer, attempts
            finally:
                if tickets:
                    self._finish(tickets)
                else:  # no limiter tickets: _Slots.release inlined
                    slots = self.slots
                    if slots._waiting:
                        slots.release()
                    else:
                        slots.free += 1
            error.attempts = attempts
            await self._after_failure(request, error, attempts, stop, task)

    async def attempt(
        self,
        request: PreparedRequest,
        *,
        before_wire: Callable[[], Awaitable[None]] | None = None,
        stop: StopToken | None = None,
    ) -> tuple[Answer, int] | MMSError:
        """:meth:`deliver` for fan-out: the request's last error is returned as a value, so that
        an error of ``before_wire`` (the journal could not record the send) is the only one raised:
        the request was not sent, and the run must stop rather than record an outcome."""
        hook_error: BaseException | None = None
        hook = before_wire
        if hook is not None:

            async def guarded() -> None:
                nonlocal hook_error
                try:
                    await hook()
                except BaseException as exc:
                    hook_error = exc
                    raise

            before_wire = guarded
        try:
            return await self.deliver(request, before_wire=before_wire, stop=stop)
        except MMSError as error:
            if error is hook_error:
                raise
            return error

    async def _after_failure(
        self,
        request: PreparedRequest,
        error: MMSError,
        attempts: int,
        stop: StopToken | None,
        task: asyncio.Task[Any] | None,
    ) -> None:
        """Raise ``error`` unless the policy retries it; then wait the back-off."""
        if isinstance(error, ThroughputExceeded):
            self.stats.throttled += 1
            if self.limiter is not None:
                self.limiter.throttled()
        if not self.retry.should_retry(error, attempts):
            if classify(error) is Verdict.UNKNOWN:
                self.stats.unknown += 1
                pipeline_log.warning(
                    "%s to %s: outcome unknown after %d tries, not resent: %s",
                    request.action, _who(request), attempts, error,
                )
            else:
                self.stats.rejected += 1
            raise error
        self.stats.retries += 1
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        if isinstance(error, ThroughputExceeded):
            retry_after = max(retry_after or 0.0, getattr(self.limiter, "window", _WINDOW))
        wait = self.retry.delay(attempts, retry_after)
        pipeline_log.info(
            "%s to %s: try %d failed (%s); retrying in %.3f s",
            request.action, _who(request), attempts, error, wait,
        )
        if stop is not None:
            task = task or asyncio.current_task()
            assert task is not None
            if stop.stopped:
                raise error
            if stop.backing_off is not None:
                stop.backing_off()
            stop._waiting.add(task)
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                _stopped_after(error, stop, task)
                raise
            finally:
                stop._waiting.discard(task)
        else:
            await asyncio.sleep(wait)

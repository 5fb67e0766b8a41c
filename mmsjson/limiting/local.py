"""The throughput limiter every request of a client goes through.

Two parts work together. An :class:`aiolimiter.AsyncLimiter` paces starts evenly at
``rate / (1 + margin)`` with a small burst that absorbs the event loop's timer lag (alone, a burst of
one loses about a tenth of the rate at 1000/s). A sliding-window log then guarantees the bound the
service enforces: never more than ``rate`` starts in any window of ``1 + margin`` seconds (alone, a
bucket of ``rate`` lets twice that start in one sliding second).

The service counts arrivals, not our starts, and a request that waits for a new connection
arrives later than one sent on a warm one. So each start stays in the window until its start time
*plus how much slower than the fastest request it was* lies a window in the past; the client tells
the limiter when each request finished. A slow request thus holds back the one that mirrors it a
window later, and no margin has to be wide enough for the worst delay.

When the service still answers E113 (another process shares the account, or the limit was
lowered), :meth:`ThroughputLimiter.throttled` halves the rate and pauses new starts for a window; the
rate then climbs back by a tenth of the configured rate each quiet second. All timing reads the
running loop's clock, so tests drive it with a virtual-time loop instead of sleeping.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from aiolimiter import AsyncLimiter

from mmsjson.limiting.base import LimiterStats

__all__ = ["ThroughputLimiter", "Ticket"]

_MIN_SLEEP = 1e-6


class Ticket:
    """One request start in the window; :meth:`ThroughputLimiter.finished` closes it."""

    __slots__ = ("at", "latency")

    def __init__(self, at: float) -> None:
        self.at = at
        self.latency: float | None = None


class ThroughputLimiter:
    """At most ``rate`` request starts in any sliding window of ``1 + margin`` seconds.

    ``rate`` is the account's throughput in requests per second. ``burst`` is how many starts the
    pacer may let through at once after a pause (default: 1% of the rate, at least 2). ``margin``
    (seconds, default 0.005) widens the window against network jitter; the sustained rate is
    ``rate / (1 + margin)``. One limiter serves every request of a client, retries included.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        margin: float = 0.005,
        min_fraction: float = 0.05,
        recovery_step: float = 0.1,
        latency_cap: float = 0.5,
    ) -> None:
        if not (isinstance(rate, int | float) and 1 <= rate < math.inf):
            raise ValueError(f"rate must be a number of requests per second of at least 1, not {rate!r}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1) seconds, not {margin!r}")
        self.rate = float(rate)
        self.margin = margin
        self.window = 1.0 + margin
        self.burst = burst if burst is not None else max(2, math.ceil(rate / 100))
        self.stats = LimiterStats()
        self._min_fraction = min_fraction
        self._recovery_step = recovery_step
        self._fraction = 1.0
        self._starts: deque[Ticket] = deque()
        self._latency_cap = latency_cap
        self._fastest = math.inf
        self._paused_until = -math.inf
        self._last_change = -math.inf
        self._limit = math.floor(self.rate)
        self._pacer = self._new_pacer()
        self._answered = asyncio.Event()
        self._waiting_for_answer = 0

    @property
    def current_rate(self) -> float:
        """The rate in force now: the configured rate, or less after E113."""
        return self.rate * self._fraction

    def _new_pacer(self) -> AsyncLimiter:
        pace = self.current_rate / self.window
        burst = max(1, min(self.burst, math.floor(pace)))
        return AsyncLimiter(burst, burst / pace)

    def _set_fraction(self, fraction: float, now: float) -> None:
        self._fraction = fraction
        self._limit = max(1, math.floor(self.rate * fraction))
        self._last_change = now
        self._pacer = self._new_pacer()

    def _recover(self, now: float) -> None:
        if self._fraction < 1.0 and now - self._last_change >= self.window:
            self._set_fraction(min(1.0, self._fraction + self._recovery_step), now)

    def _held_until(self, ticket: Ticket, now: float) -> float:
        """When ``ticket`` may have reached the service, at the latest, as far as we can tell."""
        latency = ticket.latency
        if latency is None:
            latency = now - ticket.at
        fastest = 0.0 if self._fastest is math.inf else self._fastest
        return ticket.at + max(0.0, min(latency, self._latency_cap) - fastest)

    async def acquire(self) -> Ticket:
        """Wait until one more request may start; pass the ticket to :meth:`finished` after it."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        waited = False
        while True:
            self._recover(loop.time())
            pause = self._paused_until - loop.time()
            if pause > 0:
                waited = True
                await asyncio.sleep(pause)
                continue
            pacer = self._pacer
            waited = waited or not pacer.has_capacity()
            await pacer.acquire()
            if pacer is self._pacer and loop.time() >= self._paused_until:
                break
        starts = self._starts
        while True:
            now = loop.time()
            horizon = now - self.window
            while starts and self._held_until(starts[0], now) <= horizon:
                starts.popleft()
            if len(starts) < self._limit:
                ticket = Ticket(now)
                starts.append(ticket)
                break
            waited = True
            head = starts[0]
            if head.latency is not None:
                await asyncio.sleep(max(self._held_until(head, now) - horizon, _MIN_SLEEP))
                continue
            fastest = 0.0 if self._fastest is math.inf else self._fastest
            latest = head.at + max(0.0, self._latency_cap - fastest) + self.window
            self._waiting_for_answer += 1
            try:
                async with asyncio.timeout_at(max(latest, now + _MIN_SLEEP)):
                    await self._answered.wait()
            except TimeoutError:
                pass
            finally:
                self._waiting_for_answer -= 1
        self.stats.acquired += 1
        if waited:
            self.stats.waited += 1
            self.stats.wait_seconds += now - began
        return ticket

    def finished(self, ticket: Ticket) -> None:
        """The request of ``ticket`` got its answer (or failed): its arrival time is now bounded."""
        latency = asyncio.get_running_loop().time() - ticket.at
        ticket.latency = latency
        self._fastest = min(self._fastest, latency)
        if self._waiting_for_answer:
            self._answered.set()
            self._answered = asyncio.Event()

    def throttled(self) -> None:
        """The service answered E113: slow down and pause new starts for one window.

        Several E113s from requests that were in flight together count as one back-off.
        """
        now = asyncio.get_running_loop().time()
        self.stats.throttled += 1
        if now < self._paused_until:
            return
        self.stats.backoffs += 1
        self._paused_until = now + self.window
        self._set_fraction(max(self._min_fraction, self._fraction / 2), self._paused_until)

    async def aclose(self) -> None:
        """Nothing to release: the limiter holds no connections."""

    def __repr__(self) -> str:
        return (
            f"<ThroughputLimiter rate={self.rate:g}/s current={self.current_rate:g}/s "
            f"window={self.window:g}s limit={self._limit} in_window={len(self._starts)} "
            f"throttled={self.stats.throttled}>"
        )

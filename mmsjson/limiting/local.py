"""The throughput limiter every request of a client goes through.

The service counts *arrivals* in a strict sliding second; the client sees only when a request
started (``s``) and when its answer came back (``a``). Its arrival lies in ``[s + u0, a - d0]``,
where ``u0`` and ``d0`` are the shortest uplink and downlink delays of the path. So the limiter
keeps one ticket per start and counts a ticket against the window until the start that takes its
place can no longer arrive within a second of it:

    release = s + window + (a - s) - floor,   floor = u0 + d0 (the shortest round trip seen)

and lets a start go only while fewer than ``rate`` tickets are unreleased. If R + 1 arrivals fell
in one second, the last of them to start found the other R unreleased, so it could not have
started. Each ticket is released on its own (a slow request holds back one later start, not all
of them), a request still in flight stays counted until its answer or ``latency_cap`` (which
must cover TCP loss recovery: several seconds), and until ``warmup_samples`` answers have come
back the floor is taken as 0, so early requests cannot arrive earlier than assumed. Round trips
of requests sent before the first answer came back are not samples: they opened the connections
(a TLS handshake can take most of a second), and a floor learned from them would let the first
requests on warm connections arrive far earlier than assumed.

``mode="exact"`` is that rule, with a cautious floor: the fastest round trip minus three times
its distance to the 10th percentile (a normal jitter's low tail is sparse, so the fastest of a few
hundred is not the fastest there will be). It is exact as long as no request's round trip falls
below that floor. It charges each ticket its whole round-trip excess, downlink jitter included:
the client sees only round trips, and the API's answers carry no arrival time that would tell
the two directions apart. It sustains ``rate / (window + mean excess)``: about 0.94 R over a
60 ± 20 ms uplink and 0.99 R over a 40 ms floor with 5 ms of jitter, the bound for any client
that does not know a request's delay before sending it.

``mode="paced"`` counts statistically instead. Each ticket is held for a window plus its round
trip's excess over the *median* round trip (capped at four spreads, so a loss spike does not hold a
slot for seconds): a start is assumed to arrive when a typical one does. On average a slot is then
held for one window, so tickets track expected arrival times rather than the worst case. What no
client can know is where a new start lands among the requests still in flight: the count a start
meets at the service scatters by about ``sqrt(R * spread / 2)`` (``spread`` the mean gap between
two uplink delays), so paced mode keeps a headroom of ``k`` such deviations below the rate. ``k``
starts at 3 and adapts: each E113 raises it a little, each answer lowers it a little, settling
where about ``paced_target`` (0.2 %) of requests draw E113, which is refused (not counted at the
service, so its slot is freed at once) and retried. In simulations it sustains 0.98-0.998 R at
R = 1,000 and 0.94-0.99 R at R = 100: there the scatter is one or two requests, a headroom of
3-4 is 3-4 % of the rate, and less would draw more than 0.5 % E113 with 20-40 ms of normal
jitter, so 0.98 R at R = 100 is out of reach over such paths for any client that does not know a
request's delay in advance. Where charging each round trip's excess (the exact rule) would hold
fewer slots than that headroom, as over a steady path or at low rates (R = 20: a headroom of one or
two requests is 5-10 % of the rate), paced mode follows the exact rule instead and keeps no headroom.

Starts are released in batches: a wake-up lets through every start that may go, then the limiter
sleeps until the next one may, but at least the time ``_BATCH`` (10; 5 in paced mode, whose
headroom grows with the batch) starts take at the pace: at most ``tick`` (10 ms), and shorter
below 1,000/s, where batching saves little. Each start is stamped with the time it was actually
let go, so a delayed start never lets a later one cluster: the window counts real release times.
One wake-up per batch instead of one per start (aiolimiter's pacer woke the loop for every start)
cuts a paced request's CPU to about 1.15x that of one started at the same rate by a bare timer
loop; what is left over an unpaced burst is the event loop waking for answers that come back one
by one. Between
wake-ups, a wait that begins behind others and an answer that cannot let a start go sooner (its
ticket leaves the window after the next wake-up, no cap on requests in flight bound, no estimate
moved) do no further arithmetic, and a wake-up counts its free starts once. Exact
mode pays for the batching with up to half a gap of throughput where the window binds (about
0.5 % at R >= 1,000).

E113 is handled gently (AIMD). An isolated E113 (another sender on the account, or a bunched
second in paced mode) changes nothing: the request is retried. When E113s come repeatedly (at
least ``backoff_after`` in one window and more than ``backoff_share`` of the starts), the rate is
multiplied by ``backoff_factor``; after each ``recovery_interval`` without E113 it climbs by
``recovery_step`` of the configured rate, back to the full rate within a few seconds. All timing
reads the running loop's clock, so tests drive it on a virtual clock.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque
from typing import Literal

from mmsjson._log import limiter_log
from mmsjson.limiting.base import LimiterStats

__all__ = ["Mode", "ThroughputLimiter", "Ticket"]

Mode = Literal["exact", "paced"]
_MODES = ("exact", "paced")
_START_SPREADS = 3.0
_SPREAD_STEP = 0.1
_MAX_SPREADS = 6.0
_EXCESS_CAP = 4.0
_BATCH = 10


class Ticket:
    """One request start in the window; :meth:`ThroughputLimiter.finished` closes it.

    ``at`` is when it started, ``latency`` its round trip once answered, and ``until`` the time
    it leaves the window plus the floor (``math.inf`` while in flight).
    """

    __slots__ = ("at", "latency", "until")

    def __init__(self, at: float) -> None:
        self.at = at
        self.latency: float | None = None
        self.until = math.inf

    def __lt__(self, other: Ticket) -> bool:
        return self.until < other.until

    def __repr__(self) -> str:
        return f"<Ticket at={self.at:.6f} latency={self.latency}>"


class ThroughputLimiter:
    """At most ``rate`` requests *arriving* at the service in any sliding second.

    ``rate`` is the account's throughput in requests per second. ``mode`` is ``"exact"`` (never
    more than ``rate`` arrivals in a second: no E113 from this client's own traffic) or
    ``"paced"`` (2-5 % more throughput over jittery paths, about 0.2 % harmless E113 that are
    retried); see the module documentation. ``margin`` (seconds; default 0.005 in exact mode, 0
    in paced mode) widens the window against clock and timer noise. ``burst`` is how many starts
    the pacer may let through at once after a pause (default: 2 % of the rate, at least 2).
    ``tick`` (seconds, default 0.01) is the longest the limiter waits between wake-ups to gather
    starts into one batch (0: a wake-up per start).
    ``latency_cap`` (seconds, default 3) is the longest a request in flight is assumed to take to
    arrive; it must cover TCP loss recovery. ``warmup_samples`` answers are needed before the
    floor is trusted. The back-off settings (``backoff_*``, ``recovery_*``, ``min_fraction``) and
    ``paced_target`` (the share of E113 paced mode aims at) are described in the module
    documentation. One limiter serves every request of a client, retries included.
    """

    def __init__(
        self,
        rate: float,
        *,
        mode: Mode = "exact",
        burst: int | None = None,
        margin: float | None = None,
        latency_cap: float = 3.0,
        warmup_samples: int = 50,
        min_fraction: float = 0.05,
        backoff_factor: float = 0.7,
        backoff_after: int = 3,
        backoff_share: float = 0.1,
        recovery_step: float = 0.1,
        recovery_interval: float = 0.5,
        paced_target: float = 0.002,
        paced_margin: float = 0.005,
        tick: float = 0.01,
    ) -> None:
        if not (isinstance(rate, int | float) and 1 <= rate < math.inf):
            raise ValueError(f"rate must be a number of requests per second of at least 1, not {rate!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be 'exact' or 'paced', not {mode!r}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if margin is None:
            margin = 0.005 if mode == "exact" else 0.0
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1) seconds, not {margin!r}")
        if not 0 < latency_cap < math.inf:
            raise ValueError(f"latency_cap must be a positive number of seconds, not {latency_cap!r}")
        if not 0 < backoff_factor < 1:
            raise ValueError(f"backoff_factor must be in (0, 1), not {backoff_factor!r}")
        if not 0 < recovery_step <= 1:
            raise ValueError(f"recovery_step must be in (0, 1], not {recovery_step!r}")
        if not (isinstance(warmup_samples, int) and warmup_samples >= 1):
            raise ValueError(f"warmup_samples must be an integer of at least 1, not {warmup_samples!r}")
        if not 0 <= tick <= 0.1:
            raise ValueError(f"tick must be in [0, 0.1] seconds, not {tick!r}")
        if not 0 < paced_target < 0.5:
            raise ValueError(f"paced_target must be a share in (0, 0.5), not {paced_target!r}")
        self.rate = float(rate)
        self.mode: Mode = mode
        self.margin = margin
        self.window = 1.0 + margin
        self.burst = burst if burst is not None else max(2, math.ceil(rate / 50))
        self.latency_cap = latency_cap
        self.stats = LimiterStats()
        self._warmup = warmup_samples
        self._min_fraction = min_fraction
        self._backoff_factor = backoff_factor
        self._backoff_after = backoff_after
        self._backoff_share = backoff_share
        self._recovery_step = recovery_step
        self._recovery_interval = recovery_interval
        self._target = paced_target
        self._spreads = _START_SPREADS
        self._headroom = 0.0
        self._wanted_headroom = 0.0
        self._excess_cap = math.inf
        self._paced_margin = paced_margin
        self._last_finished: Ticket | None = None
        self._fraction = 1.0
        self._limit = math.floor(self.rate)
        self._last_change = -math.inf
        self._quiet_until = -math.inf
        self._samples = 0
        self._first_answer = math.inf
        self._mean_latency: float | None = None
        self._fastest = math.inf
        self._recent: deque[float] = deque(maxlen=256)
        self._floor = 0.0
        self._in_flight: deque[Ticket] = deque()
        self._flying = 0
        self._released: list[tuple[float, Ticket]] = []
        self._waiters: deque[asyncio.Future[Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._starts: deque[float] = deque()
        self._e113s: deque[float] = deque()
        self._tick = tick
        self._pace = 0.0
        self._capacity = 1.0
        self._batch_gap = 0.0
        self._max_in_flight = 0
        self._new_max_in_flight()
        self._new_pacer()
        self._tokens = self._capacity
        self._tokens_at = -math.inf
        self._last_batch = -math.inf

    # -- state ---------------------------------------------------------------------------------

    @property
    def current_rate(self) -> float:
        """The rate in force now: the configured rate, or less after repeated E113."""
        return self.rate * self._fraction

    @property
    def floor(self) -> float:
        """The round trip every ticket is charged above: 0 until enough answers came back."""
        if self._samples < self._warmup:
            return 0.0
        return self._floor

    @property
    def headroom(self) -> float:
        """Slots paced mode keeps free below the rate against the scatter of arrival order (0 in
        exact mode, until enough answers came back, and while the exact rule holds fewer slots)."""
        return self._headroom

    @property
    def max_in_flight(self) -> int:
        """Requests allowed in flight: twice what Little's law needs at the current rate and mean
        round trip, or a tenth of the rate (at least 16) until round trips are known, so that cold
        connections are not opened by the hundred while their handshakes are under way."""
        return self._max_in_flight

    def _new_max_in_flight(self) -> None:
        cold = max(16, math.ceil(self.rate / 10))
        mean = self._mean_latency
        self._max_in_flight = (
            cold if mean is None else max(cold, math.ceil(2 * self.current_rate * mean) + self.burst)
        )

    def _has_room(self) -> bool:
        return (
            self._flying + len(self._released) + self._headroom < self._limit
            and self._flying < self._max_in_flight
            and self._tokens >= 1.0
        )

    def _room(self) -> int:
        """How many starts may go now: as many as :meth:`_has_room` would let through one by one."""
        in_window = self._flying + len(self._released)
        return max(0, min(
            math.ceil(self._limit - self._headroom - in_window),
            self._max_in_flight - self._flying,
            math.floor(self._tokens),
        ))

    @property
    def in_window(self) -> int:
        """Tickets counted against the window now: in flight, or answered and not yet released."""
        return self._flying + len(self._released)

    def _new_pacer(self) -> None:
        """Set the pace of starts (a token bucket of ``burst`` filling at just under the rate) and
        the gap between wake-ups: the time ``_BATCH`` starts take, at most ``tick``; shorter in
        proportion where a tick holds fewer (batching saves little CPU there and its wait would cost
        throughput), and never so long that a burst could not hold two gaps' starts."""
        pace = self.current_rate / self.window
        if self.mode == "paced":
            pace /= 1 + self._paced_margin
        self._pace = pace
        self._capacity = float(max(1, min(self.burst, math.floor(pace))))
        batch = _BATCH if self.mode == "exact" else _BATCH / 2
        ideal = min(self._tick, batch / pace)
        self._batch_gap = min(ideal, ideal * pace * self._tick / _BATCH, self._capacity / (2 * pace))

    def _refill(self, now: float) -> None:
        """Add the tokens the pace earned since the last look. In exact mode, while starts wait,
        up to twice the burst is kept (one per waiter at most), so slots the window frees close
        together are used together; the window alone keeps arrivals within the rate. Paced mode
        keeps to the burst: bunched starts would bunch arrivals."""
        cap = self._capacity
        if self.mode == "exact":
            cap = max(cap, min(float(len(self._waiters)), 2 * cap))
        self._tokens = min(cap, self._tokens + (now - self._tokens_at) * self._pace)
        self._tokens_at = now

    def _set_fraction(self, fraction: float, now: float) -> None:
        self._fraction = fraction
        self._limit = max(1, math.floor(self.rate * fraction))
        self._last_change = now
        self._headroom = min(self._wanted_headroom, self._limit - 1)
        self._refill(now)
        self._new_pacer()
        self._new_max_in_flight()
        self._tokens = min(self._tokens, self._capacity)

    def _recover(self, now: float) -> bool:
        """Climb back towards the configured rate after a quiet interval; True if it did."""
        quiet_since = max(self._last_change, self._e113s[-1] if self._e113s else -math.inf)
        if self._fraction >= 1.0 or now - quiet_since < self._recovery_interval:
            return False
        self._set_fraction(min(1.0, self._fraction + self._recovery_step), now)
        limiter_log.info(
            "throughput recovering: %.0f/s of %.0f/s%s", self.current_rate, self.rate,
            " (full rate)" if self._fraction >= 1.0 else "",
        )
        return True

    # -- the window ----------------------------------------------------------------------------

    def _release(self, ticket: Ticket, latency: float) -> None:
        latency = min(latency, self.latency_cap, self._floor + self._excess_cap)
        ticket.until = ticket.at + self.window + latency
        heapq.heappush(self._released, (ticket.until, ticket))

    def _expire(self, now: float) -> None:
        """Forget released tickets; count requests in flight past the cap as arrived at the cap."""
        flying = self._in_flight
        while flying and (flying[0].until != math.inf or flying[0].at + self.latency_cap <= now):
            ticket = flying.popleft()
            if ticket.until == math.inf:
                self._flying -= 1
                self._release(ticket, self.latency_cap)
        released = self._released
        horizon = now + self.floor
        while released and released[0][0] <= horizon:
            heapq.heappop(released)

    def _next_change(self) -> float:
        """When the window next frees a slot (or a request in flight reaches the cap)."""
        soonest = self._released[0][0] - self.floor if self._released else math.inf
        if self._in_flight:
            soonest = min(soonest, self._in_flight[0].at + self.latency_cap)
        return soonest

    def _take(self, now: float) -> Ticket:
        self._tokens -= 1.0
        ticket = Ticket(now)
        self._in_flight.append(ticket)
        self._flying += 1
        starts = self._starts
        starts.append(now)
        while starts[0] <= now - self.window:
            starts.popleft()
        return ticket

    def _dispatch(self) -> None:
        """Hand free slots to waiters, in order, all in this one wake-up; then sleep until the next
        slot or token is due, but no sooner than one batch gap after this batch."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expire(now)
        self._refill(now)
        waiters = self._waiters
        room = free = self._room()
        while waiters and room:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._take(now))
                room -= 1
        if room < free:
            self._last_batch = now
        while waiters and waiters[0].done():
            waiters.popleft()
        if waiters:
            self._wake_at(self._next_start(now), loop)

    def _next_start(self, now: float) -> float:
        """When one more start may go at the earliest (``inf``: when a request in flight ends)."""
        due = now
        if self._tokens < 1.0:
            due = now + (1.0 - self._tokens) / self._pace
        if self.in_window + self._headroom >= self._limit:
            due = max(due, self._next_change())
        elif self._flying >= self.max_in_flight:
            due = max(due, self._in_flight[0].at + self.latency_cap) if self._in_flight else math.inf
        return max(due, self._last_batch + self._batch_gap)

    def _wake_at(self, due: float, loop: asyncio.AbstractEventLoop) -> None:
        if due >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = loop.call_at(due, self._on_timer) if due < math.inf else None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._dispatch()

    def _wake_waiters(self) -> None:
        """Something changed (a wait began, a request ended): let waiters go now if one may start
        and the batch gap has passed, else make sure a wake-up is due when one may."""
        if not self._waiters:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._refill(now)
        due = self._next_start(now)
        if due <= now:
            self._dispatch()
        else:
            self._wake_at(due, loop)

    # -- the Limiter interface -----------------------------------------------------------------

    async def acquire(self) -> Ticket:
        """Wait until one more request may start; pass the ticket to :meth:`finished` after it."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiters = self._waiters
        recovered = self._fraction < 1.0 and self._recover(now)
        if not waiters:
            self._expire(now)
            self._refill(now)
            if self._has_room():
                self.stats.acquired += 1
                return self._take(now)
        began = now
        waiter: asyncio.Future[Ticket] = loop.create_future()
        waiters.append(waiter)
        if recovered or len(waiters) == 1:
            # Behind other waiters this one changes nothing: a wake-up is already due for them.
            self._wake_waiters()
        try:
            ticket = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())
            raise
        self.stats.acquired += 1
        self.stats.waited += 1
        self.stats.wait_seconds += loop.time() - began
        return ticket

    def _give_back(self, ticket: Ticket) -> None:
        """A ticket granted to a cancelled wait: it never started, so it frees its slot at once
        (unless the loop stalled past ``latency_cap`` and the window already counted it arrived:
        then it stays counted until released, never counted out twice)."""
        if ticket.until == math.inf:
            ticket.until = -math.inf
            self._flying -= 1
        self._tokens = min(self._capacity, self._tokens + 1.0)
        self._wake_waiters()

    def finished(self, ticket: Ticket) -> None:
        """The request of ``ticket`` got its answer (or failed): its arrival time is now bounded."""
        if ticket.until != math.inf:
            return
        now = asyncio.get_running_loop().time()
        latency = now - ticket.at
        ticket.latency = latency
        # Sooner room only if the cap on requests in flight bound, or the estimates moved.
        sooner = self._flying >= self._max_in_flight
        self._flying -= 1
        if self._first_answer == math.inf:
            self._first_answer = now
        if self.mode == "paced":
            self._last_finished = ticket
            self._spreads = max(0.0, self._spreads - _SPREAD_STEP * self._target)
        if ticket.at >= self._first_answer:
            self._samples += 1
            if latency < self._fastest:
                self._fastest = latency
                if self.mode == "exact" and latency < self._floor:
                    self._floor = latency
                    sooner = True
            sooner = self._learn(latency) or sooner
        self._release(ticket, latency)
        if sooner or ticket.until - self.floor < self._timer_at:
            self._wake_waiters()

    def _learn(self, latency: float) -> bool:
        """Re-estimate the floor from the spread of recent round trips every few answers.

        The fastest round trip seen is an optimistic floor while few samples exist (a normal
        jitter's low tail is sparse), so the exact floor lies below it by three times its gap to
        the 10th percentile. The paced floor is the median, and the spread (the mean gap between
        two round trips, from the interquartile range) sizes its headroom and caps what a ticket
        is charged above the median; it is taken as at least the gap between batches, since the
        starts of one batch reach the service in an order of their own. The mean round trip sizes
        the cap on requests in flight.
        """
        recent = self._recent
        recent.append(latency)
        if len(recent) < self._warmup or (self._samples % 16 and len(recent) != self._warmup):
            return False
        ordered = sorted(recent)
        fastest = self._fastest
        mean = sum(ordered) / len(ordered)
        floor = max(0.0, fastest - 3 * (ordered[len(ordered) // 10] - fastest))
        if self.mode == "paced":
            count = len(ordered)
            spread = max(0.836 * (ordered[3 * count // 4] - ordered[count // 4]), self._batch_gap)
            headroom = self._spreads * math.sqrt(self.current_rate * spread / 2)
            if self.current_rate * (mean - floor) < headroom:
                self._wanted_headroom, self._excess_cap = 0.0, math.inf
            else:
                floor = ordered[count // 2]
                self._wanted_headroom, self._excess_cap = headroom, _EXCESS_CAP * spread
            # Never the whole limit: a start must stay possible, or no answer comes to lower it.
            self._headroom = min(self._wanted_headroom, self._limit - 1)
        self._floor = min(floor, self.latency_cap)
        self._mean_latency = mean
        self._new_max_in_flight()
        return True

    def throttled(self) -> None:
        """The service answered E113: back off only if E113s come repeatedly.

        An isolated E113 (another sender on the account, or jitter bunching arrivals in paced
        mode) is retried without slowing down. At least ``backoff_after`` E113s in one window,
        making more than ``backoff_share`` of its starts, multiply the rate by ``backoff_factor``;
        E113s of requests already in flight then count towards no further back-off for a window.
        """
        now = asyncio.get_running_loop().time()
        self.stats.throttled += 1
        if self.mode == "paced":
            self._spreads = min(_MAX_SPREADS, self._spreads + _SPREAD_STEP)
            self._forget_refused()
        horizon = now - self.window
        e113s, starts = self._e113s, self._starts
        e113s.append(now)
        while e113s and e113s[0] <= horizon:
            e113s.popleft()
        while starts and starts[0] <= horizon:
            starts.popleft()
        if now < self._quiet_until:
            return
        if len(e113s) < max(self._backoff_after, self._backoff_share * len(starts)):
            return
        self.stats.backoffs += 1
        self._quiet_until = now + self.window
        e113s.clear()
        self._set_fraction(max(self._min_fraction, self._fraction * self._backoff_factor), now)
        limiter_log.warning(
            "E113 from the service: throughput lowered to %.0f/s of %.0f/s", self.current_rate, self.rate
        )

    def _forget_refused(self) -> None:
        """Paced mode: the request just refused did not count at the service; free its slot."""
        ticket, self._last_finished = self._last_finished, None
        if ticket is None or ticket.until == math.inf:
            return
        released = self._released
        for index, (_, held) in enumerate(released):
            if held is ticket:
                ticket.until = -math.inf
                released[index] = released[-1]
                released.pop()
                heapq.heapify(released)
                self._wake_waiters()
                return

    async def aclose(self) -> None:
        """Nothing to release but a pending timer: the limiter holds no connections."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def __repr__(self) -> str:
        return (
            f"<ThroughputLimiter {self.mode} rate={self.rate:g}/s current={self.current_rate:g}/s "
            f"window={self.window:g}s limit={self._limit} in_window={self.in_window} "
            f"throttled={self.stats.throttled}>"
        )

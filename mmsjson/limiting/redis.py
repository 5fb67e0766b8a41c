"""A throughput limit shared by every process and host that sends for one account, kept on Redis.

Each process asks one Lua script for start *slots*, several at a time when several requests wait.
The script runs atomically on the Redis server and reads only the server's clock (``TIME``), so
the hosts' clocks never matter. The state remembers the server's time of its last call: a server
clock that steps back (a failover to a replica whose clock is behind) moves the state back with it,
rather than stopping every grant until the new clock catches up. It hands out slots the way the
in-process :class:`~mmsjson.limiting.ThroughputLimiter` lets starts go:

* paced: slots lie at least ``(1 + margin) / rate`` seconds apart (a GCRA with no burst), so the
  account sees an even stream whichever processes take the slots;
* bounded by a sliding log: a sorted set of recent slots, and a new slot never lies less than a
  window of ``1 + margin`` seconds after the ``rate``-th latest entry. A process whose request
  started late, or was answered slower than its fastest one, tells the script so with its next call,
  and the entry moves to when the request may have reached the service (as in the local limiter).
  Until a process has sent for a window its fastest answer is not known, so its entries move by
  their whole answer time. A move counts up to ``latency_cap`` seconds, and since ``latency_cap +
  horizon`` stays under a second, it lands before the slot a window later is granted;
* reserved ahead, never far: a slot may lie in the future, and the process sleeps until it, so
  nothing polls; no slot is granted more than ``horizon`` seconds ahead, and each process holds at
  most ``prefetch`` slots it has not used yet. A process that sends nothing holds none, so an idle
  worker leaves its share to the others; a killed one wastes at most the slots it held;
* backed off together, by the local limiter's rule (AIMD): E113s reported by any process are
  counted in the shared state; an isolated one changes nothing, but ``backoff_after`` (3) in one
  window that are more than ``backoff_share`` (10 %) of its starts multiply the shared rate by
  ``backoff_factor`` (0.7), and it climbs back by ``recovery_step`` of the rate after each quiet
  ``recovery_interval`` (0.5 s);
* the strictest configuration wins: workers on one key that were given different rates or margins
  (a rollout, a stale config) share the lowest rate and the widest window any of them asked for in
  the last ``ttl``, and a worker held below its own rate logs a warning;
* safe across a Redis restart: the state carries its creation time, and a process that saw state
  that is now gone tells the script, which then grants nothing for ``horizon`` seconds (every slot
  the lost state had granted lies before then) and keeps the shared back-off that process knew.

Each reply carries the server's clock; the process maps slots onto its own loop clock from the
reply with the shortest round trip and adds that trip's uncertainty, so a slot is never started
early. If Redis cannot be reached, the limiter fails closed: :meth:`RedisLimiter.acquire` keeps
trying for ``unavailable_timeout`` seconds and then raises :class:`SharedLimitUnavailable`; no
request goes out without a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import math
from collections import deque
from types import ModuleType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from attrs import define

from mmsjson._log import limiter_log
from mmsjson.errors import TransportError
from mmsjson.limiting.base import LimiterStats

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLimiter", "RedisStats", "RedisTicket", "SharedLimitUnavailable"]

_US = 1_000_000
#: How fast the Redis host's clock may drift from ours (NTP slews wall clocks by up to 500 ppm).
_DRIFT = 5e-4
#: A slot handed back by a cancelled wait is used by the next one unless it is this late already.
_STALE = 0.1
_FIRST_BACKOFF = 0.02
_MAX_BACKOFF = 0.5

# KEYS: state hash, log sorted set. ARGV: rate, window us, horizon us, min fraction, recovery step,
# ttl ms, hold us, slots wanted, E113s seen, state creation time seen (0: none), fraction seen,
# back-off after (E113s), back-off share, back-off factor, recovery interval us,
# then (slot id, new effective time us) pairs. All times are Redis TIME in microseconds; numbers
# go to redis.call as numbers, never through tostring(), which would round them to 14 digits.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local min_fraction = tonumber(ARGV[4])
local step = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local hold = tonumber(ARGV[7])
local want = tonumber(ARGV[8])
local throttles = tonumber(ARGV[9])
local seen_born = tonumber(ARGV[10])
local seen_fraction = tonumber(ARGV[11])
local backoff_after = tonumber(ARGV[12])
local backoff_share = tonumber(ARGV[13])
local backoff_factor = tonumber(ARGV[14])
local recovery_interval = tonumber(ARGV[15])
local state, log = KEYS[1], KEYS[2]

local s = redis.call('HMGET', state, 'born', 'tat', 'fraction', 'changed', 'paused', 'seq', 'cooled', 'seen')
local e = redis.call('HMGET', state, 'e113', 'e113_from', 'last_e113', 'quiet', 'rate', 'rate_at', 'window',
  'window_at')
local e113, e113_from = tonumber(e[1]) or 0, tonumber(e[2]) or 0
local last_e113, quiet = tonumber(e[3]) or 0, tonumber(e[4]) or 0
local shared_rate, rate_at = tonumber(e[5]), tonumber(e[6]) or 0
local shared_window, window_at = tonumber(e[7]), tonumber(e[8]) or 0
local born, tat, fraction, changed, paused, seq, cooled
local cooldown = 0
if not s[1] then
  born, tat, fraction, changed, paused, seq, cooled = now, now, 1, now, 0, 0, 0
  redis.call('DEL', log)
  if seen_born > 0 then
    tat = now + horizon
    fraction = seen_fraction
    cooled = 1
    cooldown = 1
  end
else
  born, tat, fraction = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
  changed, paused, seq, cooled = tonumber(s[4]), tonumber(s[5]), tonumber(s[6]), tonumber(s[7])
  local seen = tonumber(s[8]) or now
  if now < seen then
    local back = seen - now
    tat, changed, paused = tat - back, changed - back, paused - back
    e113_from, last_e113, quiet = e113_from - back, last_e113 - back, quiet - back
    rate_at, window_at = rate_at - back, window_at - back
    local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      redis.call('ZADD', log, tonumber(entries[i + 1]) - back, entries[i])
    end
  end
  if seen_born > 0 and seen_born ~= born and cooled == 0 then
    local since = math.min(born, now)
    if since + horizon > tat then tat = since + horizon end
    cooled = 1
    cooldown = 1
  end
end

if not shared_rate or rate <= shared_rate or now - rate_at > ttl * 1000 then
  shared_rate, rate_at = rate, now
end
if not shared_window or window >= shared_window or now - window_at > ttl * 1000 then
  shared_window, window_at = window, now
end
rate, window = shared_rate, shared_window

local quiet_since = math.max(changed, last_e113)
if fraction < 1 and now - quiet_since >= recovery_interval then
  local steps = math.floor((now - quiet_since) / recovery_interval)
  fraction = math.min(1, fraction + steps * step)
  changed = quiet_since + steps * recovery_interval
end
local backoffs = 0
if throttles > 0 then
  if now - e113_from > window then
    e113, e113_from = 0, now
  end
  e113 = e113 + throttles
  last_e113 = now
  local starts = redis.call('ZCOUNT', log, now - window, now)
  if now >= quiet and e113 >= math.max(backoff_after, backoff_share * starts) then
    fraction = math.max(min_fraction, fraction * backoff_factor)
    changed = now
    quiet = now + window
    e113 = 0
    backoffs = 1
  end
end

for i = 16, #ARGV, 2 do
  local old = redis.call('ZSCORE', log, ARGV[i])
  local score = math.min(tonumber(ARGV[i + 1]), now + horizon + hold)
  if old and tonumber(old) < score then
    redis.call('ZADD', log, score, ARGV[i])
  end
end
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window - hold)

local allowed = rate * fraction
local limit = math.max(1, math.floor(allowed))
local spacing = window / allowed
local out = {now, born, math.floor(fraction * 1000000 + 0.5), backoffs, 0, cooldown,
  math.floor(rate * 1000 + 0.5)}
local granted = 0
while granted < want do
  local slot = math.max(now, tat, paused)
  local kth = redis.call('ZREVRANGE', log, limit - 1, limit - 1, 'WITHSCORES')
  if kth[2] then slot = math.max(slot, tonumber(kth[2]) + window) end
  slot = math.ceil(slot)
  if slot > now + horizon then
    out[5] = slot - horizon - now
    break
  end
  seq = seq + 1
  redis.call('ZADD', log, slot, seq)
  tat = slot + spacing
  out[#out + 1] = seq
  out[#out + 1] = slot
  granted = granted + 1
end

redis.call('HSET', state, 'born', born, 'tat', tat, 'fraction', fraction, 'changed', changed,
  'paused', paused, 'seq', seq, 'cooled', cooled, 'e113', e113, 'e113_from', e113_from,
  'last_e113', last_e113, 'quiet', quiet, 'seen', now, 'rate', rate, 'rate_at', rate_at,
  'window', window, 'window_at', window_at)
redis.call('PEXPIRE', state, ttl)
redis.call('PEXPIRE', log, ttl)
return out
"""


def _redis() -> ModuleType:
    """redis-py, imported on first use so that mmsjson works without the ``redis`` extra."""
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "RedisLimiter needs redis-py: pip install 'mmsjson[redis]'"
        ) from exc


class SharedLimitUnavailable(TransportError):
    """The shared throughput limit could not be reached, so the request was not sent.

    The limiter fails closed: without a slot from Redis no request starts, because a guess could
    break the account's limit. Not retried by the client; the limiter already waited.
    """

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=False)


@define
class RedisStats:
    """What the shared limiter did on Redis: script calls, slots granted and their round trips."""

    calls: int = 0
    granted: int = 0
    reports: int = 0
    wasted: int = 0
    cooldowns: int = 0
    failures: int = 0
    round_trip_seconds: float = 0.0

    @property
    def calls_per_slot(self) -> float:
        """Redis commands (script calls) per granted slot; below 1 when slots come in batches."""
        return self.calls / self.granted if self.granted else math.nan


class RedisTicket:
    """One granted slot: its id and Redis time, and when this process started the request."""

    __slots__ = ("at", "born", "id", "late", "latency", "reported", "slot")

    def __init__(self, slot: _Slot, at: float) -> None:
        self.id = slot.id
        self.slot = slot.slot
        self.born = slot.born
        self.at = at
        self.late = max(0.0, at - slot.local) + 2 * slot.error
        self.latency: float | None = None
        self.reported = 0

    def __repr__(self) -> str:
        return f"<RedisTicket id={self.id} slot={self.slot}us late={self.late * 1e3:.2f}ms>"


class _Slot:
    """A slot granted but not yet started: ``slot`` in Redis microseconds, ``local`` on our clock."""

    __slots__ = ("born", "error", "id", "local", "slot")

    def __init__(self, id: int, slot: int, local: float, error: float, born: int) -> None:
        self.id = id
        self.slot = slot
        self.local = local
        self.error = error
        self.born = born

    def __lt__(self, other: _Slot) -> bool:
        return self.local < other.local


class _ClockMap:
    """Maps the Redis server's clock onto this process's loop clock.

    Each reply says what the server's clock read while the script ran, somewhere between our send
    and our receipt; the sample with the shortest round trip (its uncertainty growing with age at
    the drift allowed) gives the offset. A sample that contradicts it means the server's clock
    stepped (or another server answers): the newest sample wins then.
    """

    __slots__ = ("_at", "_error", "_offset")

    def __init__(self) -> None:
        self._offset = 0.0
        self._error = math.inf
        self._at = 0.0

    def error(self, now: float) -> float:
        return self._error + _DRIFT * max(0.0, now - self._at)

    def update(self, server: float, sent: float, received: float) -> None:
        error = (received - sent) / 2
        offset = server - (sent + received) / 2
        current = self.error(received)
        if error <= current or abs(offset - self._offset) > error + current:
            self._offset, self._error, self._at = offset, error, received

    def to_local(self, server: float, now: float) -> float:
        """The latest local time at which the server's clock can read ``server``."""
        return server - self._offset + self.error(now)


class RedisLimiter:
    """At most ``rate`` request starts in any sliding window of ``1 + margin`` seconds, across every
    process and host that uses the same Redis and ``key``.

    Give every worker of one account the same ``rate`` (the account's throughput), ``key`` (e.g.
    the account or service id) and Redis. Pass ``url`` (``redis://host:6379/0``, the limiter then
    owns the connection and closes it in :meth:`aclose`) or a ``redis.asyncio.Redis`` as
    ``client`` (left open). ``prefetch`` (default: 1% of the rate, at least 2) is how many slots one
    process may hold before it uses them; ``horizon`` how far ahead any slot may be granted, and
    how long grants stop after Redis lost the state. A request answered slower than this process's
    fastest one moves its slot's entry later by up to ``latency_cap`` seconds (``latency_cap +
    horizon`` must stay under a second). ``unavailable_timeout`` is how long an
    :meth:`acquire` keeps trying an unreachable Redis before it raises
    :class:`SharedLimitUnavailable`. Needs Redis 5 or newer and the ``redis`` extra.
    """

    def __init__(
        self,
        rate: float,
        *,
        key: str,
        url: str | None = None,
        client: Redis | None = None,
        margin: float = 0.005,
        prefetch: int | None = None,
        horizon: float = 0.25,
        unavailable_timeout: float = 3.0,
        min_fraction: float = 0.05,
        recovery_step: float = 0.1,
        backoff_factor: float = 0.7,
        backoff_after: int = 3,
        backoff_share: float = 0.1,
        recovery_interval: float = 0.5,
        latency_cap: float = 0.6,
        report_threshold: float | None = None,
        prefix: str = "mmsjson:limit",
        ttl: float = 60.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("pass exactly one of url= (a redis:// URL) or client= (a redis.asyncio.Redis)")
        if not rate >= 1:
            raise ValueError(f"rate must be at least 1 request per second, not {rate!r}")
        if not key:
            raise ValueError("key must name the account whose limit is shared, not be empty")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1) seconds, not {margin!r}")
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"prefetch must be at least 1 slot, not {prefetch!r}")
        if not 0 < horizon < 1:
            raise ValueError(f"horizon must be in (0, 1) seconds, not {horizon!r}")
        if not unavailable_timeout >= 0:
            raise ValueError(f"unavailable_timeout must be at least 0 seconds, not {unavailable_timeout!r}")
        if not 0 < min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], not {min_fraction!r}")
        if not 0 < recovery_step <= 1:
            raise ValueError(f"recovery_step must be in (0, 1], not {recovery_step!r}")
        if not (latency_cap > 0 and latency_cap + horizon < 1):
            raise ValueError(
                f"latency_cap ({latency_cap!r}) and horizon ({horizon!r}) must be positive and add up to "
                "less than a second, so a slow answer is reported before the slot a window later is granted"
            )
        if not ttl > 1 + margin + latency_cap + horizon:
            raise ValueError(f"ttl must outlast a window, the latency cap and the horizon, not {ttl!r}")
        self.rate = float(rate)
        self.key = key
        self.margin = margin
        self.window = 1.0 + margin
        self.prefetch = prefetch if prefetch is not None else max(2, math.ceil(rate / 100))
        self._refill_below = max(1, self.prefetch // 2)
        self.horizon = horizon
        self.unavailable_timeout = unavailable_timeout
        self.latency_cap = latency_cap
        self.report_threshold = margin / 2 if report_threshold is None else report_threshold
        self.stats = LimiterStats()
        self.redis_stats = RedisStats()
        self._min_fraction = min_fraction
        self._recovery_step = recovery_step
        if not 0 < backoff_factor < 1:
            raise ValueError(f"backoff_factor must be in (0, 1), not {backoff_factor!r}")
        if not (isinstance(backoff_after, int) and backoff_after >= 1):
            raise ValueError(f"backoff_after must be a whole number of at least 1, not {backoff_after!r}")
        if not 0 <= backoff_share < 1:
            raise ValueError(f"backoff_share must be in [0, 1), not {backoff_share!r}")
        if not 0 < recovery_interval < math.inf:
            raise ValueError(f"recovery_interval must be positive seconds, not {recovery_interval!r}")
        self._backoff_factor = backoff_factor
        self._backoff_after = backoff_after
        self._backoff_share = backoff_share
        self._recovery_interval = recovery_interval
        self._ttl = ttl
        self._keys = (f"{prefix}:{{{key}}}:state", f"{prefix}:{{{key}}}:log")
        self._secret: str | None = None
        if url is not None:
            parts = urlsplit(url)
            self._secret = parts.password
            self._where = _redacted(url)
            retry = importlib.import_module("redis.asyncio.retry")
            backoff = importlib.import_module("redis.backoff")
            self._redis: Redis = _redis().Redis.from_url(
                url, socket_connect_timeout=1.0, socket_timeout=2.0,
                retry=retry.Retry(backoff.NoBackoff(), 0),
            )
            self._owns_client = True
        else:
            assert client is not None
            self._redis = client
            self._where = _describe(client)
            self._owns_client = False
        self._script: AsyncScript = self._redis.register_script(_SCRIPT)
        self._fraction = 1.0
        self._shared_rate = self.rate
        self._born = 0
        self._epoch = 0
        self._last_reply = -math.inf
        self._clock = _ClockMap()
        self._fastest = math.inf
        self._trusted_from = math.inf
        self._recent: deque[tuple[float, RedisTicket]] = deque()
        self._waiters: deque[asyncio.Future[_Slot]] = deque()
        self._pool: list[_Slot] = []
        self._held = 0
        self._throttles = 0
        self._reports: list[tuple[int, int, int]] = []
        self._not_before = -math.inf
        self._outage_since: float | None = None
        self._backoff = _FIRST_BACKOFF
        self._wake: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, rate: float, key: str, **options: Any) -> Self:
        """A limiter on the Redis at ``url``; it owns the connection and closes it in :meth:`aclose`."""
        return cls(rate, key=key, url=url, **options)

    @property
    def current_rate(self) -> float:
        """The shared rate in force as of the last reply: the configured rate, or less after E113 or
        while another worker on the key is configured with a lower one."""
        return self._shared_rate * self._fraction

    # -- the Limiter protocol ----------------------------------------------------------------------

    async def acquire(self) -> RedisTicket:
        """Wait for a slot from Redis and until its time; pass the ticket to :meth:`finished`.

        Cancelling the wait takes no slot: a slot already granted goes to the next waiter of this
        process. Raises :class:`SharedLimitUnavailable` when Redis stays unreachable or the limiter is
        closed (a wait cut short by :meth:`aclose` included): the request was not sent.
        """
        if self._closed:
            raise self._closed_error()
        loop = asyncio.get_running_loop()
        began = loop.time()
        wake = self._start(loop)
        slot = self._take(began)
        if slot is None:
            waiter: asyncio.Future[_Slot] = loop.create_future()
            self._waiters.append(waiter)
            wake.set()
            try:
                slot = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._give_back(waiter.result())
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                raise
        waited = False
        delay = slot.local - loop.time()
        if delay > 0:
            waited = True
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self._give_back(slot)
                raise
        now = loop.time()
        self._held -= 1
        wake.set()
        self.stats.acquired += 1
        if waited:
            self.stats.waited += 1
            self.stats.wait_seconds += now - began
        if self._trusted_from == math.inf:
            self._trusted_from = now + self.window
        ticket = RedisTicket(slot, now)
        self._report(ticket, now)
        return ticket

    def finished(self, ticket: RedisTicket) -> None:
        """The request got its answer (or failed): if it started late or was slow, say so to Redis.

        How slow counts against this process's fastest answer so far (against none in its first
        window, while that is not known yet); when it improves, the answers of the last window are
        weighed again, as the local limiter does.
        """
        if self._closed or self._wake is None:
            return
        now = asyncio.get_running_loop().time()
        latency = now - ticket.at
        ticket.latency = latency
        recent = self._recent
        recent.append((now, ticket))
        horizon = now - self.window - self.latency_cap
        while recent[0][0] < horizon:
            recent.popleft()
        if latency < self._fastest:
            self._fastest = latency
            for _, earlier in recent:
                self._report(earlier, now)
        else:
            self._report(ticket, now)

    def _report(self, ticket: RedisTicket, now: float) -> None:
        """Queue the ticket's entry to move later in the shared log, if it moved enough.

        The entry moves to when the request may have reached the service at the latest: its start
        (late if the process was), plus how much slower its answer was than the fastest one.
        """
        late = ticket.late
        if ticket.latency is not None:
            fastest = self._fastest if now >= self._trusted_from else 0.0
            late += max(0.0, min(ticket.latency, self.latency_cap) - fastest)
        late = min(late, self.latency_cap)
        step = self.report_threshold if not ticket.reported else self.report_threshold / 2
        if late * _US - ticket.reported > step * _US and ticket.born == self._born:
            ticket.reported = math.ceil(late * _US)
            self._reports.append((ticket.born, ticket.id, ticket.slot + ticket.reported))
            assert self._wake is not None
            self._wake.set()

    def throttled(self) -> None:
        """The service answered E113: counted in the shared state, where repeated E113s (from any
        process) lower the shared rate by the local limiter's rule; an isolated one does not."""
        self.stats.throttled += 1
        if self._closed or self._wake is None:
            return
        self._throttles += 1
        self._wake.set()

    async def aclose(self) -> None:
        """Stop asking Redis, fail the waiting starts with :class:`SharedLimitUnavailable`, pass on E113s
        and late starts not yet reported, and close an owned client."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            # The reserver also stops on _closed: on Python 3.11 redis-py can swallow a cancel.
            assert self._wake is not None
            self._wake.set()
            self._task.cancel()
            await asyncio.wait({self._task})
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(self._closed_error())
        self._waiters.clear()
        self.redis_stats.wasted += self._held
        if self._throttles or self._reports:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._call(0)
        if self._owns_client:
            await self._redis.aclose()

    def _closed_error(self) -> SharedLimitUnavailable:
        return SharedLimitUnavailable(
            f"the shared throughput limit (Redis {self._where}, key {self.key!r}) was closed"
        )

    def __repr__(self) -> str:
        return (
            f"<RedisLimiter rate={self.rate:g}/s current={self.current_rate:g}/s key={self.key!r} "
            f"redis={self._where} window={self.window:g}s held={self._held} "
            f"waiting={len(self._waiters)} throttled={self.stats.throttled}>"
        )

    # -- slots held by this process ------------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"mmsjson-redis-limiter-{self.key}")
        return self._wake

    def _take(self, now: float) -> _Slot | None:
        """The earliest unused slot this process holds, dropping any that are too late to use."""
        while self._pool:
            slot = heapq.heappop(self._pool)
            if now - slot.local <= _STALE:
                return slot
            self._held -= 1
            self.redis_stats.wasted += 1
        return None

    def _give_back(self, slot: _Slot) -> None:
        heapq.heappush(self._pool, slot)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand held slots to waiters, first come first served."""
        if not self._waiters or not self._pool:
            return
        now = asyncio.get_running_loop().time()
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
                continue
            slot = self._take(now)
            if slot is None:
                return
            self._waiters.popleft().set_result(slot)

    # -- talking to Redis ----------------------------------------------------------------------------

    async def _run(self) -> None:
        """Ask Redis for slots while there are waiters and room, one call at a time."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            now = loop.time()
            want = 0
            if self._held < self._refill_below:
                want = max(0, min(len(self._waiters), self.prefetch - self._held))
            if now < self._not_before:
                if want:
                    self._wake_at(self._not_before)
                want = 0
            if not want and not self._throttles and not self._reports:
                continue
            attempt = loop.time()
            try:
                async with asyncio.timeout(min(max(self.unavailable_timeout, 0.1), 2.0)):
                    await self._call(want)
            except Exception as exc:  # every failure must reach the waiters, or they hang
                self._failed(exc, attempt, loop.time())
                continue
            if self._closed:
                return
            self._outage_since = None
            self._backoff = _FIRST_BACKOFF
            self._dispatch()
            if self._waiters and self._held < self._refill_below:
                self._wake.set()

    async def _call(self, want: int) -> None:
        """One script call: report E113s and late starts, take up to ``want`` slots."""
        loop = asyncio.get_running_loop()
        throttles, self._throttles = self._throttles, 0
        reports = [report for report in self._reports if report[0] == self._born]
        self._reports = []
        fresh = loop.time() - self._last_reply < self._ttl - 1
        args: list[float] = [
            self.rate, round(self.window * _US), round(self.horizon * _US), self._min_fraction,
            self._recovery_step, round(self._ttl * 1000), round(self.latency_cap * _US), want,
            throttles, self._born if fresh else 0, self._fraction,
            self._backoff_after, self._backoff_share, self._backoff_factor,
            round(self._recovery_interval * _US),
        ]
        for _, slot_id, score in reports:
            args += (slot_id, score)
        sent = loop.time()
        try:
            reply = await self._script(keys=self._keys, args=args)
        except BaseException:
            self._throttles += throttles
            self._reports[:0] = reports
            raise
        received = loop.time()
        stats = self.redis_stats
        stats.calls += 1
        stats.reports += len(reports)
        stats.round_trip_seconds += received - sent
        now_us, born, fraction_ppm, backoffs, retry_us, cooldown, rate_milli = (int(v) for v in reply[:7])
        if not self._epoch:
            self._epoch = now_us
        if born != self._born:
            self._reports = [report for report in self._reports if report[0] == born]
        self._born = born
        self._last_reply = received
        self._fraction = fraction_ppm / _US
        shared_rate = min(self.rate, rate_milli / 1000)
        if shared_rate > self.rate - 1e-3:  # the reply rounds to a thousandth
            shared_rate = self.rate
        if shared_rate != self._shared_rate:
            self._shared_rate = shared_rate
            if shared_rate < self.rate:
                limiter_log.warning(
                    "the shared limit on key %r is in force at %g/s, below this worker's %g/s: another "
                    "worker on the key is configured with a lower rate", self.key, shared_rate, self.rate,
                )
        self.stats.backoffs += backoffs
        stats.cooldowns += cooldown
        clock = self._clock
        clock.update((now_us - self._epoch) / _US, sent, received)
        error = clock.error(received)
        granted = reply[7:]
        for i in range(0, len(granted), 2):
            slot_id, slot = int(granted[i]), int(granted[i + 1])
            local = clock.to_local((slot - self._epoch) / _US, received)
            heapq.heappush(self._pool, _Slot(slot_id, slot, local, error, born))
        count = len(granted) // 2
        self._held += count
        stats.granted += count
        self._not_before = received + retry_us / _US if count < want else -math.inf

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        wake = self._wake
        assert wake is not None
        self._timer = asyncio.get_running_loop().call_at(when, wake.set)

    def _failed(self, exc: Exception, attempt: float, now: float) -> None:
        """A call failed: retry a lost connection for a while, then fail the waiters (fail closed)."""
        self.redis_stats.failures += 1
        if self._outage_since is None:
            self._outage_since = attempt
        lasting = now - self._outage_since
        if _transient(exc) and lasting < self.unavailable_timeout:
            self._wake_at(now + self._backoff)
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            return
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._secret:
            reason = reason.replace(self._secret, "***")
        message = (
            f"the shared throughput limit (Redis {self._where}, key {self.key!r}) could not be used"
            + (f" for {lasting:.1f} s" if lasting >= 0.05 else "")
            + f": {reason}"
        )
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(SharedLimitUnavailable(message))


def _transient(exc: Exception) -> bool:
    """Whether a failed call may pass: a lost or refused connection, a timeout; not a bad password."""
    exceptions = importlib.import_module("redis.exceptions")
    if isinstance(exc, exceptions.AuthenticationError | exceptions.AuthorizationError):
        return False
    return isinstance(exc, exceptions.ConnectionError | exceptions.TimeoutError | OSError | TimeoutError)


def _redacted(url: str) -> str:
    """``url`` without its user name and password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def _describe(client: Redis) -> str:
    """Where a caller's client points, without credentials."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"

"""The limiter seam: what the send pipeline needs from a throughput limiter.

Every request start, retries included, takes a ticket from one limiter and hands it back when its
answer (or failure) is in. A limiter decides when a start may go so that the service never sees
more than the account's throughput in any sliding second; :class:`~mmsjson.limiting.ThroughputLimiter`
does that inside one process, a shared limiter does it for several processes or hosts.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

from attrs import define

__all__ = ["Limiter", "LimiterStats"]

TicketT = TypeVar("TicketT")


@define
class LimiterStats:
    """Counters a user can read: starts let through, starts that waited, E113s seen."""

    acquired: int = 0
    waited: int = 0
    wait_seconds: float = 0.0
    throttled: int = 0
    backoffs: int = 0


@runtime_checkable
class Limiter(Protocol[TicketT]):
    """A throughput limiter the client can use: ``MMSClient(limiter=...)``.

    ``rate`` is the configured limit in requests per second and ``current_rate`` the one in force
    (lower after E113). :meth:`acquire` waits until one more request may start and returns a
    ticket; :meth:`finished` takes it back once the request's answer is in or it failed;
    :meth:`throttled` reports an E113 (or HTTP 429) so the limiter backs off; :meth:`aclose`
    releases what the limiter holds (connections), and is called by the client that created it.
    ``acquire`` must be safe to cancel: a cancelled wait takes no slot.
    """

    rate: float
    stats: LimiterStats

    @property
    def current_rate(self) -> float: ...

    async def acquire(self) -> TicketT: ...

    def finished(self, ticket: TicketT) -> None: ...

    def throttled(self) -> None: ...

    async def aclose(self) -> None: ...

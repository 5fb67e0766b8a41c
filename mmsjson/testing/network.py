"""A model of a wide-area network path, for the fake server and for virtual-clock simulations.

The service counts a request when it *arrives*, and the client only sees when it started and when
its answer came back. :class:`NetworkModel` puts the difference on one machine, without root or
kernel modules: an uplink delay before a request counts as arrived, a downlink delay before its
answer leaves, occasional loss-like spikes (a lost segment waits for TCP's retransmission timer,
0.2-2 s), a handshake delay on the first request of a new connection, and optionally a share of
answers turned into E113 at random (another sender using the same account).

``FakeMMSServer(network=NetworkModel(...))`` applies it to real HTTP; :func:`simulate` applies it to
a limiter on whatever loop runs it (a virtual-clock loop in tests), with a strict sliding-window
server in the same process.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import re
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from attrs import define, field, frozen, validators

if TYPE_CHECKING:
    from aiohttp import web

    from mmsjson.limiting.base import Limiter
    from mmsjson.testing.server import FakeMMSServer

__all__ = [
    "PROFILES",
    "Delay",
    "NetworkModel",
    "SimResult",
    "max_in_window",
    "network_option",
    "per_sliding_second",
    "simulate",
    "sustained_rate",
]


def _non_negative(_: object, attribute: Any, value: float) -> None:
    if not (isinstance(value, int | float) and 0 <= value < math.inf):
        raise ValueError(f"{attribute.name} must be a finite number of seconds >= 0, not {value!r}")


def _probability(_: object, attribute: Any, value: float) -> None:
    if not (isinstance(value, int | float) and 0 <= value <= 1):
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], not {value!r}")


_DELAY = re.compile(
    r"^\s*(?P<base>\d+(?:\.\d*)?)\s*(?:(?P<sign>\+-|±|\+exp)\s*(?P<jitter>\d+(?:\.\d*)?))?\s*(?:ms)?\s*$"
)


@frozen(kw_only=True)
class Delay:
    """A one-way delay in seconds, drawn afresh for each request.

    ``shape="normal"``: ``mean`` with standard deviation ``jitter``, never below ``floor``.
    ``shape="exponential"``: ``floor`` plus an exponential jitter whose mean is ``jitter`` (a path's
    propagation floor plus queueing); ``mean`` is ignored.
    """

    mean: float = field(default=0.0, validator=_non_negative)
    jitter: float = field(default=0.0, validator=_non_negative)
    floor: float = field(default=0.0, validator=_non_negative)
    shape: Literal["normal", "exponential"] = field(
        default="normal", validator=validators.in_(("normal", "exponential"))
    )

    @classmethod
    def parse(cls, text: str) -> Delay:
        """``"60"``, ``"60+-20"`` / ``"60±20"`` (normal, clamped at 0) or ``"40+exp5"``, in ms."""
        match = _DELAY.match(text)
        if match is None:
            raise ValueError(
                f"delay {text!r} must look like 60, 60+-20 (normal, ms) or 40+exp5 (floor + exponential)"
            )
        base = float(match["base"]) / 1000
        jitter = float(match["jitter"] or 0) / 1000
        if match["sign"] == "+exp":
            return cls(floor=base, jitter=jitter, shape="exponential")
        return cls(mean=base, jitter=jitter)

    def sample(self, rng: random.Random) -> float:
        if self.shape == "exponential":
            return self.floor + (rng.expovariate(1 / self.jitter) if self.jitter else 0.0)
        value = rng.gauss(self.mean, self.jitter) if self.jitter else self.mean
        return max(self.floor, value)

    def __str__(self) -> str:
        if self.shape == "exponential":
            return f"{self.floor * 1000:g}+exp{self.jitter * 1000:g} ms"
        text = f"{self.mean * 1000:g}±{self.jitter * 1000:g}" if self.jitter else f"{self.mean * 1000:g}"
        text += " ms"
        return text if not self.floor else f"{text} (≥ {self.floor * 1000:g})"


@frozen(kw_only=True)
class NetworkModel:
    """What a request meets between client and service, one draw per request and direction.

    ``loss`` is the chance, per direction, that a segment is lost and the request (or its answer)
    waits for a retransmission: an extra delay drawn log-uniformly from ``spike`` (seconds).
    ``handshake`` is added to the first request of each new connection (a TLS handshake over the
    path). ``e113`` is the share of requests refused with E113 at random on arrival, as when
    another sender uses the same account; they do not count against the server's window.
    """

    uplink: Delay = field(factory=Delay)
    downlink: Delay = field(factory=Delay)
    loss: float = field(default=0.0, validator=_probability)
    spike: tuple[float, float] = field(default=(0.2, 2.0))
    handshake: float = field(default=0.0, validator=_non_negative)
    e113: float = field(default=0.0, validator=_probability)
    seed: int | None = None

    @spike.validator
    def _check_spike(self, _: object, value: tuple[float, float]) -> None:
        if not (len(value) == 2 and 0 < value[0] <= value[1] < math.inf):
            raise ValueError(
                f"spike must be (shortest, longest) seconds with 0 < shortest <= longest, not {value!r}"
            )

    def _spike(self, rng: random.Random) -> float:
        if self.loss and rng.random() < self.loss:
            low, high = self.spike
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        return 0.0

    def uplink_delay(self, rng: random.Random, *, cold: bool = False) -> float:
        """Seconds from a request's start to its arrival at the service."""
        return self.uplink.sample(rng) + self._spike(rng) + (self.handshake if cold else 0.0)

    def downlink_delay(self, rng: random.Random) -> float:
        """Seconds from the service's answer to the client reading it."""
        return self.downlink.sample(rng) + self._spike(rng)

    def refused(self, rng: random.Random) -> bool:
        """Whether this arrival is refused with E113 by someone else's traffic."""
        return bool(self.e113) and rng.random() < self.e113

    @classmethod
    def parse(cls, text: str) -> NetworkModel:
        """A model from ``key=value`` pairs separated by commas, as the ``sandbox`` command takes them.

        Keys: ``up`` / ``down`` (a :meth:`Delay.parse` delay in ms), ``loss`` and ``e113`` (a
        fraction or a percentage such as ``1%``), ``handshake`` (ms), ``seed``. Example:
        ``up=60+-20,down=5,loss=1%,handshake=300``.
        """
        options: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                raise ValueError(f"network option {part!r} must be key=value")
            if key in ("up", "uplink"):
                options["uplink"] = Delay.parse(value)
            elif key in ("down", "downlink"):
                options["downlink"] = Delay.parse(value)
            elif key in ("loss", "e113"):
                options[key] = float(value[:-1]) / 100 if value.endswith("%") else float(value)
            elif key == "handshake":
                options["handshake"] = float(value.removesuffix("ms")) / 1000
            elif key == "seed":
                options["seed"] = int(value)
            else:
                raise ValueError(f"unknown network option {key!r} (up, down, loss, handshake, e113, seed)")
        return cls(**options)

    def __str__(self) -> str:
        parts = [f"up {self.uplink}"]
        if self.downlink != Delay():
            parts.append(f"down {self.downlink}")
        if self.loss:
            parts.append(f"{self.loss:.0%} loss")
        if self.handshake:
            parts.append(f"handshake {self.handshake * 1000:g} ms")
        if self.e113:
            parts.append(f"{self.e113:.0%} foreign E113")
        return ", ".join(parts)

    def middleware(self, server: FakeMMSServer) -> Callable[..., Awaitable[web.StreamResponse]]:
        """An aiohttp middleware applying this model to every route of ``server`` but its
        ``/_fake/`` control routes."""
        from aiohttp import web

        rng = random.Random(self.seed)
        seen: weakref.WeakSet[Any] = weakref.WeakSet()

        @web.middleware
        async def network(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.path.startswith("/_fake/"):
                return await handler(request)
            connection = request.transport
            cold = connection is not None and connection not in seen
            if connection is not None:
                seen.add(connection)
            await asyncio.sleep(self.uplink_delay(rng, cold=cold))
            if self.refused(rng):
                await request.read()
                response: web.StreamResponse = server.foreign_e113()
            else:
                response = await handler(request)
            await asyncio.sleep(self.downlink_delay(rng))
            return response

        return network


def network_option(text: str) -> NetworkModel:
    """:meth:`NetworkModel.parse` for ``argparse``: a bad model is reported with its reason."""
    import argparse

    try:
        return NetworkModel.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The paths the issue measures, by name (uplink-only unless the name says both ways).
PROFILES: dict[str, NetworkModel] = {
    "none": NetworkModel(),
    "60±20": NetworkModel(uplink=Delay(mean=0.060, jitter=0.020)),
    "40+5": NetworkModel(uplink=Delay(floor=0.040, jitter=0.005, shape="exponential")),
    "100±40": NetworkModel(uplink=Delay(mean=0.100, jitter=0.040)),
    "60±20 1% loss": NetworkModel(uplink=Delay(mean=0.060, jitter=0.020), loss=0.01),
    "60±20 both ways": NetworkModel(
        uplink=Delay(mean=0.060, jitter=0.020), downlink=Delay(mean=0.060, jitter=0.020)
    ),
}


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of ``times`` (any order) that fall in one sliding window ``[t, t + window)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window, lo=i) - i for i, t in enumerate(ordered)), default=0)


def per_sliding_second(times: Sequence[float], step: float = 0.1) -> tuple[list[float], list[int]]:
    """Arrivals in the second before each multiple of ``step``: for a plot against the limit."""
    ordered = sorted(times)
    if not ordered:
        return [], []
    first = ordered[0]
    edges = [i * step for i in range(int((ordered[-1] - first) / step) + 2)]
    counts = [
        bisect.bisect_left(ordered, first + edge) - bisect.bisect_left(ordered, first + edge - 1.0)
        for edge in edges
    ]
    return edges, counts


@define
class SimResult:
    """What a simulated run saw: arrival times at the server, accepted and refused, and starts.

    ``trace`` holds one ``(start, arrival, answer, accepted)`` per request sent.
    """

    starts: list[float] = field(factory=list)
    accepted: list[float] = field(factory=list)
    refused: list[float] = field(factory=list)
    requests: int = 0
    connections: int = 0
    trace: list[tuple[float, float, float, bool]] = field(factory=list)

    @property
    def e113(self) -> int:
        return len(self.refused)

    def sustained(self, skip: float = 1.0) -> float:
        """Accepted per second in the steady part: see :func:`sustained_rate`."""
        return sustained_rate(self.accepted, skip)


def sustained_rate(times: Sequence[float], skip: float = 1.0, tail: float = 0.05) -> float:
    """Arrivals per second after the first ``skip`` seconds (whose full window flatters) and
    before the last ``tail`` of them (stragglers held up by a loss spike stretch the end)."""
    ordered = sorted(times)
    if len(ordered) < 2:
        return 0.0
    start = bisect.bisect_left(ordered, ordered[0] + skip)
    end = len(ordered) - 1 - int(tail * len(ordered))
    if end - start < 2:
        return 0.0
    return (end - start) / (ordered[end] - ordered[start])


async def simulate(
    limiter: Limiter[Any],
    network: NetworkModel,
    *,
    throughput: int,
    requests: int,
    concurrency: int = 1000,
    seed: int = 0,
    retry_delay: Callable[[random.Random], float] = lambda rng: rng.uniform(0.1, 0.2),
    clock: Callable[[], float] | None = None,
) -> SimResult:
    """Send ``requests`` through ``limiter`` over ``network`` to a strict sliding-window server.

    ``concurrency`` workers each send one request at a time (the client's in-flight cap). Each
    request acquires a ticket, meets the uplink delay (a new connection pays the handshake; an idle
    one is reused), is counted against the server's window of ``throughput`` in any
    one second (or refused with E113 and retried after ``retry_delay``, reporting ``throttled``),
    meets the downlink delay and hands its ticket back. The server's window does not count
    refused requests, as :class:`~mmsjson.testing.FakeMMSServer` does not.
    """
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    rng = random.Random(seed)
    result = SimResult()
    window: deque[float] = deque()
    idle = 0
    pending = requests

    def arrive(at: float) -> bool:
        while window and window[0] <= at - 1.0:
            window.popleft()
        if network.refused(rng) or len(window) >= throughput:
            result.refused.append(at)
            return False
        window.append(at)
        result.accepted.append(at)
        return True

    async def one() -> None:
        nonlocal idle
        while True:
            ticket = await limiter.acquire()
            started = now()
            result.starts.append(started)
            result.requests += 1
            cold = idle == 0
            if cold:
                result.connections += 1
            else:
                idle -= 1
            try:
                await asyncio.sleep(network.uplink_delay(rng, cold=cold))
                arrived = now()
                ok = arrive(arrived)
                await asyncio.sleep(network.downlink_delay(rng))
            finally:
                idle += 1
                limiter.finished(ticket)
            result.trace.append((started, arrived, now(), ok))
            if ok:
                return
            limiter.throttled()
            await asyncio.sleep(retry_delay(rng))

    async def worker() -> None:
        nonlocal pending
        while pending > 0:
            pending -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result

"""The transport seam: post a prepared request, get the raw answer or a classified failure.

A failure is classified here by whether the request can have reached the service: a connection
that was never made surely carried nothing (``TransportError(outcome_unknown=False)``, retryable
unless it was a TLS failure that would fail again); a connection that broke, or an answer that did
not arrive in time, after the request may have been written leaves the outcome unknown, and is
not retried unless the caller opts in, because a retry could deliver the same MMS twice.

A new connection must be made within the connect timeout (aiohttp's, per socket). Two deadlines,
kept by one sweep for all requests instead of timers per request, bound the answer: its start
(status line and headers) must arrive within the read timeout and the whole of it within the
answer timeout, both counted from when the request is handed to aiohttp, so a server trickling
bytes cannot hold a request forever. aiohttp's own total and per-read timeouts are off: they cost
timer handles on every request and read. The send pipeline caps requests in flight at the pool's
size, so a request is written as soon as it is handed over; with a session of the caller's whose
pool is smaller, the wait for a connection counts against both deadlines. A request they stop
while it still waits for or makes its connection sent nothing, and may be retried.

The transport never decides where the API key goes: the wire flavour puts it in the headers or the
body of the :class:`PreparedRequest`, whose ``repr`` shows neither.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import math
import ssl as _ssl
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from attrs import field, frozen
from multidict import CIMultiDict, CIMultiDictProxy

from mmsjson._log import transport_log
from mmsjson._slots import slot_setters
from mmsjson._version import __version__
from mmsjson.errors import TransportError, ValidationError
from mmsjson.retry import parse_retry_after

__all__ = [
    "MAX_ANSWER_BYTES",
    "AiohttpTransport",
    "PreparedRequest",
    "RawResponse",
    "Transport",
    "check_base_url",
    "client_error_reason",
    "pool_capacity",
    "tls_context",
]

#: The most of an answer that is read; the API's answers are a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = f"mmsjson/{__version__} aiohttp/{aiohttp.__version__}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, field: str = "base_url") -> str:
    """``url`` if it is https, or plain http to a loopback address (a local fake server)."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is not None:
            parts.port  # noqa: B018 - a port out of range raises here, not at the first send
    except ValueError as exc:
        raise ValidationError(field, f"{url!r} is not a URL: {exc}") from None
    if parts is not None and parts.hostname:
        try:
            parts.hostname.encode("idna")  # as resolving it will; failing there, it reads as sent
        except UnicodeError:
            raise ValidationError(
                field, f"{url!r} has a host name that cannot be looked up (an empty label, or one "
                "over 63 characters)"
            ) from None
    if parts is not None and parts.hostname and (
        parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))
    ):
        return url
    raise ValidationError(
        field, f"{url!r} must be https://, or http:// to a loopback address (127.0.0.1)"
    )


def tls_context() -> _ssl.SSLContext:
    """The system's trust store, with TLS 1.2 as the oldest protocol allowed."""
    context = _ssl.create_default_context()
    context.minimum_version = _ssl.TLSVersion.TLSv1_2
    return context


class ReadOnlyHeaders(CIMultiDictProxy[str]):
    """Request headers a flavour builds once and every request shares: read-only, and in the form
    aiohttp merges without converting it first (a plain dict is copied into a new
    ``CIMultiDict`` on every request). Unlike a bare proxy it can be copied and pickled."""

    __slots__ = ()

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(CIMultiDict(headers))

    def __reduce__(self) -> tuple[Any, ...]:  # type: ignore[override]  # the proxy refuses
        return ReadOnlyHeaders, (dict(self.items()),)


@functools.cache
def _shared_tls_context() -> _ssl.SSLContext:
    """:func:`tls_context`, built once a process for every transport that is given none.

    Loading the system trust store takes about 16 ms of CPU, which each client paid when it was
    built (aiohttp builds its own default context once, at import). The context is never changed
    after it is built, so transports can share it.
    """
    return tls_context()


@frozen(kw_only=True)
class PreparedRequest:
    """One HTTP request a wire flavour built: where it goes, what it carries, whom it is for.

    ``recipients`` are the numbers this request delivers to (one for the JSON API, up to 1,000 for
    an SMS REST batch), each of which gets an outcome from its answer. ``identity`` is what names
    the request in a journal when ``body`` carries a secret; by default the body does. ``cost`` is
    how many limiter tickets the request takes (an SMS REST batch may count by its recipients).
    Neither the headers nor the body appear in the ``repr``: either may hold the API key.
    """

    url: str
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    recipients: tuple[str, ...]
    action: str
    identity: bytes | None = field(default=None, repr=False)
    cost: int = 1

    def json(self) -> Any:
        """The body decoded as JSON (for tests and mock handlers)."""
        return json.loads(self.body)


@frozen
class RawResponse:
    """What came back over HTTP, before the wire flavour reads it as the API's answer.

    ``truncated`` is true when the answer was longer than the transport reads
    (:data:`MAX_ANSWER_BYTES`); ``body`` then holds its start.
    """

    status: int
    body: bytes = b""
    retry_after: float | None = None
    truncated: bool = False

    @classmethod
    def from_json(
        cls, payload: Any, status: int = 200, *, retry_after: float | None = None
    ) -> RawResponse:
        """An answer carrying ``payload`` as JSON (for mock transports)."""
        return cls(status, json.dumps(payload).encode(), retry_after)


#: RawResponse's slot setters, for :meth:`AiohttpTransport.post` (see :mod:`mmsjson._slots`).
_RAW_SLOTS = slot_setters(RawResponse, ("status", "body", "retry_after", "truncated"))
assert _RAW_SLOTS, "AiohttpTransport.post fills RawResponse's slots by hand: teach it the new fields"
_SET_STATUS, _SET_BODY, _SET_RETRY_AFTER, _SET_TRUNCATED = _RAW_SLOTS


class Transport(Protocol):
    """Posts prepared requests. ``post`` returns the raw answer, or raises
    :class:`~mmsjson.errors.TransportError` saying whether the request may have been accepted."""

    async def post(self, request: PreparedRequest) -> RawResponse: ...

    async def aclose(self) -> None: ...


def _tls_reason(exc: BaseException, https: bool) -> str | None:
    """What a TLS failure was about, if ``exc`` is one (aiohttp wraps them in several ways)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        exc = exc.certificate_error
    elif isinstance(exc, aiohttp.ClientConnectorError):
        if https and isinstance(exc.os_error, ConnectionResetError | BrokenPipeError):
            return (
                "the server reset the connection during the TLS handshake; it may not offer "
                "TLS 1.2 or newer, which the client requires"
            )
        exc = exc.os_error
    if isinstance(exc, _ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return f"the server's certificate was not accepted: {detail}"
    if isinstance(exc, _ssl.SSLError):
        reason = exc.reason or exc.strerror or type(exc).__name__
        if "VERSION" in reason or "PROTOCOL" in reason:
            return f"no TLS version both sides accept ({reason}); the client requires TLS 1.2 or newer"
        return f"TLS failed: {reason}"
    return None


def client_error_reason(exc: aiohttp.ClientError) -> str:
    """What an aiohttp error was about, without what it quotes of the peer's bytes.

    aiohttp's message for an answer it cannot parse quotes the offending line (up to 8 KiB, over
    several lines); a peer that echoes the request may have put the key in it. Of such a message
    only the words before the first colon are kept; of any other, its first line.
    """
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
        reason = str(text).split("\n", 1)[0].split(":", 1)[0]
    else:
        reason = str(exc).split("\n", 1)[0]
    reason = reason.strip()[:200]
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


class _Deadlines:
    """One timer for every answer in flight: a sweep every quarter of the shorter bound cancels
    the late ones.

    A request's answer must start (status line and headers) within ``first`` seconds of the post
    and be whole within ``whole`` seconds. A per-request ``asyncio.timeout``, or aiohttp's
    per-read timer, costs timer handles per request; this costs a dict entry. A request
    expires between one bound and that bound plus a quarter of the shorter one.

    :meth:`AiohttpTransport.post` keeps the tables itself, without a method call per step: a
    task is in ``_heads`` (due: post time plus the shorter bound) until its answer starts, then in
    ``_bodies`` (due: post time plus ``whole``), and leaves both when its post ends; it calls
    :meth:`arm` when no sweep runs on its loop.
    """

    def __init__(self, first: float, whole: float) -> None:
        self.first = first
        self.whole = whole
        self._tick = min(first, whole) / 4
        self._head_bound = min(first, whole)
        self._head_miss = "first" if first < whole else "whole"
        self._heads: dict[asyncio.Task[Any], float] = {}
        self._bodies: dict[asyncio.Task[Any], float] = {}
        self._expired: dict[asyncio.Task[Any], str] = {}
        self._sweeping: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        """Start sweeping on ``loop`` (a watch added while no sweep runs, or on another loop)."""
        self._loop = loop
        self._sweeping = loop.call_at(now + self._tick, self._sweep, loop)

    def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None

    def finish(self, task: asyncio.Task[Any]) -> str | None:
        """Forget ``task`` (a post must, however it ends, or its task would be cancelled later
        for a deadline of an answer long received); which bound it missed, if it was cancelled
        for one: ``"first"`` or ``"whole"``."""
        self._heads.pop(task, None)
        self._bodies.pop(task, None)
        return self._expired.pop(task, None) if self._expired else None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = loop.time()
        for table, bound in ((self._heads, self._head_miss), (self._bodies, "whole")):
            late = [task for task, due in table.items() if due <= now]
            for task in late:
                del table[task]
                self._expired[task] = bound
                task.cancel()
        self._sweeping = (
            loop.call_at(now + self._tick, self._sweep, loop)
            if self._heads or self._bodies else None
        )


#: aiohttp's connector method that waits for a pooled connection or makes a new one: a request
#: stopped inside it was not written.
_CONNECT_CODE = aiohttp.BaseConnector.connect.__code__


def _while_connecting(cancelled: BaseException) -> bool:
    """Whether ``cancelled`` stopped a request still getting its connection (so surely unsent)."""
    frames = cancelled.__traceback__
    while frames is not None:
        if frames.tb_frame.f_code is _CONNECT_CODE:
            return True
        frames = frames.tb_next
    return False


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of an answer of unknown or too great a length, and whether it was cut."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def pool_capacity(session: aiohttp.ClientSession) -> int | None:
    """How many requests ``session``'s connector carries at once to one host (None: no limit).

    The in-flight cap is kept at or below it: a request must never wait inside aiohttp for a
    pooled connection, where its answer deadline already runs and an unsent request would expire
    as an unknown outcome.
    """
    connector = session.connector
    if connector is None:
        return None
    limits = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
    return min(limits) if limits else None


def _check_seconds(value: object, name: str) -> None:
    """Refuse a timeout that is not a positive, finite number of seconds (0, negative, NaN or
    infinite would expire every request at once, or never, or break the deadline sweep)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValidationError(name, f"must be a positive, finite number of seconds, not {value!r}")


class AiohttpTransport:
    """Posts prepared requests over one :class:`aiohttp.ClientSession`.

    A ``session`` the caller passes in is used as it is (its connector's TLS settings included)
    and not closed; otherwise one is created with a pool of ``pool_size`` connections and closed
    by :meth:`aclose`. ``ssl`` is a context to use instead of the system trust store with TLS 1.2
    or newer (e.g. one that trusts a private CA); that default is loaded once a process and
    shared. ``read_timeout`` bounds the wait for the answer to start, ``answer_timeout`` the
    whole answer, headers and body (default: three read timeouts); an answer late for either is
    an unknown outcome.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        ssl: _ssl.SSLContext | None = None,
        pool_size: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        answer_timeout: float | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        for name, seconds in (
            ("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
            ("answer_timeout", answer_timeout),
        ):
            if seconds is not None:
                _check_seconds(seconds, name)
        if isinstance(max_answer_bytes, bool) or not isinstance(max_answer_bytes, int) or (
            max_answer_bytes < 1
        ):
            raise ValidationError(
                "max_answer_bytes",
                f"must be a positive number of bytes, not {max_answer_bytes!r}: a smaller cap cuts "
                "every answer, and a cut accepted answer is an unknown outcome",
            )
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=None
        )
        self.read_timeout = read_timeout
        self.answer_timeout = answer_timeout if answer_timeout is not None else 3 * read_timeout
        self._deadlines = _Deadlines(read_timeout, self.answer_timeout)
        self._session = session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop] | None = None
        self._owns_session = session is None
        self._ssl: _ssl.SSLContext | bool = ssl if ssl is not None else (
            True if session is not None else _shared_tls_context()
        )
        self._pool_size = pool_size
        self._cap = max_answer_bytes

    def __repr__(self) -> str:
        return f"<AiohttpTransport owns_session={self._owns_session} pool={self._pool_size}>"

    def _client_session(self) -> tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop]:
        """The session, opened on first use (again after :meth:`aclose`), and its event loop."""
        if self._session is None or (self._owns_session and self._session.closed):
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector)
            self._loop = None
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._ready = self._session, self._loop
        return self._ready

    async def aclose(self) -> None:
        """Close the aiohttp session if this object created it."""
        self._deadlines.stop()
        self._ready = None
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def post(self, request: PreparedRequest) -> RawResponse:
        """POST ``request``; raise :class:`TransportError` saying whether it may have been accepted.

        The error is raised outside the handler that caught aiohttp's, so it chains nothing: an
        aiohttp error's ``request_info`` holds the request headers, which may hold the key.
        """
        session, loop = self._ready or self._client_session()
        task = asyncio.current_task(loop)  # given the loop, it makes no getpid() system call
        assert task is not None
        deadlines = self._deadlines
        # The deadline bookkeeping (see _Deadlines), kept here: a method call per step was a
        # measurable share of the client's overhead.
        heads, bodies, expired = deadlines._heads, deadlines._bodies, deadlines._expired
        started = loop.time()
        heads[task] = started + deadlines._head_bound
        if deadlines._sweeping is None or deadlines._loop is not loop:
            deadlines.arm(loop, started)
        url = request.url
        try:
            # Awaited rather than entered: ``async with`` would add four coroutines per request.
            response = await session.post(
                url, data=request.body, headers=request.headers, timeout=self._timeout,
                ssl=self._ssl if url.startswith("https:") else False, allow_redirects=False,
            )
            try:
                if heads.pop(task, None) is not None:
                    bodies[task] = started + deadlines.whole
                length = response.content_length
                # An encoded answer's length is what it inflates from, not what it inflates to.
                if length is not None and length <= self._cap and (
                    "Content-Encoding" not in response.headers
                ):
                    body, truncated = await response.read(), False
                else:
                    body, truncated = await _read_capped(response, self._cap)
                retry_after = response.headers.get("Retry-After")
                raw: RawResponse = object.__new__(RawResponse)
                _SET_STATUS(raw, response.status)
                _SET_BODY(raw, body)
                _SET_RETRY_AFTER(
                    raw, None if retry_after is None else parse_retry_after(retry_after)
                )
                _SET_TRUNCATED(raw, truncated)
                return raw
            finally:
                response.release()
        except asyncio.CancelledError as cancelled:
            bound = deadlines.finish(task)
            if bound is None:
                raise
            if task.uncancel():  # the caller cancelled it as well: its cancellation wins
                raise
            if _while_connecting(cancelled):
                which, seconds = (
                    ("read", self.read_timeout) if bound == "first"
                    else ("answer", self.answer_timeout)
                )
                error = TransportError(
                    f"no connection to the API within the {which} timeout ({seconds:g} s)",
                    outcome_unknown=False, retryable=True,
                )
            elif bound == "first":
                error = TransportError(
                    f"no answer from the API within the read timeout ({self.read_timeout:g} s)",
                    outcome_unknown=True,
                )
            else:
                error = TransportError(
                    f"the answer did not complete within {self.answer_timeout:g} s",
                    outcome_unknown=True,
                )
        except aiohttp.ClientConnectorError as exc:
            reason = _tls_reason(exc, url.startswith("https:"))
            if reason is not None:
                error = TransportError(f"TLS handshake with the API failed: {reason}",
                                       outcome_unknown=False, retryable=False)
            else:
                error = TransportError(f"could not connect to the API: {exc.os_error}",
                                       outcome_unknown=False, retryable=True)
        except aiohttp.ConnectionTimeoutError:
            error = TransportError("connecting to the API timed out",
                                   outcome_unknown=False, retryable=True)
        except aiohttp.SocketTimeoutError:
            error = TransportError("no answer from the API within the read timeout",
                                   outcome_unknown=True)
        except aiohttp.ServerDisconnectedError:
            error = TransportError("the API closed the connection before answering",
                                   outcome_unknown=True)
        except aiohttp.ClientError as exc:
            detail = _tls_reason(exc, False) or client_error_reason(exc)
            error = TransportError(f"the connection to the API failed: {detail}", outcome_unknown=True)
        finally:
            heads.pop(task, None)
            bodies.pop(task, None)
            if expired:
                expired.pop(task, None)
        transport_log.debug("POST %s failed: %s", url, error)
        raise error

"""One aiohttp session to the API: the auth header, TLS 1.2 or newer, timeouts and the retry policy.

A failure is classified by whether the request can have reached the service: a connection that
was never made surely carried nothing and may be retried; a connection that broke or timed out
after the request was written leaves the outcome unknown, and is not retried unless the caller
opts in, because a retry could deliver the same MMS twice.

Timeouts are socket-level (connect, then each read); there is no total timeout, because aiohttp
counts the wait for a pooled connection in the total and a request queued behind others must not
time out before it was sent. The client caps requests in flight before they reach the pool.
"""

from __future__ import annotations

import ipaddress
import random
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from attrs import field, frozen

from mmsjson._version import __version__
from mmsjson.errors import ApiError, MMSError, TransportError, ValidationError

__all__ = ["DEFAULT_BASE_URL", "HttpSession", "RawResponse", "RetryPolicy", "check_base_url"]

DEFAULT_BASE_URL = "https://api.ci.mblox.com/ep/v2/"
_USER_AGENT = f"mmsjson/{__version__} aiohttp/{aiohttp.__version__}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """``url`` if it is https, or plain http to a loopback address (a local fake server)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url
    raise ValidationError(
        "base_url", f"{url!r} must be https://, or http:// to a loopback address (127.0.0.1)"
    )


def tls_context() -> ssl.SSLContext:
    """The system's trust store, with TLS 1.2 as the oldest protocol allowed."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@frozen(kw_only=True)
class RetryPolicy:
    """Which failures are retried, how often and how long to wait between tries.

    Only what was surely not accepted is retried: E113/E106 and HTTP 429 (throughput), HTTP 503,
    and a connection that could not be made. Waits grow exponentially from ``base_delay`` to
    ``max_delay`` with full jitter, and honour a ``Retry-After`` header. ``retry_unknown=True``
    also retries requests whose answer was lost: only for callers who accept that a person may
    then get the message twice.
    """

    max_attempts: int = field(default=6)
    base_delay: float = 0.2
    max_delay: float = 10.0
    retry_unknown: bool = False

    @max_attempts.validator
    def _check_attempts(self, _: object, value: int) -> None:
        if value < 1:
            raise ValueError("max_attempts must be at least 1")

    def should_retry(self, error: MMSError, attempt: int) -> bool:
        """Whether to try again after ``error`` on try number ``attempt`` (from 1)."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, ApiError):
            return error.retryable
        if isinstance(error, TransportError):
            return error.retryable or (error.outcome_unknown and self.retry_unknown)
        return False

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after try number ``attempt`` failed."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


@frozen
class RawResponse:
    """What came back over HTTP, before it is read as the API's answer."""

    status: int
    body: bytes
    retry_after: float | None = None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class _NotSent(TransportError):
    """The connection could not be made; the request surely never reached the service."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message, outcome_unknown=False)
        self.retryable = retryable


class HttpSession:
    """Posts request bodies to the API over one :class:`aiohttp.ClientSession`.

    A session the caller passes in is used as it is and not closed; otherwise one is created with
    a pool of ``pool_size`` connections and closed by :meth:`close`. The API key is kept here and
    only ever put in the ``x-api-key`` header.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        pool_size: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self._headers = {
            "x-api-key": api_key,
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._ssl: ssl.SSLContext | bool = (
            tls_context() if self.base_url.startswith("https:") else False
        )
        self._session = session
        self._owns_session = session is None
        self._pool_size = pool_size

    def __repr__(self) -> str:
        return f"<HttpSession {self.base_url} owns_session={self._owns_session}>"

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None or (self._owns_session and self._session.closed):
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the aiohttp session if this object created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def post(self, body: bytes) -> RawResponse:
        """POST ``body``; raise :class:`TransportError` saying whether it may have been accepted."""
        session = self._client_session()
        try:
            async with session.post(
                self.base_url, data=body, headers=self._headers,
                timeout=self._timeout, ssl=self._ssl, allow_redirects=False,
            ) as response:
                return RawResponse(
                    response.status, await response.read(), _retry_after(response.headers)
                )
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError) as exc:
            raise _NotSent(f"TLS handshake with the API failed: {exc}", retryable=False) from None
        except aiohttp.ClientConnectorError as exc:
            raise _NotSent(f"could not connect to the API: {exc.os_error}", retryable=True) from None
        except aiohttp.ConnectionTimeoutError:
            raise _NotSent("connecting to the API timed out", retryable=True) from None
        except aiohttp.SocketTimeoutError:
            raise TransportError(
                "no answer from the API within the read timeout", outcome_unknown=True
            ) from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError(
                "the API closed the connection before answering", outcome_unknown=True
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(
                f"the connection to the API failed: {type(exc).__name__}: {exc}",
                outcome_unknown=True,
            ) from None

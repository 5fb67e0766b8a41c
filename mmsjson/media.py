"""Media pre-flight: fetch a media URL's headers the way the service will, before sending.

The service GETs each media URL and refuses the MMS unless the host answers 200, 301, 302, 303, 307
or 308, follows at most one redirect, and sends ``Content-Length`` (chunked without a length is
refused) and a ``Content-Type``. ``application/octet-stream`` may be refused, and carriers commonly
cap a message near 1 MB. :func:`check_media` reports all of that for one URL without downloading
the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin

import aiohttp
from attrs import frozen

from mmsjson.models import MEDIA_KINDS
from mmsjson.transport import client_error_reason

__all__ = ["MEDIA_TYPES", "SIZE_WARNING_BYTES", "MediaCheck", "check_media"]

#: The MIME types the API documents for each slide kind (from :data:`~mmsjson.models.MEDIA_KINDS`).
MEDIA_TYPES: Mapping[str, frozenset[str]] = {
    name: kind.content_types for name, kind in MEDIA_KINDS.items()
}
SIZE_WARNING_BYTES = 1_000_000
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OCTET_STREAM = "application/octet-stream"


@frozen(kw_only=True)
class MediaCheck:
    """What a pre-flight fetch found: ``problems`` make the service refuse, ``warnings`` may."""

    url: str
    status: int | None = None
    content_type: str | None = None
    content_length: int | None = None
    redirected_to: str | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


_Head = tuple[int, str | None, str | None, str | None, str | None]


async def _head_of(session: aiohttp.ClientSession, url: str, limits: aiohttp.ClientTimeout) -> _Head:
    async with session.get(url, allow_redirects=False, timeout=limits) as response:
        return (
            response.status,
            response.headers.get("Content-Type"),
            response.headers.get("Content-Length"),
            response.headers.get("Transfer-Encoding"),
            response.headers.get("Location"),
        )


async def check_media(
    url: str,
    kind: str | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    fetch_seconds: float = 10.0,
) -> MediaCheck:
    """Fetch ``url``'s answer headers as the service would and say what it would make of them.

    ``kind`` (a name in :data:`~mmsjson.models.MEDIA_KINDS`: ``image``, ``pdf``...) checks
    the ``Content-Type`` against that slide kind. The body is not downloaded; each fetch gives up
    after ``fetch_seconds``.
    """
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await check_media(url, kind, session=own, fetch_seconds=fetch_seconds)
    limits = aiohttp.ClientTimeout(total=fetch_seconds)
    problems: list[str] = []
    warnings: list[str] = []
    redirected_to = None
    try:
        status, content_type, length, encoding, location = await _head_of(session, url, limits)
        if status in _REDIRECTS and location:
            redirected_to = urljoin(url, location)
            status, content_type, length, encoding, location = await _head_of(session, redirected_to, limits)
            if status in _REDIRECTS:
                problems.append(f"redirects twice ({url} -> {redirected_to} -> {location}); "
                                "the service follows only one redirect")
    except aiohttp.ClientError as exc:
        return MediaCheck(url=url, problems=(f"could not be fetched: {client_error_reason(exc)}",))
    except (TimeoutError, ValueError) as exc:
        # ValueError: a Location that cannot be joined (``http://[::1``), or a host name that
        # cannot be looked up (UnicodeError: a label over 63 characters).
        return MediaCheck(url=url, problems=(f"could not be fetched: {type(exc).__name__}: {exc}",))
    if status != 200 and not problems:
        problems.append(f"answers HTTP {status}; the service needs 200 (after at most one redirect)")
    size = int(length) if length and length.isdigit() else None
    if size is None:
        chunked = " (chunked transfer encoding)" if encoding and "chunked" in encoding.lower() else ""
        problems.append(f"has no Content-Length{chunked}; the service refuses such media")
    elif size > SIZE_WARNING_BYTES:
        warnings.append(f"is {size:,} bytes; carriers commonly cap an MMS near 1 MB")
    mime = content_type.split(";")[0].strip().lower() if content_type else None
    if not mime:
        problems.append("has no Content-Type; the service refuses such media")
    elif mime == _OCTET_STREAM:
        warnings.append("is served as application/octet-stream; the service may refuse it")
    elif kind is not None and kind in MEDIA_TYPES and mime not in MEDIA_TYPES[kind]:
        problems.append(f"is served as {mime}, which is not a {kind} type "
                        f"({', '.join(sorted(MEDIA_TYPES[kind]))})")
    return MediaCheck(
        url=url, status=status, content_type=content_type, content_length=size,
        redirected_to=redirected_to, problems=tuple(problems), warnings=tuple(warnings),
    )

"""MMSClient: send, save and send-saved MMS, one recipient per request, safely and at full rate."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
from attrs import define

from mmsjson import wire
from mmsjson.errors import ApiError, MediaError, MMSError, ThroughputExceeded, ValidationError
from mmsjson.fanout import BulkProgress, Delivery, run_group, stream_bulk
from mmsjson.journal import BulkJournal
from mmsjson.limiting import ThroughputLimiter
from mmsjson.media import MediaCheck, check_media
from mmsjson.models import MMS, BulkJob, BulkOutcome, GroupResult, Outcome, SaveResult, SendResult
from mmsjson.numbers import normalize_number, normalize_numbers
from mmsjson.session import DEFAULT_BASE_URL, HttpSession, RetryPolicy

__all__ = ["ClientStats", "MMSClient"]

API_KEY_ENV = "MMSJSON_API_KEY"
_FRAGMENT_CACHE_SIZE = 32
_MEDIA_CACHE_SIZE = 1024


@define
class ClientStats:
    """Counters a user can read: requests sent, retries, and how the answers went."""

    requests: int = 0
    retries: int = 0
    accepted: int = 0
    rejected: int = 0
    unknown: int = 0
    throttled: int = 0


class MMSClient:
    """The client for the MMS JSON API.

    ``api_key`` falls back to the ``MMSJSON_API_KEY`` environment variable. ``service_id`` and
    ``sender`` are defaults each call may override. ``throughput`` is the account's limit in
    requests per second (``None`` turns the limiter off, e.g. against a local fake server); every
    request of this client, retries included, shares one :class:`ThroughputLimiter`.
    ``max_in_flight`` caps requests waiting for an answer. An ``async with`` block owns the aiohttp
    session; a ``session`` passed in is used and not closed. ``preflight_media=True`` checks every
    media URL as the service will fetch it before ``send``, ``save`` and ``send_group`` (see
    :meth:`check_media`; call it yourself once before a bulk run).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        service_id: str | None = None,
        sender: str | None = None,
        throughput: float | None = 10,
        burst: int | None = None,
        margin: float = 0.005,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        max_in_flight: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        preflight_media: bool = False,
        media_cache_seconds: float = 600.0,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise ValidationError(
                "api_key", f"is required: pass api_key= or set the {API_KEY_ENV} variable"
            )
        if max_in_flight < 1:
            raise ValidationError("max_in_flight", "must be at least 1")
        self.service_id = service_id
        self.sender = sender
        self.limiter = (
            ThroughputLimiter(throughput, burst=burst, margin=margin)
            if throughput is not None
            else None
        )
        self.retry = retry or RetryPolicy()
        self.max_in_flight = max_in_flight
        self.stats = ClientStats()
        self._http = HttpSession(
            key, base_url, session=session, pool_size=max_in_flight,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
        )
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._fragments: OrderedDict[int, tuple[MMS, bytes]] = OrderedDict()
        self.preflight_media = preflight_media
        self._media_cache_seconds = media_cache_seconds
        self._media_checks: OrderedDict[str, tuple[float, MediaCheck]] = OrderedDict()
        self._media_session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        rate = "off" if self.limiter is None else f"{self.limiter.rate:g}/s"
        return (
            f"<MMSClient {self.base_url} service_id={self.service_id!r} sender={self.sender!r} "
            f"throughput={rate} max_in_flight={self.max_in_flight}>"
        )

    async def __aenter__(self) -> MMSClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the aiohttp sessions the client created."""
        await self._http.close()
        if self._media_session is not None:
            await self._media_session.close()

    async def check_media(self, mms: MMS) -> tuple[MediaCheck, ...]:
        """Pre-flight every media URL of ``mms`` as the service will fetch it.

        Results are cached per URL for ``media_cache_seconds``. Raises :class:`MediaError` naming
        the slides whose media the service would refuse; warnings (octet-stream, over 1 MB) are in
        the returned checks.
        """
        if self._media_session is None or self._media_session.closed:
            self._media_session = aiohttp.ClientSession()
        now = time.monotonic()
        checks: list[MediaCheck] = []
        failed: list[str] = []
        for index, slide in enumerate(mms.slides):
            for media in slide.media:
                cached = self._media_checks.get(media.url)
                if cached is not None and cached[0] > now:
                    check = cached[1]
                else:
                    check = await check_media(media.url, media.kind, session=self._media_session)
                    self._media_checks[media.url] = (now + self._media_cache_seconds, check)
                    if len(self._media_checks) > _MEDIA_CACHE_SIZE:
                        self._media_checks.popitem(last=False)
                checks.append(check)
                if not check.ok:
                    failed.append(f"slides[{index}].{media.kind}.url {media.url} {'; '.join(check.problems)}")
        if failed:
            raise MediaError("media", "the service would refuse: " + " | ".join(failed), tuple(checks))
        return tuple(checks)

    async def _preflight(self, content: MMS | str) -> None:
        if self.preflight_media and isinstance(content, MMS):
            await self.check_media(content)

    # -- the single-send path every request takes -------------------------------------------------

    async def _deliver(self, body: bytes, delivery: Delivery | None = None) -> dict[str, Any]:
        """POST one request body, retrying only what was surely not accepted."""
        delivery = delivery or Delivery()
        while True:
            if delivery.stopping:
                raise asyncio.CancelledError
            delivery.attempts += 1
            async with self._in_flight:
                ticket = await self.limiter.acquire() if self.limiter is not None else None
                delivery.on_wire = True
                try:
                    if delivery.stopping:
                        raise asyncio.CancelledError
                    if delivery.before_wire is not None:
                        await delivery.before_wire()
                        delivery.before_wire = None
                    self.stats.requests += 1
                    raw = await self._http.post(body)
                    answer = wire.decode_answer(raw.status, raw.body, raw.retry_after)
                except MMSError as exc:
                    error = exc
                else:
                    self.stats.accepted += 1
                    return answer
                finally:
                    delivery.on_wire = False
                    if ticket is not None and self.limiter is not None:
                        self.limiter.finished(ticket)
            error.attempts = delivery.attempts
            if isinstance(error, ThroughputExceeded):
                self.stats.throttled += 1
                if self.limiter is not None:
                    self.limiter.throttled()
            if not self.retry.should_retry(error, delivery.attempts):
                if getattr(error, "outcome_unknown", False):
                    self.stats.unknown += 1
                else:
                    self.stats.rejected += 1
                raise error
            self.stats.retries += 1
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            await asyncio.sleep(self.retry.delay(delivery.attempts, retry_after))

    def _fragment(self, mms: MMS) -> bytes:
        """The MMS content as JSON, encoded once per message object and reused for each recipient."""
        cached = self._fragments.get(id(mms))
        if cached is not None and cached[0] is mms:
            self._fragments.move_to_end(id(mms))
            return cached[1]
        fragment = wire.content_fragment(mms)
        self._fragments[id(mms)] = (mms, fragment)
        if len(self._fragments) > _FRAGMENT_CACHE_SIZE:
            self._fragments.popitem(last=False)
        return fragment

    def _send_body(
        self,
        mms: MMS,
        to: str,
        *,
        to_displayonly: Sequence[str] | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
    ) -> bytes:
        if not isinstance(mms, MMS):
            raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
        envelope = wire.send_envelope(
            mms, to=to, to_displayonly=to_displayonly,
            service_id=service_id or self.service_id, sender=sender or self.sender,
            from_mask=from_mask, client_reference=client_reference,
        )
        return wire.join_body(envelope, self._fragment(mms))

    def _send_saved_body(self, mms_id: str, to: str, **options: Any) -> bytes:
        options["service_id"] = options.get("service_id") or self.service_id
        options["sender"] = options.get("sender") or self.sender
        return wire.encode(wire.send_saved_request(mms_id, to=to, **options))

    # -- single requests ---------------------------------------------------------------------------

    async def send(
        self,
        mms: MMS,
        to: str,
        *,
        to_displayonly: Sequence[str] | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
    ) -> SendResult:
        """Send ``mms`` to one number (``sendmms``); raise :class:`MMSError` if not accepted.

        ``to_displayonly`` lists other participants shown in a group thread; they are not
        delivered to by this request (see :meth:`send_group`).
        """
        body = self._send_body(
            mms, to, to_displayonly=to_displayonly, service_id=service_id, sender=sender,
            from_mask=from_mask, client_reference=client_reference,
        )
        await self._preflight(mms)
        return wire.structure_send_result(await self._deliver(body))

    async def save(
        self, mms: MMS, name: str, *, client_reference: str | None = None
    ) -> SaveResult:
        """Store ``mms`` as a template (``savemms``); its ``mms-id`` is in the result if the
        answer carried it, otherwise in the N003 postback for the tracking id."""
        if not isinstance(mms, MMS):
            raise ValidationError("mms", f"must be an MMS, not {type(mms).__name__}")
        body = wire.encode(wire.save_request(mms, name=name, client_reference=client_reference))
        await self._preflight(mms)
        return wire.structure_save_result(await self._deliver(body))

    async def send_saved(
        self,
        mms_id: str,
        to: str,
        *,
        custom_texts: Mapping[int, str] | None = None,
        subject: str | None = None,
        fallback_sms_text: str | None = None,
        disable_fallback_sms: bool | None = None,
        disable_fallback_sms_link: bool | None = None,
        fallback_sms_link_expiration: datetime | None = None,
        expires_at: datetime | None = None,
        to_displayonly: Sequence[str] | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
    ) -> SendResult:
        """Send the saved template ``mms_id`` to one number (``sendsavedmms``).

        ``custom_texts`` maps slide numbers (from 1) to text that replaces that slide's text;
        ``subject`` and the fallback settings override the template's.
        """
        body = self._send_saved_body(
            mms_id, to, custom_texts=custom_texts, subject=subject,
            fallback_sms_text=fallback_sms_text, disable_fallback_sms=disable_fallback_sms,
            disable_fallback_sms_link=disable_fallback_sms_link,
            fallback_sms_link_expiration=fallback_sms_link_expiration, expires_at=expires_at,
            to_displayonly=to_displayonly, service_id=service_id, sender=sender,
            from_mask=from_mask, client_reference=client_reference,
        )
        return wire.structure_send_result(await self._deliver(body))

    # -- fan-out ------------------------------------------------------------------------------------

    async def send_group(
        self,
        content: MMS | str,
        participants: Iterable[str],
        *,
        custom_texts: Mapping[int, str] | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
        progress: Callable[[Outcome], object] | None = None,
    ) -> GroupResult:
        """Send ``content`` (an MMS, or a saved template's ``mms-id``) to a group thread.

        Participants are normalised and de-duplicated in the caller's order; each gets one request
        with the others in ``to-displayonly``. Every request is built and checked before the first
        is sent. One participant's failure never stops the others: each gets an outcome, which is
        also passed to ``progress`` as it arrives.
        """
        people = normalize_numbers(participants, field="participants")
        if not people:
            raise ValidationError("participants", "a group needs at least one participant")
        if custom_texts is not None and isinstance(content, MMS):
            raise ValidationError("custom_texts", "apply to a saved template (an mms-id) only")
        requests: list[tuple[str, bytes]] = []
        for index, person in enumerate(people):
            others = people[:index] + people[index + 1:]
            options: dict[str, Any] = {
                "to_displayonly": others, "service_id": service_id, "sender": sender,
                "from_mask": from_mask, "client_reference": client_reference,
            }
            if isinstance(content, MMS):
                body = self._send_body(content, person, **options)
            else:
                body = self._send_saved_body(content, person, custom_texts=custom_texts, **options)
            requests.append((person, body))
        await self._preflight(content)
        return await run_group(self._deliver, requests, progress)

    def _bulk_body(self, job: BulkJob) -> tuple[str, bytes]:
        if not isinstance(job, BulkJob):
            raise ValidationError("job", f"must be a BulkJob, not {type(job).__name__}")
        if (job.mms is None) == (job.mms_id is None):
            raise ValidationError("job", "give exactly one of mms and mms_id")
        to = normalize_number(job.to, field="to")
        others = list(job.to_displayonly) or None
        if job.mms is not None:
            if job.custom_texts is not None:
                raise ValidationError("custom_texts", "apply to a saved template (mms_id) only")
            body = self._send_body(
                job.mms, to, to_displayonly=others, client_reference=job.client_reference
            )
        else:
            assert job.mms_id is not None
            body = self._send_saved_body(
                job.mms_id, to, to_displayonly=others, custom_texts=job.custom_texts,
                client_reference=job.client_reference,
            )
        return to, body

    async def send_bulk(
        self,
        jobs: Iterable[BulkJob] | AsyncIterable[BulkJob],
        *,
        progress: Callable[[BulkProgress], object] | None = None,
        max_pending: int | None = None,
        journal: str | os.PathLike[str] | BulkJournal | None = None,
    ) -> AsyncIterator[BulkOutcome]:
        """Send each job and yield a :class:`BulkOutcome` per job as it completes.

        Jobs are read lazily and at most ``max_pending`` (default twice ``max_in_flight``) are
        under way at once, so memory stays flat however many there are. A bad job gets a
        ``rejected`` outcome and the run goes on. ``progress`` is called after every outcome. If
        the run is cancelled or the loop left early, jobs not yet sent are dropped unreported,
        jobs already on the wire are awaited and reported to ``progress``, and none twice.

        With ``journal`` (a SQLite file path, or a :class:`BulkJournal`), each job is recorded
        before it is sent and after, and a rerun of the same jobs skips what was accepted, resends
        what was surely not, and reports unknown outcomes instead of resending them.
        """
        opened: BulkJournal | None
        if journal is None or isinstance(journal, BulkJournal):
            opened, owned = journal, False
        else:
            opened, owned = BulkJournal(journal), True
        try:
            async with contextlib.aclosing(
                stream_bulk(
                    jobs, self._bulk_body, self._deliver,
                    max_pending=max_pending or 2 * self.max_in_flight,
                    progress=progress, journal=opened,
                )
            ) as outcomes:
                async for outcome in outcomes:
                    yield outcome
        finally:
            if owned and opened is not None:
                opened.close()

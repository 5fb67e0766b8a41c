"""MMSClient: the front that wires a flavour, a limiter, a transport and the send pipeline.

It keeps the defaults each call may override (service id, sender), the media pre-flight cache,
and the public methods; how requests are written, limited, posted and retried lives behind the
seams it is built from (:mod:`mmsjson.flavours`, :mod:`mmsjson.limiting`, :mod:`mmsjson.transport`,
:mod:`mmsjson.retry`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp

from mmsjson._batching import batcher_of, run_batches, stream_batched
from mmsjson._fanout import run_group, stream_bulk
from mmsjson._pipeline import ClientStats, Pipeline
from mmsjson.errors import MediaError, ValidationError
from mmsjson.flavours import DEFAULT_BASE_URL, Flavour, JsonFlavour
from mmsjson.journal import BulkJournal
from mmsjson.limiting import Limiter, Mode, ThroughputLimiter
from mmsjson.limiting.redis import RedisLimiter
from mmsjson.media import MediaCheck, check_media
from mmsjson.models import (
    MMS,
    BulkJob,
    BulkOutcome,
    BulkProgress,
    GroupResult,
    Outcome,
    SaveResult,
    SendResult,
)
from mmsjson.numbers import normalize_number, normalize_numbers
from mmsjson.retry import RetryPolicy
from mmsjson.transport import AiohttpTransport, PreparedRequest, Transport, pool_capacity

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "SENDER_ENV", "SERVICE_ID_ENV", "ClientStats", "MMSClient"]

API_KEY_ENV = "MMSJSON_API_KEY"
BASE_URL_ENV = "MMSJSON_BASE_URL"
SERVICE_ID_ENV = "MMSJSON_SERVICE_ID"
SENDER_ENV = "MMSJSON_SENDER"
_MEDIA_CACHE_SIZE = 1024


def _check_progress(progress: object) -> None:
    """Refuse a ``progress`` that calling would not run: a coroutine function's coroutine is never
    awaited (progress is called after every outcome, without holding the run up)."""
    if inspect.iscoroutinefunction(progress):
        raise ValidationError(
            "progress", "must be a plain function, not a coroutine function: it is called, not "
            "awaited, after every outcome"
        )


class MMSClient:
    """The client for the MMS JSON API.

    ``api_key``, ``base_url``, ``service_id`` and ``sender`` fall back to the environment variables
    ``MMSJSON_API_KEY``, ``MMSJSON_BASE_URL``, ``MMSJSON_SERVICE_ID`` and ``MMSJSON_SENDER`` (the
    ones the ``mmsjson`` command and its sandbox use); surrounding whitespace in a key (read from a
    file) is dropped. ``service_id`` and ``sender`` are defaults each call may override.
    ``throughput`` is the account's limit in requests per second (``None`` turns the limiter off,
    e.g. against a local fake server); every request of this client, retries included, shares one
    limiter: a :class:`~mmsjson.limiting.ThroughputLimiter`, or the ``limiter`` passed in (any
    :class:`~mmsjson.limiting.Limiter`). ``shared="redis://host:6379/0"`` with ``key="account-id"``
    shares ``throughput`` with every process and host that uses the same Redis and key (a
    :class:`~mmsjson.limiting.redis.RedisLimiter`; needs ``mmsjson[redis]``). ``limiter_mode`` is
    ``"exact"`` (never more than ``throughput`` arrivals in any sliding second) or ``"paced"`` (a
    few percent more over jittery networks, rare E113 that are retried). ``max_in_flight`` caps
    requests waiting for an answer (and the connection pool); by default it is the throughput (at
    least 64), a ceiling the limiter never needs: it keeps the requests in flight to twice what
    Little's law asks at the observed round trip.

    The seams can be replaced: ``flavour`` (how requests are written; default the JSON API at
    ``base_url``), ``transport`` (how they are posted; default aiohttp, or e.g.
    :class:`mmsjson.testing.MockTransport`). An ``async with`` block owns what the client
    created; a ``session`` passed in is used and not closed, with its own TLS settings unless
    ``ssl`` is given, and ``max_in_flight`` is kept within its connector's pool, so that no
    request waits inside aiohttp for a connection while its answer deadline runs.
    ``preflight_media=True`` checks every media URL as the service will fetch it before ``send``,
    ``save`` and ``send_group`` (see :meth:`check_media`).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        service_id: str | None = None,
        sender: str | None = None,
        throughput: float | None = 10,
        burst: int | None = None,
        margin: float | None = None,
        limiter_mode: Mode = "exact",
        limiter: Limiter[Any] | None = None,
        shared: str | None = None,
        key: str | None = None,
        base_url: str | None = None,
        flavour: Flavour | None = None,
        transport: Transport | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl.SSLContext | None = None,
        max_in_flight: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        answer_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        preflight_media: bool = False,
        media_cache_seconds: float = 600.0,
    ) -> None:
        self._closers: list[Callable[[], Any]] = []
        if flavour is None:
            secret = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
            if not secret:
                raise ValidationError(
                    "api_key", f"is required: pass api_key= or set the {API_KEY_ENV} variable"
                )
            flavour = JsonFlavour(secret, base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL)
        if max_in_flight is None:
            rate = throughput if limiter is None else getattr(limiter, "rate", None)
            max_in_flight = (
                max(64, math.ceil(rate)) if isinstance(rate, int | float) and math.isfinite(rate) else 64
            )
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValidationError("max_in_flight", "must be an integer of at least 1")
        if session is not None and transport is None:
            capacity = pool_capacity(session)
            if capacity is not None:
                max_in_flight = min(max_in_flight, capacity)
        if shared is not None:
            limiter = self._shared_limiter(shared, key, throughput, limiter)
        if limiter is None and throughput is not None:
            try:
                limiter = ThroughputLimiter(throughput, mode=limiter_mode, burst=burst, margin=margin)
            except (TypeError, ValueError) as exc:
                field = "limiter_mode" if "mode" in str(exc) else "throughput"
                raise ValidationError(field, str(exc)) from None
            self._closers.append(limiter.aclose)
        if transport is None:
            transport = AiohttpTransport(
                session=session, ssl=ssl, pool_size=max_in_flight,
                connect_timeout=connect_timeout, read_timeout=read_timeout,
                answer_timeout=answer_timeout,
            )
            self._closers.append(transport.aclose)
        self.service_id = service_id if service_id is not None else os.environ.get(SERVICE_ID_ENV)
        self.sender = sender if sender is not None else os.environ.get(SENDER_ENV)
        self.flavour = flavour
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.max_in_flight = max_in_flight
        self.stats = ClientStats()
        self._pipeline = Pipeline(
            transport=transport, read=flavour.read, limiter=limiter, retry=self.retry,
            max_in_flight=max_in_flight, stats=self.stats,
        )
        self.preflight_media = preflight_media
        self._media_cache_seconds = media_cache_seconds
        self._media_checks: OrderedDict[str, tuple[float, MediaCheck]] = OrderedDict()
        self._media_session: aiohttp.ClientSession | None = None

    def _shared_limiter(
        self, url: str, key: str | None, rate: float | None, limiter: Limiter[Any] | None
    ) -> RedisLimiter:
        """The account's limit shared through the Redis at ``url`` by every process that uses ``key``."""
        if limiter is not None:
            raise ValidationError("shared", "give either limiter= or shared=, not both")
        if rate is None:
            raise ValidationError("shared", "needs throughput=: the account's whole rate, shared by all")
        if not key:
            raise ValidationError("key", "names the shared limit in Redis (e.g. the account id)")
        try:
            shared = RedisLimiter.from_url(url, rate=rate, key=key)
        except (ImportError, TypeError, ValueError) as exc:
            raise ValidationError("shared", str(exc)) from None
        self._closers.append(shared.aclose)
        return shared

    @property
    def base_url(self) -> str:
        return self.flavour.base_url

    def __repr__(self) -> str:
        limiter = getattr(self, "limiter", None)
        rate = "off" if limiter is None else f"{getattr(limiter, 'rate', '?'):g}/s"
        flavour = getattr(self, "flavour", None)
        return (
            f"<MMSClient {getattr(flavour, 'name', '?')} {getattr(flavour, 'base_url', '?')} "
            f"service_id={getattr(self, 'service_id', None)!r} "
            f"sender={getattr(self, 'sender', None)!r} throughput={rate} "
            f"max_in_flight={getattr(self, 'max_in_flight', '?')}>"
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
        """Close what the client created: its aiohttp sessions, its limiter."""
        for close in self._closers:
            await close()
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

    # -- building requests with the client's defaults -----------------------------------------------

    def _send_request(
        self,
        mms: MMS,
        to: str,
        *,
        to_displayonly: Sequence[str] | None = None,
        service_id: str | None = None,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
    ) -> PreparedRequest:
        return self.flavour.send(
            mms, to, to_displayonly=to_displayonly, service_id=service_id or self.service_id,
            sender=sender or self.sender, from_mask=from_mask, client_reference=client_reference,
        )

    def _send_saved_request(self, mms_id: str, to: str, **options: Any) -> PreparedRequest:
        options["service_id"] = options.get("service_id") or self.service_id
        options["sender"] = options.get("sender") or self.sender
        return self.flavour.send_saved(mms_id, to, **options)

    def _job_request(self, job: BulkJob) -> PreparedRequest:
        """The request of one bulk job; of its errors, a bad recipient's is the one raised."""
        if not isinstance(job, BulkJob):
            raise ValidationError("job", f"must be a BulkJob, not {type(job).__name__}")
        mms = job.mms
        if (mms is None) == (job.mms_id is None):
            raise ValidationError("job", "give exactly one of mms and mms_id")
        others = job.to_displayonly or None
        if mms is None:
            assert job.mms_id is not None
            return self._send_saved_request(
                job.mms_id, normalize_number(job.to, field="to"), to_displayonly=others,
                service_id=job.service_id, sender=job.sender, from_mask=job.from_mask,
                client_reference=job.client_reference, **job.template_overrides,
            )
        try:
            if not (
                job.custom_texts is None and job.subject is None
                and job.fallback_sms_text is None and job.expires_at is None
            ):
                raise ValidationError(
                    sorted(job.template_overrides)[0], "applies to a saved template (mms_id) only; "
                    "an MMS carries its own"
                )
            return self.flavour.send(  # it reads the recipient once, where it is cached
                mms, job.to, to_displayonly=others, service_id=job.service_id or self.service_id,
                sender=job.sender or self.sender, from_mask=job.from_mask,
                client_reference=job.client_reference,
            )
        except Exception:
            normalize_number(job.to, field="to")
            raise

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
        flavour = self.flavour
        request = flavour.send(
            mms, to, to_displayonly=to_displayonly, service_id=service_id or self.service_id,
            sender=sender or self.sender, from_mask=from_mask, client_reference=client_reference,
        )
        if self.preflight_media:
            await self._preflight(mms)
        answer, _ = await self._pipeline.deliver(request)
        return flavour.send_result(answer)

    async def save(
        self, mms: MMS, name: str, *, client_reference: str | None = None
    ) -> SaveResult:
        """Store ``mms`` as a template (``savemms``); its ``mms-id`` is in the result if the
        answer carried it, otherwise in the N003 postback for the tracking id."""
        request = self.flavour.save(mms, name=name, client_reference=client_reference)
        await self._preflight(mms)
        answer, _ = await self._pipeline.deliver(request)
        return self.flavour.save_result(answer)

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
        request = self._send_saved_request(
            mms_id, to, custom_texts=custom_texts, subject=subject,
            fallback_sms_text=fallback_sms_text, disable_fallback_sms=disable_fallback_sms,
            disable_fallback_sms_link=disable_fallback_sms_link,
            fallback_sms_link_expiration=fallback_sms_link_expiration, expires_at=expires_at,
            to_displayonly=to_displayonly, service_id=service_id, sender=sender,
            from_mask=from_mask, client_reference=client_reference,
        )
        answer, _ = await self._pipeline.deliver(request)
        return self.flavour.send_result(answer)

    # -- fan-out ------------------------------------------------------------------------------------

    async def send_group(
        self,
        content: MMS | str,
        participants: Iterable[str],
        *,
        custom_texts: Mapping[int, str] | None = None,
        subject: str | None = None,
        fallback_sms_text: str | None = None,
        expires_at: datetime | None = None,
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
        also passed to ``progress`` as it arrives. ``custom_texts``, ``subject``,
        ``fallback_sms_text`` and ``expires_at`` override a saved template's.
        """
        _check_progress(progress)
        people = normalize_numbers(participants, field="participants")
        if not people:
            raise ValidationError("participants", "a group needs at least one participant")
        overrides = {
            name: value
            for name, value in (
                ("custom_texts", custom_texts), ("subject", subject),
                ("fallback_sms_text", fallback_sms_text), ("expires_at", expires_at),
            )
            if value is not None
        }
        if overrides and isinstance(content, MMS):
            raise ValidationError(
                sorted(overrides)[0], "applies to a saved template (an mms-id) only; an MMS "
                "carries its own"
            )
        requests: list[PreparedRequest] = []
        for index, person in enumerate(people):
            others = people[:index] + people[index + 1:]
            options: dict[str, Any] = {
                "to_displayonly": others, "service_id": service_id, "sender": sender,
                "from_mask": from_mask, "client_reference": client_reference,
            }
            if isinstance(content, MMS):
                requests.append(self._send_request(content, person, **options))
            else:
                requests.append(self._send_saved_request(content, person, **options, **overrides))
        await self._preflight(content)
        return await run_group(self._pipeline, requests, self.flavour.send_result, progress)

    async def send_batch(
        self,
        mms: MMS,
        recipients: Iterable[str],
        *,
        sender: str | None = None,
        from_mask: str | None = None,
        client_reference: str | None = None,
        parameters: Mapping[str, Mapping[str, str]] | None = None,
        progress: Callable[[Outcome], object] | None = None,
    ) -> GroupResult:
        """Send ``mms`` to each of ``recipients`` as their own message (no group thread).

        Through SMS REST the recipients are packed into batches of the flavour's
        ``max_recipients``, and ``parameters`` fills ``${name}`` placeholders per recipient
        (``{"name": {"+15551231234": "Ann", "default": "there"}}``); other flavours make one
        request per recipient and take no ``parameters``. Every request is checked before the
        first is sent; each recipient gets an outcome.
        """
        _check_progress(progress)
        batches = getattr(self.flavour, "batches", None)
        batcher = batcher_of(self.flavour)
        if batches is None or batcher is None:
            if parameters is not None:
                raise ValidationError(
                    "parameters", f"the {self.flavour.name} flavour has no per-recipient parameters"
                )
            people = normalize_numbers(recipients, field="recipients")
            if not people:
                raise ValidationError("recipients", "a batch needs at least one recipient")
            requests = [
                self._send_request(
                    mms, person, sender=sender, from_mask=from_mask,
                    client_reference=client_reference,
                )
                for person in people
            ]
            await self._preflight(mms)
            return await run_group(self._pipeline, requests, self.flavour.send_result, progress)
        packed: list[PreparedRequest] = batches(
            mms, recipients, sender=sender or self.sender, from_mask=from_mask,
            client_reference=client_reference, parameters=parameters,
        )
        await self._preflight(mms)
        return await run_batches(self._pipeline, packed, batcher, progress)

    async def send_bulk(
        self,
        jobs: Iterable[BulkJob] | AsyncIterable[BulkJob],
        *,
        progress: Callable[[BulkProgress], object] | None = None,
        max_pending: int | None = None,
        journal: str | os.PathLike[str] | BulkJournal | None = None,
    ) -> AsyncGenerator[BulkOutcome, None]:
        """Send each job and yield a :class:`BulkOutcome` per job as it completes.

        Jobs are read lazily and at most ``max_pending`` (default twice ``max_in_flight``) are
        under way at once, so memory stays flat however many there are. A bad job gets a
        ``rejected`` outcome and the run goes on. ``progress`` is called after every outcome (a
        plain function: it is not awaited); if it raises, the run ends with its error. If the run
        is cancelled, left early or ends with an error, jobs not yet sent are dropped unreported,
        jobs already on the wire are awaited and reported to ``progress``, and none twice.

        Through a flavour that carries many recipients per request (SMS REST batches), jobs that
        differ only in the recipient are packed into batches (``max_pending`` defaults to four
        full batches); each job still gets its own outcome and journal entry.

        With ``journal`` (a SQLite file path, or a :class:`BulkJournal`), each job is recorded
        before it is sent and after, and a rerun of the same jobs skips what was accepted, resends
        what was surely not, and reports unknown outcomes instead of resending them.
        """
        if max_pending is not None and (not isinstance(max_pending, int) or max_pending < 1):
            raise ValidationError("max_pending", "must be an integer of at least 1")
        _check_progress(progress)
        opened: BulkJournal | None
        if journal is None or isinstance(journal, BulkJournal):
            opened, owned = journal, False
        else:
            opened, owned = BulkJournal(journal), True
        batcher = batcher_of(self.flavour)
        flavour = self.flavour
        tracking_id: Callable[[Any], str | None] = getattr(
            flavour, "send_tracking_id", lambda answer: flavour.send_result(answer).tracking_id
        )
        try:
            async with contextlib.aclosing(
                stream_bulk(
                    jobs, self._job_request, self._pipeline, tracking_id,
                    max_pending=max_pending if max_pending is not None else 2 * self.max_in_flight,
                    progress=progress, journal=opened,
                ) if batcher is None else stream_batched(
                    jobs, self._job_request, self._pipeline, batcher,
                    max_pending=max_pending if max_pending is not None
                    else max(2 * self.max_in_flight, 4 * batcher.max_recipients),
                    progress=progress, journal=opened,
                )
            ) as outcomes:
                async for outcome in outcomes:
                    yield outcome
        finally:
            if owned and opened is not None:
                opened.close()

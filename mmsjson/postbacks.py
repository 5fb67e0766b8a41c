"""An aiohttp receiver for the service's postbacks: store first, answer 200 fast, hand over once.

The service POSTs a JSON notification for each step of a sent message (``MMS_MT``: N101, N102,
N202, E101...), for saved templates (N003 with the ``mms-id``, E002..E004) and for inbound
messages (``MMS_MO``, N401). It wants HTTP 200 within 10 seconds, and retries about five minutes
later, up to 5 times, when it does not get it. So the receiver reads the whole body, writes it to a
SQLite file (group-committed by a writer thread, never blocking the event loop), answers 200, and
only then hands a typed event to the application. A notification delivered again has the same body:
it is recognised by a digest of that body and answered 200 without being handed over twice.

Every body that could be read is kept, whatever it holds: one that is not a notification (not
JSON, not an object, nested too deeply) is written to a table of its own, answered 400, and listed
by :meth:`PostbackReceiver.unparsed` for an operator.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import hashlib
import inspect
import ipaddress
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from aiohttp import web
from attrs import evolve, field, frozen

from mmsjson._store import SQLiteStore
from mmsjson.errors import TemplateError, ValidationError, api_error_from_code

__all__ = [
    "POSTBACK_CODES",
    "DeliveryEvent",
    "InboundEvent",
    "Postback",
    "PostbackCode",
    "PostbackOutcome",
    "PostbackReceiver",
    "TemplateEvent",
    "UnparsedPostback",
    "describe_code",
    "parse_postback",
]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS postbacks (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    remote TEXT,
    tracking_id TEXT,
    client_reference TEXT,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS postbacks_tracking ON postbacks (tracking_id);
CREATE INDEX IF NOT EXISTS postbacks_reference ON postbacks (client_reference);
CREATE TABLE IF NOT EXISTS unparsed_postbacks (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    remote TEXT,
    problem TEXT NOT NULL,
    body BLOB NOT NULL
);
"""


class PostbackOutcome(enum.StrEnum):
    """What a notification code says became of a message or template."""

    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    PENDING = "pending"
    TEMPLATE_READY = "template ready"
    TEMPLATE_FAILED = "template failed"
    INBOUND = "inbound"
    UNKNOWN = "unknown"


@frozen(kw_only=True)
class PostbackCode:
    """One postback code from the vendor's table: what it means and the outcome it reports."""

    code: str | None
    meaning: str
    outcome: PostbackOutcome


def _table(*rows: tuple[str, str, PostbackOutcome]) -> Mapping[str, PostbackCode]:
    return MappingProxyType({
        code: PostbackCode(code=code, meaning=meaning, outcome=outcome) for code, meaning, outcome in rows
    })


_O = PostbackOutcome
POSTBACK_CODES: Mapping[str, PostbackCode] = _table(
    ("N101", "sent; processing started", _O.PENDING),
    ("N102", "delivered, or delivery status updated", _O.DELIVERED),
    ("N103", "expired", _O.EXPIRED),
    ("N202", "delivered as fallback SMS", _O.DELIVERED),
    ("N013", "transcoding done and sending triggered", _O.PENDING),
    ("E101", "sending failure", _O.FAILED),
    ("E102", "delivery failed, or destination or content rejected", _O.FAILED),
    ("E202", "fallback SMS delivery failed", _O.FAILED),
    ("E011", "content validation failed", _O.FAILED),
    ("E012", "audio transcoding failed; not sent", _O.FAILED),
    ("E013", "video transcoding failed; not sent", _O.FAILED),
    ("E999", "queue processing error", _O.FAILED),
    ("N003", "saved template transcoded and available", _O.TEMPLATE_READY),
    ("E002", "saved template: audio transcoding failed", _O.TEMPLATE_FAILED),
    ("E003", "saved template: video transcoding failed", _O.TEMPLATE_FAILED),
    ("E004", "saved template: image transcoding failed", _O.TEMPLATE_FAILED),
    ("N401", "inbound message", _O.INBOUND),
)
"""The postback codes of ``spec/status-and-postback-codes.md``, by code."""

_TEMPLATE_OUTCOMES = frozenset({PostbackOutcome.TEMPLATE_READY, PostbackOutcome.TEMPLATE_FAILED})


def describe_code(code: str | None) -> PostbackCode:
    """The table's entry for ``code``; an unknown ``E`` code is a failure, any other unknown code unknown."""
    if code is not None and code in POSTBACK_CODES:
        return POSTBACK_CODES[code]
    if code is not None and code.startswith("E"):
        return PostbackCode(code=code, meaning="unknown error code", outcome=PostbackOutcome.FAILED)
    return PostbackCode(code=code, meaning="unknown code", outcome=PostbackOutcome.UNKNOWN)


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


def _number(payload: Mapping[str, Any], key: str) -> str | None:
    """A phone number or short code, given as a string or (by a lax sender) as a JSON integer."""
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


@frozen(kw_only=True)
class Postback:
    """One notification: its code, the ids that tie it to a request, and the raw body."""

    code: str | None
    tracking_id: str | None
    timestamp: str | None
    raw: Mapping[str, Any] = field(repr=False, eq=False)
    id: int = 0

    @property
    def outcome(self) -> PostbackOutcome:
        """What the code reports (see :data:`POSTBACK_CODES`)."""
        return describe_code(self.code).outcome

    @property
    def meaning(self) -> str:
        """The code's meaning in words, from the vendor's table."""
        return describe_code(self.code).meaning


@frozen(kw_only=True)
class DeliveryEvent(Postback):
    """What became of a sent MMS (``MMS_MT``): N101 sent, N102 delivered, N202 sent as SMS..."""

    to: str | None
    sender: str | None
    status: str | None
    status_details: str | None
    sent_as: str | None
    client_reference: str | None
    mms_id: str | None

    @property
    def failed(self) -> bool:
        """True for every final failure: E-codes and N103 (expired)."""
        return self.outcome in (PostbackOutcome.FAILED, PostbackOutcome.EXPIRED)


@frozen(kw_only=True)
class TemplateEvent(Postback):
    """A saved template was transcoded (N003, with its ``mms_id``) or failed (E002..E004)."""

    mms_id: str | None
    status_details: str | None
    client_reference: str | None

    @property
    def ready(self) -> bool:
        return self.outcome is PostbackOutcome.TEMPLATE_READY

    @property
    def failed(self) -> bool:
        return self.outcome is PostbackOutcome.TEMPLATE_FAILED


@frozen(kw_only=True)
class InboundEvent(Postback):
    """A message sent to your number (``MMS_MO``, N401); ``copy_to`` lists a group's others."""

    sender: str | None
    to: str | None
    keyword: str | None
    operator_id: str | None
    subject: str | None
    files: tuple[str, ...]
    copy_to: tuple[str, ...]

    @property
    def outcome(self) -> PostbackOutcome:
        return PostbackOutcome.INBOUND


@frozen(kw_only=True)
class UnparsedPostback:
    """A body kept although it is no notification (answered 400), for an operator to inspect."""

    id: int
    received_at: datetime
    remote: str | None
    problem: str
    body: bytes = field(repr=False)


def parse_postback(payload: Mapping[str, Any], id: int = 0) -> Postback:
    """The typed event for one notification body."""
    code = _text(payload, "code")
    common: dict[str, Any] = {
        "code": code,
        "tracking_id": _text(payload, "tracking-id"),
        "timestamp": _text(payload, "timestamp"),
        "raw": payload,
        "id": id,
    }
    if payload.get("origin") == "MMS_MO" or code == "N401":
        content = payload.get("content")
        copies = payload.get("copy-to")
        return InboundEvent(
            **common,
            sender=_number(payload, "from"), to=_number(payload, "to"),
            keyword=_text(payload, "keyword"), operator_id=_text(payload, "operator-id"),
            subject=_text(payload, "message-subject"),
            files=tuple(
                item["file"] for item in content
                if isinstance(item, dict) and isinstance(item.get("file"), str)
            ) if isinstance(content, list) else (),
            copy_to=tuple(
                number for item in copies
                if isinstance(item, dict) and (number := _number(item, "number")) is not None
            ) if isinstance(copies, list) else (),
        )
    if describe_code(code).outcome in _TEMPLATE_OUTCOMES:
        return TemplateEvent(
            **common, mms_id=_text(payload, "mms-id"),
            status_details=_text(payload, "status-details"),
            client_reference=_text(payload, "client-reference"),
        )
    return DeliveryEvent(
        **common,
        to=_number(payload, "to"), sender=_number(payload, "from"), status=_text(payload, "status"),
        status_details=_text(payload, "status-details"), sent_as=_text(payload, "sent-as"),
        client_reference=_text(payload, "client-reference"), mms_id=_text(payload, "mms-id"),
    )


@frozen(kw_only=True)
class _Reading:
    """What a body turned out to be: an event, or the problem that kept it from being one."""

    digest: str
    event: Postback | None = None
    problem: str = ""


def _raw_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _digest(payload: Mapping[str, Any], body: bytes) -> str:
    """A digest of the JSON content, so a redelivery dedupes even if re-serialised.

    Equal to the digest earlier versions stored for every body they could store, so a database
    written by them still dedupes; the raw bytes' digest where the content cannot be serialised.
    """
    try:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (RecursionError, ValueError):
        return _raw_digest(body)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


_MAX_DEPTH = 32
"""The deepest nesting of objects and arrays kept as a notification (the spec's go 3 deep).

A fixed bound, so what was stored can be parsed again by :meth:`PostbackReceiver.history` from any
caller: how deep ``json.loads`` gets before a RecursionError depends on the caller's stack.
"""


def _nested_deeper_than(value: object, limit: int) -> bool:
    """True if ``value`` holds objects or arrays more than ``limit`` levels deep (no recursion)."""
    levels = [(value, 1)]
    while levels:
        item, depth = levels.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        levels.extend((child, depth + 1) for child in children)
    return False


def _read_notification(body: bytes) -> _Reading:
    """Parse ``body`` without ever raising: whatever it holds, the caller can still store it."""
    try:
        payload = json.loads(body)
    except RecursionError:
        problem = "not JSON this receiver can read: nested too deeply"
    except json.JSONDecodeError as exc:
        problem = f"not JSON: {exc.msg} at byte {exc.pos}"
    except ValueError as exc:
        problem = f"not JSON: {exc}"
    else:
        if not isinstance(payload, dict):
            problem = f"not a JSON object but a {type(payload).__name__}"
        elif _nested_deeper_than(payload, _MAX_DEPTH):
            problem = f"not a notification: nested more than {_MAX_DEPTH} levels deep"
        else:
            try:
                return _Reading(digest=_digest(payload, body), event=parse_postback(payload))
            except Exception as exc:
                problem = f"not a notification: {type(exc).__name__}"
    return _Reading(digest=_raw_digest(body), problem=problem)


def _storable(text: str | None) -> str | None:
    """``text`` if SQLite can hold it as TEXT (a lone surrogate cannot be encoded), else None."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def _escaped(text: str) -> str:
    """``text`` with each lone surrogate written as ``\\udcff``, so SQLite can hold it as TEXT."""
    return text.encode("utf-8", "backslashreplace").decode()


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
    return value


class PostbackReceiver:
    """Receives postbacks, stores each raw body in ``path`` first, and hands typed events over.

    Mount :meth:`handle` as a POST route in your own aiohttp app, or run :meth:`start`. Events come
    from ``async for event in receiver.events()``, from ``on_event`` (a function or coroutine
    function), and from :meth:`wait_for` / :meth:`template_id`. ``allow_from`` lists the networks
    the service posts from (given at onboarding); others get 403. A body must arrive whole within
    ``body_timeout`` seconds (else 408, nothing stored) and be at most ``max_body`` bytes (else
    413). A body that is no JSON object is kept for :meth:`unparsed` and answered 400. A connection
    that has not sent a complete request head ``idle_timeout`` seconds after it opened or after its
    last answer is closed (by :meth:`start`; pass ``keepalive_timeout`` to your own runner). A store
    file that is damaged is refused here with :class:`~mmsjson.errors.StoreError` (the file is read
    whole once); one that cannot be written later gets 503, so the service posts again.

    ``on_event`` never delays an answer: a plain function runs in a worker thread of its own, one
    event at a time in the order stored; a coroutine function runs as a task. One that raises is
    logged on the ``mmsjson.postbacks`` logger.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "postbacks.db",
        *,
        allow_from: Iterable[str] | None = None,
        max_body: int = 64 * 1024,
        body_timeout: float = 10.0,
        idle_timeout: float = 15.0,
        on_event: Callable[[Postback], object] | None = None,
    ) -> None:
        _positive("max_body", max_body)
        if on_event is not None and not callable(on_event):
            raise ValidationError(
                "on_event", f"must be a function or coroutine function, not a {type(on_event).__name__}"
            )
        self.max_body = max_body
        self.body_timeout = _positive("body_timeout", body_timeout)
        self.idle_timeout = _positive("idle_timeout", idle_timeout)
        self._allowed = (
            None if allow_from is None else tuple(ipaddress.ip_network(n, strict=False) for n in allow_from)
        )
        self._on_event = on_event
        self._on_event_is_async = on_event is not None and (
            inspect.iscoroutinefunction(on_event) or inspect.iscoroutinefunction(type(on_event).__call__)
        )
        self._worker: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[Postback] | None = None
        self._waiters: dict[tuple[str, str], list[asyncio.Future[Postback]]] = {}
        self._callbacks: set[asyncio.Future[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._store = SQLiteStore(path, _SCHEMA, verify=True)
        self.stored = 0
        self.duplicates = 0
        self.refused = 0
        self.unparsable = 0

    def __repr__(self) -> str:
        return (
            f"<PostbackReceiver {self._store.path} stored={self.stored} duplicates={self.duplicates} "
            f"refused={self.refused} unparsable={self.unparsable}>"
        )

    def _allowed_remote(self, remote: str | None) -> bool:
        if self._allowed is None:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._allowed)

    def _refuse(self, status: int, reason: str, *, close: bool = False) -> web.Response:
        self.refused += 1
        response = web.Response(status=status, text=reason)
        if close:
            response.force_close()
        return response

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: read whole, store durably, answer; hand the event over afterwards."""
        if not self._allowed_remote(request.remote):
            return self._refuse(403, "source address not allowed")
        try:
            body = await self._read_body(request)
        except _Refused as refusal:
            return self._refuse(refusal.status, refusal.reason, close=True)
        reading = _read_notification(body)
        try:
            row_id = await self._insert(request, body, reading)
        except (sqlite3.Error, RuntimeError):
            logger.exception("could not store a postback; answering 503 so the service retries it")
            return self._refuse(503, "storage unavailable")
        if reading.event is None:
            if row_id is not None:
                self.unparsable += 1
                logger.warning(
                    "kept unparsable postback %d from %s (%s); see PostbackReceiver.unparsed()",
                    row_id, request.remote, reading.problem,
                )
            return self._refuse(400, f"body is {reading.problem}")
        if row_id is None:
            self.duplicates += 1
        else:
            self.stored += 1
            self._hand_over(evolve(reading.event, id=row_id))
        return web.Response(text="OK")

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body, however it is split or trickled, within ``body_timeout`` seconds."""
        if request.content_length is not None and request.content_length > self.max_body:
            raise _Refused(413, "body too large")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while chunk := await request.content.readany():
                    size += len(chunk)
                    if size > self.max_body:
                        raise _Refused(413, "body too large")
                    chunks.append(chunk)
        except TimeoutError:
            raise _Refused(408, "body not received in time") from None
        except (ConnectionError, web.RequestPayloadError):
            raise _Refused(400, "body incomplete") from None
        return b"".join(chunks)

    async def _insert(self, request: web.Request, body: bytes, reading: _Reading) -> int | None:
        """Write ``body`` durably to its table; its row id, or None if it is there already."""
        remote = None if request.remote is None else _escaped(request.remote)
        if reading.event is None:
            rows = await self._store.fetch(
                "INSERT INTO unparsed_postbacks (digest, received_at, remote, problem, body) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING RETURNING id",
                (reading.digest, time.time(), remote, _escaped(reading.problem), body),
            )
        else:
            rows = await self._store.fetch(
                "INSERT INTO postbacks (digest, received_at, remote, tracking_id, client_reference, body) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING RETURNING id",
                (
                    reading.digest, time.time(), remote, _storable(reading.event.tracking_id),
                    _storable(getattr(reading.event, "client_reference", None)), body,
                ),
            )
        return int(rows[0][0]) if rows else None

    def _hand_over(self, event: Postback) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)
        for key in (("tracking", event.tracking_id), ("reference", getattr(event, "client_reference", None))):
            if key[1] is not None:
                for waiter in self._waiters.pop((key[0], key[1]), []):
                    if not waiter.done():
                        waiter.set_result(event)
        if self._on_event is not None:
            self._schedule_callback(self._on_event, event)

    def _schedule_callback(self, callback: Callable[[Postback], object], event: Postback) -> None:
        """Start ``on_event`` for ``event`` without waiting for it: a task, or the worker thread."""
        if self._on_event_is_async:
            try:
                result = callback(event)
            except Exception:
                self._log_callback_failure(event)
                return
            if inspect.isawaitable(result):
                self._start_task(result, event)
            return
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmsjson-on-event")
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        done = loop.run_in_executor(self._worker, context.run, self._call_in_worker, callback, event, loop)
        self._callbacks.add(done)
        done.add_done_callback(self._callbacks.discard)

    def _call_in_worker(
        self, callback: Callable[[Postback], object], event: Postback, loop: asyncio.AbstractEventLoop,
    ) -> None:
        try:
            result = callback(event)
        except Exception:
            self._log_callback_failure(event)
            return
        if inspect.isawaitable(result):
            loop.call_soon_threadsafe(self._start_task, result, event)

    def _start_task(self, awaitable: Awaitable[object], event: Postback) -> None:
        task = asyncio.ensure_future(awaitable)
        self._callbacks.add(task)
        task.add_done_callback(functools.partial(self._callback_done, event))

    def _callback_done(self, event: Postback, task: asyncio.Future[Any]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log_callback_failure(event, task.exception())

    @staticmethod
    def _log_callback_failure(event: Postback, error: BaseException | None = None) -> None:
        logger.error(
            "the on_event callback failed for postback %d (code %r); the postback is stored",
            event.id, event.code, exc_info=error or True,
        )

    def events(self) -> AsyncIterator[Postback]:
        """Each event stored from this call on, once, in the order stored."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._drain(self._queue)

    @staticmethod
    async def _drain(events: asyncio.Queue[Postback]) -> AsyncIterator[Postback]:
        while True:
            yield await events.get()

    async def history(self, since_id: int = 0) -> list[Postback]:
        """Every stored event after ``since_id``, e.g. to catch up after a restart."""
        rows = await self._store.fetch(
            "SELECT id, body FROM postbacks WHERE id > ? ORDER BY id", (since_id,)
        )
        return [parse_postback(json.loads(body), row_id) for row_id, body in rows]

    async def unparsed(self, since_id: int = 0) -> list[UnparsedPostback]:
        """Every kept body after ``since_id`` that was no notification, with the reason, oldest first."""
        rows = await self._store.fetch(
            "SELECT id, received_at, remote, problem, body FROM unparsed_postbacks WHERE id > ? ORDER BY id",
            (since_id,),
        )
        return [
            UnparsedPostback(
                id=row_id, received_at=datetime.fromtimestamp(received_at, UTC), remote=remote,
                problem=problem, body=bytes(body),
            )
            for row_id, received_at, remote, problem, body in rows
        ]

    async def wait_for(
        self,
        *,
        tracking_id: str | None = None,
        client_reference: str | None = None,
    ) -> Postback:
        """The first event for a tracking id or client reference, stored already or yet to come.

        Bound the wait with ``async with asyncio.timeout(seconds):``.
        """
        if (tracking_id is None) == (client_reference is None):
            raise ValueError("give exactly one of tracking_id and client_reference")
        key: tuple[str, str]
        if tracking_id is not None:
            key, column = ("tracking", tracking_id), "tracking_id"
        else:
            assert client_reference is not None
            key, column = ("reference", client_reference), "client_reference"
        waiter: asyncio.Future[Postback] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            rows = await self._store.fetch(
                f"SELECT id, body FROM postbacks WHERE {column} = ? ORDER BY id LIMIT 1",  # noqa: S608
                (_storable(key[1]),),
            )
            if rows and not waiter.done():
                waiter.set_result(parse_postback(json.loads(rows[0][1]), rows[0][0]))
            return await waiter
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(key, None)

    async def template_id(self, tracking_id: str) -> str:
        """The ``mms-id`` a ``savemms`` request got, from its N003 postback.

        Raises :class:`TemplateError` (or the family of its code) if the template failed.
        """
        event = await self.wait_for(tracking_id=tracking_id)
        if isinstance(event, TemplateEvent) and event.ready and event.mms_id:
            return event.mms_id
        error = api_error_from_code(event.code or "unknown", getattr(event, "status_details", None))
        if not isinstance(error, TemplateError):
            error = TemplateError(event.code, f"template failed: {error}")
        raise error

    def app(self, path: str = "/postbacks") -> web.Application:
        """An aiohttp application with the receiver at ``path``."""
        app = web.Application(client_max_size=self.max_body + 1024)
        app.router.add_post(path, self.handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, path: str = "/postbacks") -> str:
        """Serve on ``host:port`` and return the postback URL."""
        runner = web.AppRunner(
            self.app(path), access_log=None, handle_signals=False, keepalive_timeout=self.idle_timeout,
        )
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=1024).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        return f"http://{bound_host}:{bound_port}{path}"

    async def close(self) -> None:
        """Stop serving, wait for the ``on_event`` calls under way (a stuck one holds this), close."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        while self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None
        self._store.close()

    async def __aenter__(self) -> PostbackReceiver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

"""An aiohttp receiver for the service's postbacks: store first, answer 200 fast, hand over once.

The service POSTs a JSON notification for each step of a sent message (``MMS_MT``: N101, N102,
N202, E101...), for saved templates (N003 with the ``mms-id``, E002..E004) and for inbound
messages (``MMS_MO``, N401). It wants HTTP 200 within 10 seconds, and retries about five minutes
later, up to 5 times, when it does not get it. So the receiver writes the raw body to a SQLite file
(group-committed by a writer thread, never blocking the event loop), answers 200, and only then
hands a typed event to the application. A notification delivered again has the same body: it is
recognised by a digest of that body and answered 200 without being handed over twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from attrs import field, frozen

from mmsjson.errors import TemplateError, api_error_from_code
from mmsjson.store import SQLiteStore

__all__ = [
    "DeliveryEvent",
    "InboundEvent",
    "Postback",
    "PostbackReceiver",
    "TemplateEvent",
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
"""
_TEMPLATE_CODES = frozenset({"N003", "E002", "E003", "E004"})


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


@frozen(kw_only=True)
class Postback:
    """One notification: its code, the ids that tie it to a request, and the raw body."""

    code: str | None
    tracking_id: str | None
    timestamp: str | None
    raw: Mapping[str, Any] = field(repr=False, eq=False)
    id: int = 0


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
        return bool(self.code and self.code.startswith("E"))


@frozen(kw_only=True)
class TemplateEvent(Postback):
    """A saved template was transcoded (N003, with its ``mms_id``) or failed (E002..E004)."""

    mms_id: str | None
    status_details: str | None
    client_reference: str | None

    @property
    def ready(self) -> bool:
        return self.code == "N003"


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
            sender=_text(payload, "from"), to=_text(payload, "to"),
            keyword=_text(payload, "keyword"), operator_id=_text(payload, "operator-id"),
            subject=_text(payload, "message-subject"),
            files=tuple(
                item["file"] for item in content
                if isinstance(item, dict) and isinstance(item.get("file"), str)
            ) if isinstance(content, list) else (),
            copy_to=tuple(
                str(item["number"]) for item in copies if isinstance(item, dict) and "number" in item
            ) if isinstance(copies, list) else (),
        )
    if code in _TEMPLATE_CODES:
        return TemplateEvent(
            **common, mms_id=_text(payload, "mms-id"),
            status_details=_text(payload, "status-details"),
            client_reference=_text(payload, "client-reference"),
        )
    return DeliveryEvent(
        **common,
        to=_text(payload, "to"), sender=_text(payload, "from"), status=_text(payload, "status"),
        status_details=_text(payload, "status-details"), sent_as=_text(payload, "sent-as"),
        client_reference=_text(payload, "client-reference"), mms_id=_text(payload, "mms-id"),
    )


def _digest(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class PostbackReceiver:
    """Receives postbacks, stores each raw body in ``path`` first, and hands typed events over.

    Mount :meth:`handle` as a POST route in your own aiohttp app, or run :meth:`app`. Events come
    from ``async for event in receiver.events()``, from ``on_event`` (a function or coroutine
    function), and from :meth:`wait_for` / :meth:`template_id`. ``allow_from`` lists the networks
    the service posts from (given at onboarding); others get 403. Bodies over ``max_body`` bytes
    get 413, and anything that is not a JSON object gets 400.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "postbacks.db",
        *,
        allow_from: Iterable[str] | None = None,
        max_body: int = 64 * 1024,
        on_event: Callable[[Postback], object] | None = None,
    ) -> None:
        self._store = SQLiteStore(path, _SCHEMA)
        self._allowed = (
            None if allow_from is None else tuple(ipaddress.ip_network(n, strict=False) for n in allow_from)
        )
        self.max_body = max_body
        self._on_event = on_event
        self._queue: asyncio.Queue[Postback] | None = None
        self._waiters: dict[tuple[str, str], list[asyncio.Future[Postback]]] = {}
        self._callbacks: set[asyncio.Task[object]] = set()
        self._runner: web.AppRunner | None = None
        self.stored = 0
        self.duplicates = 0
        self.refused = 0

    def __repr__(self) -> str:
        return (
            f"<PostbackReceiver {self._store.path} stored={self.stored} "
            f"duplicates={self.duplicates} refused={self.refused}>"
        )

    def _allowed_remote(self, remote: str | None) -> bool:
        if self._allowed is None:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        return any(address in network for network in self._allowed)

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refused += 1
        return web.Response(status=status, text=reason)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: check, store durably, answer; hand the event over afterwards."""
        if not self._allowed_remote(request.remote):
            return self._refuse(403, "source address not allowed")
        if request.content_length is not None and request.content_length > self.max_body:
            return self._refuse(413, "body too large")
        body = await request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            return self._refuse(413, "body too large")
        try:
            payload = json.loads(body)
        except ValueError:
            return self._refuse(400, "body is not JSON")
        if not isinstance(payload, dict):
            return self._refuse(400, "body is not a JSON object")
        stored = await self._store.fetch(
            "INSERT INTO postbacks (digest, received_at, remote, tracking_id, client_reference, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING RETURNING id",
            (
                _digest(payload), time.time(), request.remote, _text(payload, "tracking-id"),
                _text(payload, "client-reference"), body,
            ),
        )
        if stored:
            self.stored += 1
            self._hand_over(parse_postback(payload, stored[0][0]))
        else:
            self.duplicates += 1
        return web.Response(text="OK")

    def _hand_over(self, event: Postback) -> None:
        if self._queue is not None:
            self._queue.put_nowait(event)
        for key in (("tracking", event.tracking_id), ("reference", getattr(event, "client_reference", None))):
            if key[1] is not None:
                for waiter in self._waiters.pop((key[0], key[1]), []):
                    if not waiter.done():
                        waiter.set_result(event)
        if self._on_event is not None:
            result = self._on_event(event)
            if isinstance(result, Awaitable):
                task: asyncio.Task[object] = asyncio.ensure_future(result)
                self._callbacks.add(task)
                task.add_done_callback(self._callback_done)

    def _callback_done(self, task: asyncio.Task[object]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("the on_event callback failed", exc_info=task.exception())

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
        rows = await self._store.fetch(
            f"SELECT id, body FROM postbacks WHERE {column} = ? ORDER BY id LIMIT 1",  # noqa: S608
            (key[1],),
        )
        if rows and not waiter.done():
            waiter.set_result(parse_postback(json.loads(rows[0][1]), rows[0][0]))
        try:
            return await waiter
        finally:
            waiters = self._waiters.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)

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
        runner = web.AppRunner(self.app(path), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=1024).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}{path}"

    async def close(self) -> None:
        """Stop serving, let callbacks finish, and close the store."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)
        self._store.close()

    async def __aenter__(self) -> PostbackReceiver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

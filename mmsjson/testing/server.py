"""A local fake of the MMS JSON API, for tests, demos and benchmarks.

It checks requests the way the service documents (the ``x-api-key`` header, JSON, every field rule),
answers with the documented success and failure shapes, stores templates so ``sendsavedmms`` works,
enforces a throughput limit over a strict sliding one-second window with E113, records what it
received, and injects faults on demand (E113 storms, HTTP errors, dropped answers, slow answers).
The same server also serves the older XML API (``xml_url``) and SMS REST ``mt_media`` batches
(``sms_rest_url``), sharing the window, faults, templates and records
(:mod:`mmsjson.testing.flavours`).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import json
import math
import secrets
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from attrs import define, frozen

from mmsjson.testing.postbacks import PostbackSender
from mmsjson.testing.rules import Refusal, check_request

if TYPE_CHECKING:
    from mmsjson.testing.network import NetworkModel

__all__ = ["FakeMMSServer", "Fault", "Received"]

_SEND_DETAILS = "MMS request accepted and queued for processing and delivery."
_SAVE_DETAILS = "Save MMS request accepted and queued for processing."
_UNAVAILABLE = "<html><body>Service Unavailable</body></html>"


@frozen
class Received:
    """One request as the fake received it and how it answered."""

    at: float
    payload: Any
    status: str
    error_code: str | None = None
    tracking_id: str | None = None
    http_status: int = 200
    flavour: str = "json"


@define
class Fault:
    """A fault to inject into the next ``count`` requests.

    ``kind`` is ``"e113"`` (refuse with E113), ``"status"`` (answer ``http_status`` with ``body``,
    not processed), ``"drop"`` (process and accept the request, then close the connection without
    answering: the client cannot know it was accepted) or ``"delay"`` (answer after ``seconds``).
    """

    kind: str
    count: int = 1
    http_status: int = 503
    body: str = _UNAVAILABLE
    seconds: float = 0.0


FAULT_KINDS = ("e113", "status", "drop", "delay")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refused(problem: str) -> web.Response:
    return web.json_response({"error": problem}, status=400)


def _one_line(entry: Received) -> str:
    """A request the fake received, in one line: when, what, to whom, and how it answered."""
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    action = payload.get("action", "?")
    to = payload.get("to")
    who = f" to {','.join(map(str, to)) if isinstance(to, list) else to}" if to else ""
    failed = entry.error_code or f"HTTP {entry.http_status}"
    answer = entry.tracking_id if entry.status == "success" else failed
    clock = time.strftime("%H:%M:%S")
    return f"{clock} {entry.flavour} {action}{who} -> {entry.status} {answer or ''}".rstrip()


class FakeMMSServer:
    """The fake API on ``host:port`` (port 0 picks a free one).

    Use ``async with FakeMMSServer() as server:`` and point a client at ``server.base_url`` with
    ``server.api_key``. ``throughput`` (requests per second, ``None`` for no limit) is enforced
    over a strict sliding one-second window. ``record=False`` keeps only arrival times, for runs
    of millions of requests. ``network`` (a :class:`~mmsjson.testing.network.NetworkModel`)
    delays each request before it counts as arrived and its answer before it leaves, as a WAN
    path would.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        throughput: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        latency: float = 0.0,
        service_plan_id: str = "fakeplan",
        postback_url: str | None = None,
        postback_delay: float = 1.0,
        postback_retry_delay: float = 5.0,
        log: Callable[[str], object] | None = None,
        network: NetworkModel | None = None,
    ) -> None:
        self.service_plan_id = service_plan_id
        self.postbacks = (
            None if postback_url is None
            else PostbackSender(postback_url, delay=postback_delay, retry_delay=postback_retry_delay)
        )
        self.log = log
        self.api_key = api_key or f"fake-{secrets.token_urlsafe(12)}"
        self.throughput = throughput
        self.host = host
        self.port = port
        self.record = record
        self.latency = latency
        self.network = network
        self.received: list[Received] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.arrivals = array("d")
        self.e113_count = 0
        self.accepted_count = 0
        self._faults: deque[Fault] = deque()
        self._window: deque[float] = deque()
        self._ids = itertools.count(1)
        self._template_by_tracking: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/ep/v2/"

    @property
    def xml_url(self) -> str:
        """Where the XML flavour's requests go (``XmlFlavour(key, server.xml_url)``)."""
        return f"http://{self.host}:{self.port}/ep/v1/"

    @property
    def sms_rest_url(self) -> str:
        """The SMS REST base URL (``SmsRestFlavour(key, server.service_plan_id, base_url=...)``)."""
        return f"http://{self.host}:{self.port}/xms/v1/"

    def __repr__(self) -> str:
        return (
            f"<FakeMMSServer {self.base_url} throughput={self.throughput} "
            f"received={len(self.arrivals)} accepted={self.accepted_count}>"
        )

    def app(self) -> web.Application:
        """The aiohttp application, to mount or run elsewhere."""
        middlewares = [self.network.middleware(self)] if self.network is not None else []
        app = web.Application(client_max_size=1024**2, middlewares=middlewares)
        app.router.add_post("/ep/v2/", self._handle)
        app.router.add_post("/ep/v2", self._handle)
        from mmsjson.testing.flavours import handle_sms_rest, handle_xml

        app.router.add_post("/ep/v1/", functools.partial(handle_xml, self))
        app.router.add_post("/xms/v1/{plan}/batches", functools.partial(handle_sms_rest, self))
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        app.router.add_post("/_fake/faults", self._add_fault)
        app.router.add_get("/_fake/templates/{tracking_id}", self._template)
        return app

    def reset(self, *, throughput: int | None = None) -> None:
        """Forget what was received and set a new throughput limit; templates are kept."""
        self.throughput = throughput
        self.received.clear()
        self.arrivals = array("d")
        self.e113_count = 0
        self.accepted_count = 0
        self._faults.clear()
        self._window.clear()

    async def _stats(self, request: web.Request) -> web.Response:
        """What the fake saw, for a benchmark or test running in another process."""
        stats: dict[str, Any] = {
            "received": len(self.arrivals),
            "accepted": self.accepted_count,
            "e113": self.e113_count,
            "max_in_window": self.max_in_window(),
        }
        if request.query.get("times"):
            stats["arrivals"] = list(self.arrivals)
        return web.json_response(stats)

    async def _add_fault(self, request: web.Request) -> web.Response:
        """``POST /_fake/faults`` with ``{"kind": "e113"|"status"|"drop"|"delay", "count": N, ...}``.

        A fault that could not be honoured is refused here with HTTP 400, not queued to fail a
        later request with a server error.
        """
        try:
            options = await request.json()
        except ValueError as exc:
            return _refused(f"a fault is a JSON object {{kind, count, http_status, seconds}}: {exc}")
        if not isinstance(options, dict):
            return _refused("a fault is a JSON object {kind, count, http_status, seconds}")
        unknown = set(options) - {"kind", "count", "http_status", "seconds"}
        if unknown:
            return _refused(f"a fault is {{kind, count, http_status, seconds}}, not {sorted(unknown)}")
        kind = options.get("kind")
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            return _refused(f"kind must be one of {', '.join(FAULT_KINDS)}")
        count = options.get("count", 1)
        if not _whole(count) or count < 1:
            return _refused("count must be a whole number of at least 1")
        http_status = options.get("http_status", 503)
        if not _whole(http_status) or not 200 <= http_status <= 599:
            return _refused("http_status must be a whole number from 200 to 599")
        seconds = options.get("seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            math.isfinite(seconds) and seconds >= 0
        ):
            return _refused("seconds must be a finite number, 0 or more")
        fields = {k: options[k] for k in ("count", "http_status", "seconds") if k in options}
        self.inject(Fault(kind, **fields))
        return web.json_response({"queued": len(self._faults)})

    async def _template(self, request: web.Request) -> web.Response:
        """``GET /_fake/templates/{tracking-id}``: the ``mms-id`` a save got (a real account sends
        it in the N003 postback; the sandbox also tells it here, for a first try without one)."""
        mms_id = self.mms_id_for(request.match_info["tracking_id"])
        if mms_id is None:
            return web.json_response({"error": "no template was saved with this tracking id"}, status=404)
        return web.json_response({"mms-id": mms_id})

    async def _reset(self, request: web.Request) -> web.Response:
        try:
            options = await request.json() if request.can_read_body else {}
        except ValueError as exc:
            return _refused(f"a reset is a JSON object {{throughput}}: {exc}")
        if not isinstance(options, dict):
            return _refused("a reset is a JSON object {throughput}")
        throughput = options.get("throughput")
        if throughput is not None and (not _whole(throughput) or throughput < 1):
            return _refused("throughput must be null or a whole number of at least 1")
        self.reset(throughput=throughput)
        return web.json_response({"reset": True})

    async def start(self) -> FakeMMSServer:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self.postbacks is not None:
            await self.postbacks.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMMSServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- faults --------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next ``fault.count`` requests (after faults queued earlier)."""
        self._faults.append(fault)

    def inject_e113(self, count: int = 1) -> None:
        self.inject(Fault("e113", count))

    def inject_status(self, http_status: int = 503, count: int = 1, body: str | None = None) -> None:
        self.inject(Fault("status", count, http_status=http_status, body=body or _UNAVAILABLE))

    def inject_drop(self, count: int = 1) -> None:
        self.inject(Fault("drop", count))

    def inject_delay(self, seconds: float, count: int = 1) -> None:
        self.inject(Fault("delay", count, seconds=seconds))

    def _next_fault(self) -> Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.count -= 1
        if fault.count <= 0:
            self._faults.popleft()
        return fault

    # -- what was received ---------------------------------------------------------------------

    def accepted(self, action: str | None = None) -> list[Received]:
        """The requests answered with success, optionally of one action."""
        return [
            r for r in self.received
            if r.status == "success"
            and (action is None or str(r.payload.get("action")).lower() == action.lower())
        ]

    def deliveries(self) -> Counter[str]:
        """How many accepted send requests each recipient got (2 or more is a duplicate)."""
        counts: Counter[str] = Counter()
        for r in self.accepted():
            to = r.payload.get("to")
            if str(r.payload.get("action")).lower() != "savemms":
                counts.update(n.lstrip("+") for n in (to if isinstance(to, list) else [to]))
        return counts

    def mms_id_for(self, tracking_id: str) -> str | None:
        """The template id a ``savemms`` got; the real service tells it in an N003 postback."""
        return self._template_by_tracking.get(tracking_id)

    def max_in_window(self, window: float = 1.0) -> int:
        """The largest number of requests that arrived in any sliding window of ``window`` s."""
        times = sorted(self.arrivals)
        best = 0
        for i, start in enumerate(times):
            best = max(best, bisect.bisect_left(times, start + window, lo=i) - i)
        return best

    # -- the handler ---------------------------------------------------------------------------

    def _throttled(self, now: float) -> bool:
        if self.throughput is None:
            return False
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.throughput:
            return True
        window.append(now)
        return False

    def foreign_e113(self) -> web.Response:
        """An E113 caused by someone else's traffic on the account (the network model's ``e113``)."""
        now = time.monotonic()
        self.arrivals.append(now)
        self.e113_count += 1
        return self._failure(now, None, "E113", "exceeded the allowed throughput")

    def _log(self, entry: Received) -> None:
        if self.record:
            self.received.append(entry)
        if self.log is not None:
            self.log(_one_line(entry))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.arrivals.append(now)
        body = await request.read()
        fault = self._next_fault()
        if fault is not None and fault.kind == "status":
            self._log(Received(now, None, "http-error", http_status=fault.http_status))
            return web.Response(status=fault.http_status, text=fault.body, content_type="text/html")
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif self.latency:
            await asyncio.sleep(self.latency)
        if request.headers.get("x-api-key") != self.api_key:
            return self._failure(now, None, "E104", "authentication failed, invalid API key", 401)
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("application/json"):
            return self._failure(now, None, "E108", "Content-Type must be application/json")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._failure(now, None, "E108", "the JSON could not be parsed")
        if (fault is not None and fault.kind == "e113") or self._throttled(now):
            self.e113_count += 1
            return self._failure(now, payload, "E113", "exceeded the allowed throughput")
        try:
            check_request(payload, self.templates)
        except Refusal as refusal:
            return self._failure(now, payload, refusal.code, refusal.info)
        answer = self._accept(payload)
        self._log(Received(now, payload, "success", tracking_id=answer["tracking-id"]))
        if fault is not None and fault.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        return web.json_response(answer)

    def _failure(
        self, now: float, payload: Any, code: str, info: str, http_status: int = 200
    ) -> web.Response:
        self._log(Received(now, payload, "failure", error_code=code, http_status=http_status))
        answer: dict[str, Any] = {"status": "failure", "error-code": code, "error-info": info}
        if isinstance(payload, dict) and isinstance(payload.get("to"), str):
            answer["to"] = payload["to"]
        return web.json_response(answer, status=http_status)

    def _tracking_id(self) -> str:
        return f"FAKE{next(self._ids):010d}"

    def _store_template(self, tracking_id: str, payload: dict[str, Any]) -> str:
        mms_id = str(10000 + len(self.templates) + 1)
        self.templates[mms_id] = payload
        self._template_by_tracking[tracking_id] = mms_id
        return mms_id

    def _accept(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.accepted_count += 1
        tracking_id = self._tracking_id()
        action = payload["action"]
        if action == "savemms":
            mms_id = self._store_template(tracking_id, payload)
            if self.postbacks is not None:
                self.postbacks.accepted(payload, tracking_id, mms_id)
            return {"status": "success", "tracking-id": tracking_id, "status-details": _SAVE_DETAILS}
        if self.postbacks is not None:
            self.postbacks.accepted(payload, tracking_id, payload.get("mms-id"))
        answer = {
            "status": "success",
            "to": payload["to"],
            "tracking-id": tracking_id,
            "status-details": _SEND_DETAILS,
        }
        if action == "sendsavedmms":
            answer["mms-id"] = payload["mms-id"]
            answer["from"] = payload["from"]
        return answer

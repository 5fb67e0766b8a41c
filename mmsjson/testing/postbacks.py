"""Postbacks from the fake server, as the service sends them: so a receiver can be tried end to end.

For each accepted ``sendmms`` / ``sendsavedmms`` the fake posts N101 (sent) and then N102
(delivered) for its tracking id; for each ``savemms``, N003 with the new template's ``mms-id``.
Like the service, it expects HTTP 200 within 10 seconds and otherwise tries again later, at most
five times (the service waits about five minutes; the fake waits ``retry_delay``). A redirect is
not followed: following it would turn the POST into a GET that drops the postback, yet count it
delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

__all__ = ["PostbackSender"]

_log = logging.getLogger("mmsjson.testing")
ANSWER_WITHIN = 10.0
TRIES = 6


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PostbackSender:
    """Posts the postbacks of accepted requests to ``url``, ``delay`` seconds after each one."""

    def __init__(self, url: str, *, delay: float = 1.0, retry_delay: float = 5.0) -> None:
        self.url = url
        self.delay = delay
        self.retry_delay = retry_delay
        self.delivered = 0
        self.given_up = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<PostbackSender {self.url} delivered={self.delivered} given_up={self.given_up}>"

    def accepted(self, payload: Mapping[str, Any], tracking_id: str, mms_id: str | None) -> None:
        """Schedule the postbacks the service would send for one accepted request."""
        reference = payload.get("client-reference")
        common: dict[str, Any] = {"tracking-id": tracking_id, "timestamp": _now()}
        if isinstance(reference, str):
            common["client-reference"] = reference
        if payload.get("action") == "savemms":
            bodies = [{**common, "origin": "MMS_MT", "code": "N003", "status": "template ready",
                       "status-details": "saved template transcoded and available", "mms-id": mms_id}]
        else:
            route = {"to": payload.get("to"), "from": payload.get("from")}
            if mms_id is not None:
                route["mms-id"] = mms_id
            bodies = [
                {**common, **route, "origin": "MMS_MT", "code": "N101", "status": "sent",
                 "status-details": "sending started"},
                {**common, **route, "origin": "MMS_MT", "code": "N102", "status": "delivered",
                 "status-details": "delivered", "sent-as": "MMS"},
            ]
        task = asyncio.create_task(self._deliver_in_order(bodies))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_in_order(self, bodies: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.delay)
        for body in bodies:
            await self._deliver(body)

    async def _deliver(self, body: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        for attempt in range(1, TRIES + 1):
            try:
                async with self._session.post(
                    self.url, json=body, timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN),
                    allow_redirects=False,
                ) as answer:
                    if answer.status == 200:
                        self.delivered += 1
                        return
                    problem = f"HTTP {answer.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            _log.info("postback %s for %s: %s (try %d)", body["code"], body["tracking-id"], problem, attempt)
            if attempt < TRIES:
                await asyncio.sleep(self.retry_delay)
        self.given_up += 1

    async def aclose(self) -> None:
        """Stop sending: postbacks still waiting are dropped."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

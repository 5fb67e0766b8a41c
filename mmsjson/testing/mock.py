"""An in-process transport that answers requests with a function: unit tests with no socket.

Like httpx's ``MockTransport``::

    def handler(request: PreparedRequest) -> RawResponse:
        assert request.json()["to"] == "17745559144"
        return RawResponse.from_json({"status": "success", "tracking-id": "T1"})

    client = MMSClient("key", service_id="1", sender="12345", transport=MockTransport(handler))

The handler may be a plain function or a coroutine function, and may raise
:class:`~mmsjson.errors.TransportError` to play a lost answer or a refused connection. Every
request goes through the client's real flavour, limiter and retry rules; ``requests`` keeps them
in order.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from mmsjson.transport import PreparedRequest, RawResponse

__all__ = ["Handler", "MockTransport"]

Handler = Callable[[PreparedRequest], "RawResponse | Awaitable[RawResponse]"]


class MockTransport:
    """A :class:`~mmsjson.transport.Transport` that calls ``handler`` for each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[PreparedRequest] = []

    def __repr__(self) -> str:
        return f"<MockTransport requests={len(self.requests)}>"

    async def post(self, request: PreparedRequest) -> RawResponse:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def aclose(self) -> None:
        """Nothing to close."""

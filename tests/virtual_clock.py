"""An event loop whose clock is virtual: idle waits take no real time, and time never stands still.

Like a real monotonic clock, every read of ``time()`` moves it on by a nanosecond, so a timer due
"a hair later" is always reached (a clock rounded to fixed ticks can stand still and spin
aiolimiter's wake-up forever). When nothing is ready, the clock jumps to the next timer instead of
sleeping. For pure timing logic only: real sockets still take real time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_TICK = 1e-9


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            self._loop.now += timeout
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        self.now += _TICK
        return self.now


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a fresh virtual-clock loop."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()

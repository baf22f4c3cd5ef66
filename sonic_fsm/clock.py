"""Time for the adapters: real (the asyncio loop's monotonic clock) or virtual.

The engine never reads a clock; adapters pass it ``loop.time()``. :func:`run` runs a
coroutine on a normal loop, or on :class:`VirtualTimeLoop`, whose clock jumps to the next
timer whenever nothing is ready, so a two-hour conversation plays in seconds.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls real file descriptors without waiting; a wait becomes a jump of the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled: only another thread can wake us
            return super().select(None)
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` advances only when every task is waiting."""

    def __init__(self) -> None:
        self._jump = _JumpSelector()
        super().__init__(selector=self._jump)

    def time(self) -> float:
        return self._jump.now


def run[T](coro: Coroutine[Any, Any, T], virtual: bool = False) -> T:
    """Run ``coro`` to completion in real time, or in virtual time."""
    if not virtual:
        return asyncio.run(coro)
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()

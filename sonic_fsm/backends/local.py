"""The embedded backend: the emulator in this process, behind the backend interface.

Runs on the event loop's clock, so in a virtual-time run the emulated model is as fast as
the machine allows, and in real time it behaves like the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from sonic_fsm.emulator.model import END, EmulatorSession, Faults
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings

FaultPlan = Callable[[int], Faults]
"""Faults for the n-th session opened (1-based)."""


def no_faults(n: int) -> Faults:
    return Faults()


class LocalSession:
    def __init__(self, model: EmulatorSession) -> None:
        self.model = model
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._out: deque[Any] = deque()
        self._closed = False

    async def send(self, event: dict[str, Any]) -> None:
        if self.model.faults.never_ready:
            await asyncio.Event().wait()  # the service never accepts the opening events
        if self._closed:
            raise SessionError("ValidationException", "send after the input stream was closed")
        self.model.receive(event, self._loop.time())
        self._wake.set()

    async def receive(self) -> dict[str, Any] | None:
        while True:
            if self._out:
                item = self._out.popleft()
                if isinstance(item, SessionError):
                    raise item
                return None if item is END else item
            if self.model.finished:
                return None
            self._out.extend(self.model.poll(self._loop.time()))
            if self._out:
                continue
            deadline = self.model.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.model.close_input(self._loop.time())
            self._wake.set()


class LocalBackend:
    """Opens emulated sessions; ``faults`` chooses what goes wrong with the n-th one."""

    def __init__(self, settings: Settings, faults: FaultPlan = no_faults) -> None:
        self.settings = settings
        self.faults = faults
        self.opened = 0
        self.sessions: list[LocalSession] = []

    async def open(self, session_id: str) -> LocalSession:
        self.opened += 1
        f = self.faults(self.opened)
        if f.start_delay_seconds:
            await asyncio.sleep(f.start_delay_seconds)
        if f.refuse_start:
            raise SessionError("ThrottlingException", "Too many requests, please wait")
        loop = asyncio.get_running_loop()
        session = LocalSession(EmulatorSession(self.settings, session_id, loop.time(), f))
        self.sessions.append(session)
        return session

    async def aclose(self) -> None:
        for s in self.sessions:
            await s.close()

"""The embedded backend: the emulator in this process, behind the backend interface.

Runs on the event loop's clock, so in a virtual-time run the emulated model is as fast as
the machine allows, and in real time it behaves like the service.

Faults come from a plan, a function ``n -> Faults`` for the n-th session opened: write one in
Python, or parse a spec such as ``"2:refuse_start,3:die_at_seconds=20"`` with
:func:`nova_emulator.faults.parse_fault_plan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from nova_emulator import recogniser as rec
from nova_emulator.faults import FaultPlan, no_faults, parse_fault_plan
from nova_emulator.listener import Recogniser
from nova_emulator.model import AUTO, END, EmulatorSession
from nova_emulator.voice import Speaker
from sonic_fsm import clock
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings, SettingsError

RECENT_SESSIONS = 8  # sessions a backend keeps for inspection after they closed


class LocalSession:
    def __init__(
        self, model: EmulatorSession, on_closed: Callable[[LocalSession], None] | None = None
    ) -> None:
        self.model = model
        self._on_closed = on_closed
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
        for token, pcm in self.model.take_recognition_requests():
            self._recognise(token, pcm)
        self._wake.set()

    def _recognise(self, token: int, pcm: bytes) -> None:
        """Recognition takes a real recogniser up to a second or two: keep it off the loop."""
        ears = self.model.ears
        assert ears is not None
        future = self._loop.run_in_executor(None, ears, pcm)

        def done(f: asyncio.Future[str | None]) -> None:
            words = None if f.cancelled() or f.exception() else f.result()
            self.model.recognised(token, words, self._loop.time())
            self._wake.set()

        future.add_done_callback(done)

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

    async def accepted(self) -> None:
        """In-process, the session exists once opened (a never-ready one blocks in send)."""

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.model.close_input(self._loop.time())
            self._wake.set()
            if self._on_closed is not None:
                self._on_closed(self)


def plan_from_settings(settings: Settings) -> FaultPlan:
    """The fault plan the settings ask for (``emulator.faults``, a spec), else none.

    Read with ``getattr`` so this works before and after the setting exists.
    """
    spec = getattr(settings.emulator, "faults", "")
    return parse_fault_plan(spec) if spec else no_faults


def recogniser_from_settings(
    settings: Settings, phrases: Sequence[str] = ()
) -> Recogniser | str | None:
    """``emulator.recogniser``: ``auto`` (pocketsphinx when installed), ``none``, or
    ``pocketsphinx`` (an error at start when it is not installed). ``phrases``: all that
    will be said (the simulated talker's lines), which pocketsphinx is then limited to."""
    choice = getattr(settings.emulator, "recogniser", AUTO)
    if choice == "none":
        return None
    if choice == "pocketsphinx" and not rec.available():
        raise SettingsError(
            "setting emulator.recogniser: pocketsphinx is not installed "
            "(uv sync --extra recogniser)"
        )
    if choice not in (AUTO, "pocketsphinx"):
        raise SettingsError(
            f"setting emulator.recogniser: auto, none or pocketsphinx, not {choice!r}"
        )
    if choice == AUTO and not phrases:
        return AUTO
    return rec.default_recogniser(tuple(phrases))


def speaker_from_settings(settings: Settings) -> Speaker | None:
    """``emulator.voice``: ``auto`` (espeak-ng when installed), ``espeak`` or ``synthetic``."""
    from nova_emulator import voice

    choice = getattr(settings.emulator, "voice", AUTO)
    if choice == "synthetic":
        return voice.synthetic
    if choice == "espeak":
        if shutil.which("espeak-ng") is None:
            raise SettingsError("setting emulator.voice: espeak-ng is not installed")
        return voice.Espeak()
    if choice != AUTO:
        raise SettingsError(f"setting emulator.voice: auto, espeak or synthetic, not {choice!r}")
    return None


class LocalBackend:
    """Opens emulated sessions; ``faults`` chooses what goes wrong with the n-th one.

    Left out, the faults, the voice and the recogniser come from the settings
    (``emulator.faults``, ``emulator.voice``, ``emulator.recogniser`` where those exist).
    """

    def __init__(
        self,
        settings: Settings,
        faults: FaultPlan | None = None,
        *,
        speaker: Speaker | None = None,
        recogniser: Recogniser | str | None = AUTO,
    ) -> None:
        self.settings = settings
        self.faults = faults if faults is not None else plan_from_settings(settings)
        self.speaker = speaker if speaker is not None else speaker_from_settings(settings)
        if recogniser == AUTO:
            recogniser = recogniser_from_settings(settings)
        self.recogniser = recogniser
        self.opened = 0
        self.sessions: deque[LocalSession] = deque(maxlen=RECENT_SESSIONS)
        """The most recent sessions, open or closed (to inspect); older ones are let go, so
        a conversation of hours does not keep every session's model."""
        self._open: set[LocalSession] = set()

    async def open(self, session_id: str) -> LocalSession:
        self.opened += 1
        f = self.faults(self.opened)
        if f.start_delay_seconds:
            await asyncio.sleep(f.start_delay_seconds)
        if f.refuse_start:
            raise SessionError("ThrottlingException", "Too many requests, please wait")
        loop = asyncio.get_running_loop()
        model = EmulatorSession(
            self.settings,
            session_id,
            loop.time(),
            f,
            speaker=self.speaker,
            recogniser=self.recogniser,
        )
        # In virtual time a blocking recogniser costs no virtual time: recognise inline, which
        # keeps virtual runs deterministic. In real time, recognise on a worker thread.
        model.defer_recognition = not isinstance(loop, clock.VirtualTimeLoop)
        session = LocalSession(model, on_closed=self._open.discard)
        self.sessions.append(session)
        self._open.add(session)
        return session

    async def aclose(self) -> None:
        for s in list(self._open):
            await s.close()

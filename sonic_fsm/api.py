"""The public API: one conversation, audio in, typed events out.

Every front end (a web page, a phone line, a media server, a test) drives a conversation
the same way::

    async with Conversation(settings) as conv:
        conv.send_audio(pcm)                    # 16 kHz 16-bit mono (other rates: rate=...)
        async for event in conv.events():       # AssistantAudio, StopPlayback, Transcript, ...
            ...
        conv.played(total_bytes)                # what the front end has really played
        conv.stop()

The conversation owns the engine; the headless run, the dashboard (through
:mod:`sonic_fsm.runner`) and the voice server all drive it through this API. Call it from
the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable, MutableSequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import numpy as np
import soxr

from sonic_fsm import tools as tl
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import metrics as mx
from sonic_fsm.core import views
from sonic_fsm.core.backend import Backend
from sonic_fsm.core.engine import Engine
from sonic_fsm.core.snapshot import Snapshot, TranscriptLine
from sonic_fsm.observer import NullObserver, Observer
from sonic_fsm.session_worker import SessionWorker
from sonic_fsm.settings import Settings
from sonic_fsm.tools import Tool

Stage = Literal["speculative", "final", "interrupted"]

# ---- events ------------------------------------------------------------------------------
# ``at``: seconds since the conversation started, on the loop's clock.


@dataclass(frozen=True, kw_only=True)
class AssistantAudio:
    """Assistant speech to play now, after whatever was sent before (16-bit mono PCM)."""

    at: float
    session_id: str
    content_id: str
    pcm: bytes
    rate: int = 24000


@dataclass(frozen=True, kw_only=True)
class StopPlayback:
    """The user barged in: drop everything queued for playback at once."""

    at: float


@dataclass(frozen=True, kw_only=True)
class Transcript:
    """A line of the conversation. Assistant lines come ``speculative`` (before the audio)
    then ``final``; an answer the user cut short ends with an ``interrupted`` line."""

    at: float
    role: Literal["user", "assistant"]
    text: str
    stage: Stage
    session_id: str


@dataclass(frozen=True, kw_only=True)
class StateChanged:
    """The state machine moved (see ``fsm_diagram.md``)."""

    at: float
    source: str
    dest: str
    trigger: str
    sessions: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HandoffBegun:
    """A next session is being opened: ``handoff`` ahead of the limit, or ``recovery``
    after the current session failed."""

    at: float
    kind: Literal["handoff", "recovery"]
    from_session: str | None
    trigger: str


@dataclass(frozen=True, kw_only=True)
class HandoffDone:
    """The next session is current. ``took_ms``: HANDOFF entered until it took live audio;
    ``replayed_bytes``: buffered user audio it was given; ``history_bytes``: history sent."""

    at: float
    kind: Literal["handoff", "recovery"]
    from_session: str | None
    to_session: str
    took_ms: float
    replayed_bytes: int
    history_bytes: int
    handoffs: int
    recoveries: int


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """The model asked for a tool; its result is sent back on the session."""

    at: float
    session_id: str
    tool_use_id: str
    name: str
    content: str


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    """A tool finished: ``result`` goes back to the model (``error`` says why it failed)."""

    at: float
    session_id: str
    tool_use_id: str
    name: str
    result: Any
    error: str | None


@dataclass(frozen=True, kw_only=True)
class Error:
    """A session failed (the conversation carries on: a replacement is opened)."""

    at: float
    session_id: str
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True, kw_only=True)
class Log:
    """A line of the transition log, as ``sonic-fsm run --headless`` prints it."""

    at: float
    line: str


@dataclass(frozen=True, kw_only=True)
class Ended:
    """The conversation is over; the last event. ``metrics``: as ``sonic-fsm run`` reports."""

    at: float
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


Event = (
    AssistantAudio
    | StopPlayback
    | Transcript
    | StateChanged
    | HandoffBegun
    | HandoffDone
    | ToolCall
    | ToolResult
    | Error
    | Log
    | Ended
)


class ConversationClosed(RuntimeError):
    """The conversation was stopped or has ended: it takes no more audio."""


class AudioFormatError(ValueError):
    """Audio the conversation cannot take; the message says what it expected."""


# ---- the conversation ---------------------------------------------------------------------

# Why a conversation ended (``ended_because`` in its metrics). The first three are endings
# someone asked for; the last two are failures, and ``sonic-fsm run`` exits non-zero for them.
INPUT_ENDED = "input_ended"  # the input ran out and what it asked for was played
OPERATOR = "operator"  # stop() (the dashboard's quit, the page's stop)
SIGNAL = "signal"  # SIGINT or SIGTERM
RETRIES_EXHAUSTED = "retries_exhausted"  # the service kept failing; the retries ran out
REFUSED = "refused"  # the service refused for good (credentials, access, a bad request)
CANCELLED = "cancelled"  # the run was cancelled before it could end
FAILURES = (RETRIES_EXHAUSTED, REFUSED)


class Conversation:
    """One conversation kept alive across sessions. Use as ``async with``.

    ``backend``: by default the one the settings name (the embedded emulator unless
    ``backend.kind`` is ``bedrock``). ``tools``: offered to the model besides those the
    settings name (``tools.builtin``, ``tools.modules``; see :mod:`sonic_fsm.tools`).
    ``observer``: told of every event sent and received (a session recorder; by default one
    when ``enable_session_recording`` is set); ``recorder`` makes the one
    :meth:`set_recording` starts. ``on_handled``: an instrument, told of each event the
    engine handled with the effects it returned (None for the start and the end).

    It is the one adapter that owns the sans-IO engine: workers turn the outside world into
    events (one per session, the timer, :meth:`send_audio`), one consumer hands each event
    to the engine with the loop's time and carries out the effects it returns. The same code
    runs in real time and, on :class:`sonic_fsm.clock.VirtualTimeLoop`, in virtual time.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        backend: Backend | None = None,
        tools: Iterable[Tool] = (),
        *,
        observer: Observer | None = None,
        recorder: Callable[[], Observer] | None = None,
        on_handled: Callable[[ev.WorkerEvent | None, list[fx.Effect]], None] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        if backend is None:
            from sonic_fsm.wiring import make_backend

            backend = make_backend(self.settings)
        self.backend = backend
        audio = self.settings.audio
        self.input_rate = audio.input_sample_rate
        self.output_rate = audio.output_sample_rate
        self._chunk_bytes = audio.chunk_frames * 2
        self._pending = bytearray()
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        # Imported and checked now, so a bad tool module stops the start with one line.
        self.tools = tl.registry(self.settings, tools)
        self._tool_pool: ThreadPoolExecutor | None = None
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._make_recorder = recorder
        if observer is None and self.settings.enable_session_recording:
            observer = self._recorder()
        self.observer: Observer = observer or NullObserver()
        self.recording = observer is not None
        self.on_handled = on_handled
        self.queue: asyncio.Queue[ev.WorkerEvent] = asyncio.Queue()
        self.workers: dict[str, SessionWorker] = {}
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0.0
        self._rearm = asyncio.Event()
        self._seq = 0
        self._stopped: str | None = None  # the engine's reason, once it has stopped
        self._stop_reason: str | None = None
        self._because: str | None = None
        self._last_failure: ev.SessionFailed | None = None
        self.engine_events = 0
        # Set to a list (or an array("q"), 8 bytes an entry) to measure the engine.
        self.chunk_cpu_ns: MutableSequence[int] | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False  # stop() was called or the conversation ended
        self._delivered = 0
        self._played: int | None = None  # the front end's running total, once reported
        self._switch_from: str | None = None
        self._switch_history = 0
        self._replayed = 0

    # ---- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Conversation:
        if self._task is not None:
            raise ConversationClosed("a Conversation can be entered once")
        self._task = asyncio.create_task(self._run(), name="conversation")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        assert self._task is not None
        # Bounded: every session is closed within the backend's close timeout.
        limit = self.settings.backend.close_timeout_seconds * 2 + 5
        try:
            await asyncio.wait_for(asyncio.shield(self._task), limit)
        except TimeoutError:
            self._task.cancel()
            raise

    @property
    def closed(self) -> bool:
        """Stopped or ended: it takes no more audio."""
        return self._closed

    def stop(self, reason: str | None = None) -> None:
        """End the conversation after the audio sent so far: every session is closed
        properly; ``events()`` ends with :class:`Ended` (its ``reason``: ``reason``, or
        "stopped by the operator"). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._post_audio(bytes(self._pending).ljust(self._chunk_bytes, b"\0"))
            self._pending.clear()
        self._stop_reason = reason
        self.queue.put_nowait(ev.Operator(command="stop"))

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def post(self, event: ev.WorkerEvent) -> None:
        """Put an event on the queue (from the loop's thread): the workers' way in."""
        self.queue.put_nowait(event)

    async def _run(self) -> None:
        try:
            await self._drive()
        except Exception as e:
            self._closed = True
            self._put(
                Error(
                    at=self._at(),
                    session_id="",
                    code=type(e).__name__,
                    message=str(e),
                    retryable=False,
                )
            )
            self._put(Ended(at=self._at(), reason=f"failed: {e}"))
            raise
        self._closed = True
        self._put(Ended(at=self._at(), reason=self._stopped or CANCELLED, metrics=self.metrics()))

    async def _drive(self) -> None:
        self._loop = asyncio.get_running_loop()
        prepare = getattr(self.backend, "start", None)
        if prepare is not None:
            await prepare()  # e.g. find credentials: fails at once with one line
        start = self._started = self.now()
        engine = self._engine = Engine(self.settings, start, tools=self.tools.specs())
        self._apply(engine.start(start))
        timer = asyncio.create_task(self._timer(), name="timer")
        try:
            while self._stopped is None:
                event = await self.queue.get()
                self.engine_events += 1
                if isinstance(event, ev.SessionFailed):
                    self._last_failure = event
                before = engine.next_deadline()
                if isinstance(event, ev.Operator) and event.command == "stop":
                    self._because = self._because or OPERATOR
                    if self._stop_reason is not None:
                        self._apply(engine.end(self._stop_reason, self.now()), event)
                        continue
                if self.chunk_cpu_ns is not None and isinstance(event, ev.MicFrame):
                    t = time.process_time_ns()
                    effects = engine.handle(event, self.now())
                    self.chunk_cpu_ns.append(time.process_time_ns() - t)
                else:
                    effects = engine.handle(event, self.now())
                self._apply(effects, event)
                if engine.next_deadline() != before:
                    self._rearm.set()
        finally:
            timer.cancel()
            if self._stopped is None:
                self._because = self._because or CANCELLED
                self._apply(engine.end(CANCELLED, self.now()))
            await self._shutdown()

    async def _timer(self) -> None:
        engine = self._engine
        assert engine is not None
        fired: float | None = None
        while True:
            self._rearm.clear()
            deadline = engine.next_deadline()
            if deadline == fired:
                deadline = None  # already told; wait until the engine's deadline changes
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                await asyncio.wait_for(self._rearm.wait(), timeout)
            except TimeoutError:
                fired = deadline
                self.post(ev.Tick())

    async def _shutdown(self) -> None:
        for task in list(self._tool_tasks):
            task.cancel()
        if self._tool_pool is not None:
            # A plain function still running is left to finish on its own thread.
            self._tool_pool.shutdown(wait=False, cancel_futures=True)
        timeout = self.settings.backend.close_timeout_seconds + 1
        tasks = [w.task for w in self.workers.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
        with contextlib.suppress(Exception):
            await self.backend.aclose()
        self.observer.close()

    def metrics(self) -> dict[str, Any]:
        """What a run reports (``sonic-fsm run``): why it ended, and the engine's figures."""
        engine = self._engine
        if engine is None:
            return {}
        failure = self._last_failure
        because = self._because
        if because is None and self._stopped is not None:  # the engine stopped by itself
            because = (
                REFUSED if failure is not None and not failure.retryable else RETRIES_EXHAUSTED
            )
        failed = because in FAILURES
        error = f"{failure.code}: {failure.message}" if failure and failed else None
        if because == RETRIES_EXHAUSTED:  # the last failure that counted (a timeout is one)
            error = engine.retries.last_why or error
        return {
            **({"ended_because": because} if because else {}),
            **({"error": error} if error else {}),
            **mx.summary(engine),
            "engine_events": self.engine_events,
            "assistant_truncated_ms": mx.truncated_ms(engine),
        }

    def session_summary(self, session_id: str) -> dict[str, Any]:
        """One session's figures (for a recording when the session closes)."""
        if self._engine is None:
            return {}
        return views.session_summary(self._engine, session_id, self.now())

    # ---- audio in ----------------------------------------------------------------------

    def send_audio(
        self, pcm: bytes | bytearray | memoryview, rate: int = 16000, sample_width: int = 2
    ) -> None:
        """Captured user audio: 16-bit little-endian mono PCM at ``rate`` Hz (converted to
        the input rate when it differs). Chunking is free: any whole number of samples."""
        if self._closed:
            raise ConversationClosed("send_audio() after the conversation was stopped or ended")
        if not isinstance(pcm, bytes | bytearray | memoryview):
            raise AudioFormatError(f"send_audio() takes bytes of PCM, not {type(pcm).__name__}")
        if sample_width != 2:
            raise AudioFormatError(
                f"send_audio() takes 16-bit PCM (sample_width=2), not sample_width={sample_width}"
            )
        data = bytes(pcm)
        if len(data) % 2:
            raise AudioFormatError(
                f"send_audio() got {len(data)} bytes: 16-bit PCM comes in whole 2-byte samples"
            )
        if not isinstance(rate, int) or rate <= 0:
            raise AudioFormatError(
                f"send_audio() rate must be a positive number of Hz, not {rate!r}"
            )
        if rate != self.input_rate:
            stream = self._resamplers.get(rate)
            if stream is None:
                stream = soxr.ResampleStream(rate, self.input_rate, 1, dtype="int16")
                self._resamplers[rate] = stream
            data = stream.resample_chunk(np.frombuffer(data, dtype="<i2")).astype("<i2").tobytes()
        if not self._pending and len(data) == self._chunk_bytes:
            self._post_audio(data)  # the usual case: a front end sending whole chunks
            return
        self._pending += data
        n = len(self._pending) // self._chunk_bytes * self._chunk_bytes
        for i in range(0, n, self._chunk_bytes):
            self._post_audio(bytes(self._pending[i : i + self._chunk_bytes]))
        del self._pending[:n]

    def _post_audio(self, chunk: bytes) -> None:
        self.queue.put_nowait(ev.MicFrame(seq=self._seq, pcm=chunk))
        self._seq += 1

    # ---- playback feedback -------------------------------------------------------------

    def played(self, total_bytes: int, queued_seconds: float | None = None) -> None:
        """Playback feedback: the front end has played ``total_bytes`` of assistant audio in
        all so far (a running total: a lost or repeated report does no harm) and still has
        ``queued_seconds`` of it to play. Send it every 100-250 ms while playing and once
        when the queue runs dry. The engine then stops, at a barge-in, what is really
        sounding, and keeps in the history only what the listener heard of an answer they
        cut; without ``queued_seconds`` it assumes playback in real time from delivery."""
        if not isinstance(total_bytes, int) or total_bytes < 0:
            raise ValueError(f"played() takes a running total of bytes, not {total_bytes!r}")
        if self._played is not None and total_bytes < self._played:
            raise ValueError(
                f"played({total_bytes}): the running total went down (was {self._played})"
            )
        if total_bytes > self._delivered:
            raise ValueError(
                f"played({total_bytes}): more than the {self._delivered} bytes delivered"
            )
        if queued_seconds is not None:
            if not isinstance(queued_seconds, int | float) or not 0 <= queued_seconds < 3600:
                raise ValueError(
                    f"played(): queued_seconds must be 0 or more seconds, not {queued_seconds!r}"
                )
            self.post(ev.PlaybackProgress(queued_seconds=float(queued_seconds)))
        self._played = total_bytes

    @property
    def played_seconds(self) -> float:
        """What the front end reported it has played, in seconds (0 before any report)."""
        return (self._played or 0) / (2 * self.output_rate)

    # ---- operator ----------------------------------------------------------------------

    def force_handoff(self) -> None:
        """Hand over to a new session now (as the operator's key in the dashboard)."""
        self.post(ev.Operator(command="force_handoff"))

    def set_muted(self, muted: bool) -> None:
        """Send silence instead of the captured audio while muted."""
        self.post(ev.Operator(command="mute" if muted else "unmute"))

    def set_recording(self, on: bool) -> None:
        """Start recording the sessions (they join it as they speak) or stop. A recording
        that cannot start says why in a :class:`Log` line."""
        if on == self.recording:
            return
        if not on:
            self.observer.close()
            self.observer, self.recording = NullObserver(), False
            self._log("[RECORDING] off")
            return
        try:
            self.observer = self._recorder()
        except OSError as e:
            self._log(f"[RECORDING] cannot record: {e}")
            return
        self.recording = True
        self._log("[RECORDING] on")

    def _recorder(self) -> Observer:
        if self._make_recorder is not None:
            return self._make_recorder()
        from sonic_fsm.wiring import make_recorder

        return make_recorder(self.settings)

    # ---- events out --------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, ending with :class:`Ended`. One consumer."""
        if self._task is None:
            raise ConversationClosed("events() needs the conversation entered (async with)")
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Ended):
                return

    def snapshot(self) -> Snapshot | None:
        """What a dashboard shows: state, sessions, buffer, transcript (None before start)."""
        if self._engine is None:
            return None
        return dataclasses.replace(self._engine.snapshot(), recording=self.recording)

    # ---- what a front end may ask at any time (cheap: no snapshot) ----------------------

    @property
    def state(self) -> str:
        """The machine's state (``NORMAL`` before the start)."""
        return self._engine.state.value if self._engine is not None else "NORMAL"

    @property
    def answer_pending(self) -> bool:
        """An answer is being generated, or a transcribed utterance still awaits one."""
        return self._engine is not None and self._engine.answer_pending

    @property
    def idle(self) -> bool:
        """Nothing is being said or answered, and nothing is switching."""
        return self._engine is not None and self._engine.idle

    @property
    def sessions_replaced(self) -> int:
        """How many times a new session took over with the conversation so far."""
        if self._engine is None:
            return 0
        m = views.switch(self._engine)
        return m.handoffs + m.recoveries

    # ---- effects into events -------------------------------------------------------------

    def _at(self) -> float:
        return 0.0 if self._loop is None else self.now() - self._started

    def _put(self, event: Event) -> None:
        self._events.put_nowait(event)

    def _log(self, line: str) -> None:
        self._put(Log(at=self._at(), line=line))

    def _apply(self, effects: list[fx.Effect], event: ev.WorkerEvent | None = None) -> None:
        now = self.now()
        at = now - self._started
        if isinstance(event, ev.ToolFinished):
            self._put(
                ToolResult(
                    at=at,
                    session_id=event.session_id,
                    tool_use_id=event.tool_use_id,
                    name=event.tool_name,
                    result=event.result,
                    error=event.error,
                )
            )
        if isinstance(event, ev.SessionFailed):
            self._put(
                Error(
                    at=at,
                    session_id=event.session_id,
                    code=event.code,
                    message=event.message,
                    retryable=event.retryable,
                )
            )
        for e in effects:
            match e:
                case fx.OpenSession(session_id=sid):
                    self.workers[sid] = SessionWorker(self, sid)
                    self.observer.session_opened(sid, now, [])
                case fx.Send(session_id=sid):
                    worker = self.workers.get(sid)
                    if worker is not None:
                        worker.outbox.put_nowait(e)
                case fx.CloseSession(session_id=sid):
                    worker = self.workers.get(sid)
                    if worker is not None:
                        worker.abandon()
                case fx.Play(session_id=sid, content_id=cid, pcm=pcm):
                    self._delivered += len(pcm)
                    self._put(
                        AssistantAudio(
                            at=at, session_id=sid, content_id=cid, pcm=pcm, rate=self.output_rate
                        )
                    )
                case fx.FlushPlayback():
                    self._put(StopPlayback(at=at))
                case fx.RunTool():
                    self._run_tool(e)
                    self._put(
                        ToolCall(
                            at=at,
                            session_id=e.session_id,
                            tool_use_id=e.tool_use_id,
                            name=e.tool_name,
                            content=e.content,
                        )
                    )
                case fx.Log(line=line):
                    self._put(Log(at=at, line=line))
                case fx.Said(line=line):
                    self._said(at, line)
                case fx.Transitioned(trigger=trigger, source=source, dest=dest, sessions=ids):
                    self.observer.transition(now, trigger, source, dest, list(ids))
                    self._on_transition(at, e)
                case fx.Stopped(reason=reason):
                    self._stopped = reason
        if self.on_handled is not None:
            self.on_handled(event, effects)

    def _run_tool(self, e: fx.RunTool) -> None:
        """Off the audio path: a task (plain functions go to the bounded thread pool)."""
        task = asyncio.create_task(self._tool(e), name=f"tool-{e.tool_use_id}")
        self._tool_tasks.add(task)
        task.add_done_callback(self._tool_tasks.discard)

    async def _tool(self, e: fx.RunTool) -> None:
        if self._tool_pool is None:
            self._tool_pool = ThreadPoolExecutor(
                self.settings.tools.max_threads, thread_name_prefix="sonic-fsm-tool"
            )
        t = self.tools.get(e.tool_name)
        result = await tl.call(
            t, e.tool_name, e.content, self.settings.tools.timeout_seconds, self._tool_pool
        )
        error = result.get("error") if isinstance(result, dict) else None
        self.post(
            ev.ToolFinished(
                session_id=e.session_id,
                tool_use_id=e.tool_use_id,
                tool_name=e.tool_name,
                result=result,
                error=str(error) if error is not None else None,
            )
        )

    def _on_transition(self, at: float, e: fx.Transitioned) -> None:
        self._put(
            StateChanged(
                at=at, source=e.source, dest=e.dest, trigger=e.trigger, sessions=e.sessions
            )
        )
        assert self._engine is not None
        sw = views.switch(self._engine)
        if e.dest in ("BUFFERING", "RECOVERING") and e.source not in ("HANDOFF", "BUFFERING"):
            kind: Literal["handoff", "recovery"] = (
                "recovery" if e.dest == "RECOVERING" else "handoff"
            )
            self._switch_from = sw.failed if kind == "recovery" else sw.current
            self._switch_history = sw.history_bytes
            self._put(
                HandoffBegun(at=at, kind=kind, from_session=self._switch_from, trigger=e.trigger)
            )
        elif e.dest == "HANDOFF":
            self._replayed = sw.buffer_bytes
        elif e.dest == "PROMOTED":
            self._put(
                HandoffDone(
                    at=at,
                    kind="recovery" if sw.kind == "recovery" else "handoff",
                    from_session=self._switch_from,
                    to_session=sw.current or "",
                    took_ms=round(sw.last_handoff_ms, 3),
                    replayed_bytes=self._replayed,
                    history_bytes=sw.history_bytes - self._switch_history,
                    handoffs=sw.handoffs,
                    recoveries=sw.recoveries,
                )
            )

    def _said(self, at: float, line: TranscriptLine) -> None:
        if line.kind not in ("user", "assistant"):
            return
        stage: Stage = (
            "interrupted" if line.interrupted else "final" if line.final else "speculative"
        )
        role: Literal["user", "assistant"] = "user" if line.kind == "user" else "assistant"
        self._put(
            Transcript(at=at, role=role, text=line.text, stage=stage, session_id=line.session_id)
        )


__all__ = [
    "AssistantAudio",
    "AudioFormatError",
    "Conversation",
    "ConversationClosed",
    "Ended",
    "Error",
    "Event",
    "HandoffBegun",
    "HandoffDone",
    "Log",
    "StateChanged",
    "StopPlayback",
    "ToolCall",
    "ToolResult",
    "Transcript",
]

"""The public API: one conversation, audio in, typed events out.

Every front end (a web page, a phone line, a media server, a test) drives a conversation
the same way::

    async with Conversation(settings) as conv:
        conv.send_audio(pcm)                    # 16 kHz 16-bit mono (other rates: rate=...)
        async for event in conv.events():       # AssistantAudio, StopPlayback, Transcript, ...
            ...
        conv.played(total_bytes)                # what the front end has really played
        conv.stop()

It is a facade on :class:`sonic_fsm.runner.Conversation`: a queue-fed audio source, a
playback sink that keeps account of what the front end has queued, and a hook that turns
the engine's effects into the events below. Call it from the event loop's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import numpy as np
import soxr

from sonic_fsm import runner
from sonic_fsm.audio.null import NullSink
from sonic_fsm.backends.base import Backend
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.snapshot import Snapshot, TranscriptLine
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
    | Ended
)


class ConversationClosed(RuntimeError):
    """The conversation was stopped or has ended: it takes no more audio."""


class AudioFormatError(ValueError):
    """Audio the conversation cannot take; the message says what it expected."""


# ---- the adapters the runner is given -----------------------------------------------------


class _QueueSource:
    """The microphone of an embedded conversation: chunks handed in by ``send_audio``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def frames(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        pass


class _PlaybackSink(NullSink):
    """The front end's speaker, seen from here: audio is handed on as events; what is still
    queued there is taken as if it played in real time from delivery, or, once the front end
    has said how much it still has queued, from that (it may be behind: a network hop, a
    jitter buffer)."""

    def __init__(self, rate: int) -> None:
        super().__init__(rate=rate)
        self.delivered = 0
        self.played: int | None = None  # the front end's running total, once reported

    def report(self, queued_seconds: float, now: float) -> None:
        self._end = now + queued_seconds

    def play(self, pcm: bytes, now: float) -> None:
        super().play(pcm, now)
        self.delivered += len(pcm)


# ---- the conversation ---------------------------------------------------------------------


class Conversation:
    """One conversation kept alive across sessions. Use as ``async with``.

    ``backend``: by default the one the settings name (the embedded emulator unless
    ``backend.kind`` is ``bedrock``). ``tools``: offered to the model besides those the
    settings name (``tools.builtin``, ``tools.modules``; see :mod:`sonic_fsm.tools`).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        backend: Backend | None = None,
        tools: Iterable[Tool] = (),
    ) -> None:
        self.settings = settings or Settings()
        if backend is None:
            from sonic_fsm.wiring import make_backend

            backend = make_backend(self.settings)
        audio = self.settings.audio
        self.input_rate = audio.input_sample_rate
        self.output_rate = audio.output_sample_rate
        self._chunk_bytes = audio.chunk_frames * 2
        self._pending = bytearray()
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._source = _QueueSource()
        self._sink = _PlaybackSink(self.output_rate)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._runner = runner.Conversation(
            self.settings,
            backend,
            self._source,
            self._sink,
            finish_when_input_ends=False,
            tools=tools,
            on_handled=self._on_handled,
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False  # stop() was called or the conversation ended
        self._seen: dict[int, TranscriptLine] = {}
        self._handoff_from: str | None = None
        self._handoff_history = 0
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
        # Bounded: the runner closes each session within the backend's close timeout.
        limit = self.settings.backend.close_timeout_seconds * 2 + 5
        try:
            await asyncio.wait_for(asyncio.shield(self._task), limit)
        except TimeoutError:
            self._task.cancel()
            raise

    async def _run(self) -> None:
        try:
            result = await self._runner.run()
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
        self._put(Ended(at=self._at(), reason=result.reason, metrics=result.metrics))

    def stop(self) -> None:
        """End the conversation: every session is closed properly; ``events()`` ends with
        :class:`Ended`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._source.queue.put_nowait(bytes(self._pending).ljust(self._chunk_bytes, b"\0"))
            self._pending.clear()
        self._source.queue.put_nowait(None)
        self._runner.submit(ev.Operator(command="stop"))

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
        self._pending += data
        n = len(self._pending) // self._chunk_bytes * self._chunk_bytes
        for i in range(0, n, self._chunk_bytes):
            self._source.queue.put_nowait(bytes(self._pending[i : i + self._chunk_bytes]))
        del self._pending[:n]

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
        sink = self._sink
        if sink.played is not None and total_bytes < sink.played:
            raise ValueError(
                f"played({total_bytes}): the running total went down (was {sink.played})"
            )
        if total_bytes > sink.delivered:
            raise ValueError(
                f"played({total_bytes}): more than the {sink.delivered} bytes delivered"
            )
        if queued_seconds is not None:
            if not isinstance(queued_seconds, int | float) or not 0 <= queued_seconds < 3600:
                raise ValueError(
                    f"played(): queued_seconds must be 0 or more seconds, not {queued_seconds!r}"
                )
            if self._runner.engine is not None:
                sink.report(float(queued_seconds), self._runner.now())
            self._runner.submit(ev.PlaybackProgress(queued_seconds=float(queued_seconds)))
        sink.played = total_bytes

    @property
    def played_seconds(self) -> float:
        """What the front end reported it has played, in seconds (0 before any report)."""
        return (self._sink.played or 0) / (2 * self.output_rate)

    # ---- operator ----------------------------------------------------------------------

    def force_handoff(self) -> None:
        """Hand over to a new session now (as the operator's key in the dashboard)."""
        self._runner.submit(ev.Operator(command="force_handoff"))

    def set_muted(self, muted: bool) -> None:
        """Send silence instead of the captured audio while muted."""
        self._runner.submit(ev.Operator(command="mute" if muted else "unmute"))

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
        return self._runner.snapshot()

    def _at(self) -> float:
        engine = self._runner.engine
        return 0.0 if engine is None else engine.now - engine.started_at

    def _put(self, event: Event) -> None:
        self._events.put_nowait(event)

    def _on_handled(self, event: ev.WorkerEvent | None, effects: list[fx.Effect]) -> None:
        at = self._at()
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
                case fx.Play(session_id=sid, content_id=cid, pcm=pcm):
                    self._put(
                        AssistantAudio(
                            at=at, session_id=sid, content_id=cid, pcm=pcm, rate=self.output_rate
                        )
                    )
                case fx.FlushPlayback():
                    self._put(StopPlayback(at=at))
                case fx.RunTool():
                    self._put(
                        ToolCall(
                            at=at,
                            session_id=e.session_id,
                            tool_use_id=e.tool_use_id,
                            name=e.tool_name,
                            content=e.content,
                        )
                    )
                case fx.Transitioned():
                    self._on_transition(at, e)
        if isinstance(event, ev.SessionOutput) and not _is_audio(event.event):
            self._new_transcript_lines(at)  # text is the only output that adds lines

    def _on_transition(self, at: float, e: fx.Transitioned) -> None:
        self._put(
            StateChanged(
                at=at, source=e.source, dest=e.dest, trigger=e.trigger, sessions=e.sessions
            )
        )
        engine = self._runner.engine
        assert engine is not None
        if e.dest in ("BUFFERING", "RECOVERING") and e.source not in ("HANDOFF", "BUFFERING"):
            kind: Literal["handoff", "recovery"] = (
                "recovery" if e.dest == "RECOVERING" else "handoff"
            )
            self._handoff_from = engine.failed if kind == "recovery" else engine.current
            self._handoff_history = len(engine.metrics.history_bytes_sent)
            self._put(
                HandoffBegun(at=at, kind=kind, from_session=self._handoff_from, trigger=e.trigger)
            )
        elif e.dest == "HANDOFF":
            self._replayed = engine.buffer.bytes
        elif e.dest == "PROMOTED":
            m = engine.metrics
            self._put(
                HandoffDone(
                    at=at,
                    kind="recovery" if engine.handoff_kind == "recovery" else "handoff",
                    from_session=self._handoff_from,
                    to_session=engine.current or "",
                    took_ms=round(m.handoff_ms[-1], 3) if m.handoff_ms else 0.0,
                    replayed_bytes=self._replayed,
                    history_bytes=sum(m.history_bytes_sent[self._handoff_history :]),
                    handoffs=m.handoffs,
                    recoveries=m.recoveries,
                )
            )

    def _new_transcript_lines(self, at: float) -> None:
        """The engine keeps the transcript as a list it appends to and edits in place (FINAL
        text replaces the SPECULATIVE text it confirms): every line object not seen before
        is news. Holding the lines keeps their ids from being reused."""
        engine = self._runner.engine
        if engine is None:
            return
        lines = engine.transcript
        seen = self._seen
        for line in lines:
            if id(line) not in seen and line.kind in ("user", "assistant"):
                stage: Stage = (
                    "interrupted" if line.interrupted else "final" if line.final else "speculative"
                )
                role: Literal["user", "assistant"] = "user" if line.kind == "user" else "assistant"
                self._put(
                    Transcript(
                        at=at, role=role, text=line.text, stage=stage, session_id=line.session_id
                    )
                )
        self._seen = {id(line): line for line in lines}


def _is_audio(out: Any) -> bool:
    if isinstance(out, dict):
        return "audioOutput" in (out.get("event") or {})
    return isinstance(out, pr.AudioOutput)


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
    "StateChanged",
    "StopPlayback",
    "ToolCall",
    "ToolResult",
    "Transcript",
]

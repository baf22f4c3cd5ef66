"""The asyncio adapter around the engine: workers, one queue, one consumer.

Workers turn the outside world into events: the microphone worker, one worker per
session (its sends in order, its output stream), the timer. The consumer hands each event
to the engine with the loop's time and carries out the effects the engine returns. The
same code runs in real time and, on :class:`sonic_fsm.clock.VirtualTimeLoop`, in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterable, MutableSequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sonic_fsm import tools as tl
from sonic_fsm.audio.base import AudioSink, AudioSource
from sonic_fsm.backends.base import Backend, Session
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import metrics as mx
from sonic_fsm.core.engine import Engine
from sonic_fsm.core.machine import State
from sonic_fsm.core.snapshot import Snapshot
from sonic_fsm.errors import SessionError
from sonic_fsm.observer import NullObserver, Observer
from sonic_fsm.settings import Settings

SETTLE_SECONDS = 2.0  # quiet time after the input ended before a headless run finishes
MAX_TAIL_SECONDS = 60.0  # a headless run never waits longer than this after its input ended

_CLOSE = object()

# Why a conversation ended (``ended_because`` in its metrics). The first three are endings
# someone asked for; the last two are failures, and the command exits non-zero for them.
INPUT_ENDED = "input_ended"  # the input ran out and what it asked for was played
OPERATOR = "operator"  # stopped from the dashboard
SIGNAL = "signal"  # SIGINT or SIGTERM
RETRIES_EXHAUSTED = "retries_exhausted"  # the service kept failing; the retries ran out
REFUSED = "refused"  # the service refused for good (credentials, access, a bad request)
CANCELLED = "cancelled"  # the run was cancelled before it could end


@dataclass
class RunResult:
    """What a finished conversation reports."""

    reason: str
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    ended_because: str = INPUT_ENDED
    error: str | None = None
    """The last session failure, ``Code: message``, when the conversation ended for one."""


class _SessionWorker:
    """Carries out one session's effects in order and reads its output stream."""

    def __init__(self, conv: Conversation, session_id: str) -> None:
        self.conv = conv
        self.id = session_id
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.session: Session | None = None
        self.task = asyncio.create_task(self._run(), name=f"session-{session_id}")
        self.task.add_done_callback(self._forget)
        self.reader: asyncio.Task[None] | None = None

    def _forget(self, task: asyncio.Task[None]) -> None:
        """A finished worker lets go of its session, so hours of sessions are not kept."""
        if self.conv.workers.get(self.id) is self:
            del self.conv.workers[self.id]

    async def _run(self) -> None:
        conv, sid = self.conv, self.id
        timeout = conv.settings.backend.open_timeout_seconds
        try:
            self.session = await asyncio.wait_for(conv.backend.open(sid), timeout)
        except TimeoutError:
            conv.post(ev.SessionFailed(session_id=sid, code="Timeout", message="open timed out"))
            return
        except SessionError as e:
            self._failed(e)
            return
        self.reader = asyncio.create_task(self._read(), name=f"reader-{sid}")
        try:
            while True:
                item = await self.outbox.get()
                if item is _CLOSE:
                    break
                await self._send(item)
        except SessionError as e:
            self._failed(e)
        await self._close()

    def _failed(self, e: SessionError) -> None:
        self.conv.post(
            ev.SessionFailed(
                session_id=self.id, code=e.code, message=e.message, retryable=e.retryable
            )
        )

    async def _send(self, item: fx.Send) -> None:
        assert self.session is not None
        for event in item.events:
            await self.session.send(event)
            self.conv.observer.event_sent(self.id, self.conv.now(), event)
        if item.opening:
            await self.session.accepted()
            expires = getattr(self.session, "credentials_expire_at", None)
            if expires is not None:  # wall-clock epoch seconds: into loop time
                expires = self.conv.now() + (expires - time.time())
            self.conv.post(ev.SessionReady(session_id=self.id, expires_at=expires))
        if item.ack_seq is not None:
            self.conv.post(ev.SessionSent(session_id=self.id, seq=item.ack_seq))

    async def _read(self) -> None:
        assert self.session is not None
        conv, sid = self.conv, self.id
        try:
            while (out := await self.session.receive()) is not None:
                conv.observer.event_received(sid, conv.now(), out)
                conv.post(ev.SessionOutput(session_id=sid, event=out))
        except SessionError as e:
            self._failed(e)
            return
        conv.post(ev.SessionClosed(session_id=sid))

    async def _close(self) -> None:
        if self.session is None:
            return
        timeout = self.conv.settings.backend.close_timeout_seconds
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.session.close(), timeout)
        if self.reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.reader), timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.reader.cancel()
        self.conv.observer.session_closed(
            self.id, self.conv.now(), self.conv.session_summary(self.id)
        )

    def abandon(self) -> None:
        """Stop at once (failed session): no more sends, release in the background."""
        self.outbox.put_nowait(_CLOSE)


class Conversation:
    """A running conversation: the engine with its workers. ``run()`` until it ends."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        source: AudioSource,
        sink: AudioSink,
        observer: Observer | None = None,
        log: Callable[[str], None] | None = None,
        finish_when_input_ends: bool = True,
        tools: Iterable[tl.Tool] = (),
        recorder: Callable[[], Observer] | None = None,
        on_handled: Callable[[ev.WorkerEvent | None, list[fx.Effect]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.source = source
        self.sink = sink
        self.observer: Observer = observer or NullObserver()
        self.recording = observer is not None
        self.make_recorder = recorder
        # Told of every batch of effects once carried out, with the event that caused it
        # (None for the start and the end): the public API turns them into its events.
        self.on_handled = on_handled
        self.log = log or (lambda line: None)
        self.finish_when_input_ends = finish_when_input_ends
        # Imported and checked now, so a bad tool module stops the start with one line.
        self.tools = tl.registry(settings, tools)
        self._tool_pool: ThreadPoolExecutor | None = None
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self.queue: asyncio.Queue[ev.WorkerEvent] = asyncio.Queue()
        self.engine: Engine | None = None
        self.workers: dict[str, _SessionWorker] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rearm = asyncio.Event()
        self._input_ended_at: float | None = None
        self._quiet_since: float | None = None
        self._stopped: str | None = None
        self._ended_because: str | None = None  # set when this adapter asked for the end
        self._stop_request: str | None = None
        self._last_failure: ev.SessionFailed | None = None
        self.engine_events = 0
        # Set to a list (or an array("q"), 8 bytes an entry) to measure the engine.
        self.chunk_cpu_ns: MutableSequence[int] | None = None

    # ---- the public face ---------------------------------------------------------------

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def speaker_busy(self, now: float) -> bool:
        """The speaker still has audio queued at ``now``."""
        return self.sink.queued_seconds(now) > 0

    def assistant_busy(self) -> bool:
        """An answer is pending or still playing (what a talker waits out)."""
        engine = self.engine
        return engine is not None and (engine.answer_pending or self.speaker_busy(self.now()))

    def post(self, event: ev.WorkerEvent) -> None:
        """Put an event on the queue (from the loop's thread)."""
        self.queue.put_nowait(event)

    def submit(self, event: ev.WorkerEvent) -> None:
        """Put an event on the queue from any thread (the dashboard, a signal handler)."""
        if self._loop is None:
            self.queue.put_nowait(event)
        else:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def request_stop(self, reason: str) -> None:
        """End the conversation properly, as soon as the consumer runs (a signal handler on
        the loop's thread calls this): sessions closed, outputs written, the final line."""
        if self._stop_request is None:
            self._stop_request = reason
            self.post(ev.Tick())

    def session_summary(self, session_id: str) -> dict[str, Any]:
        sess = self.engine.sessions.get(session_id) if self.engine else None
        if sess is None:
            return {}
        return {
            "role": sess.role,
            "age_seconds": round(self.now() - sess.opened_at, 3),
            "audio_in_bytes": sess.audio_in_bytes,
            "audio_out_bytes": sess.audio_out_bytes,
            "history_bytes": sess.history_bytes,
        }

    def snapshot(self) -> Snapshot | None:
        if self.engine is None:
            return None
        return dataclasses.replace(self.engine.snapshot(), recording=self.recording)

    def _set_recording(self, on: bool) -> None:
        """The operator's toggle: start a recorder (sessions join it as they speak) or stop it."""
        if on == self.recording:
            return
        if not on:
            self.observer.close()
            self.observer, self.recording = NullObserver(), False
            self.log("[RECORDING] off")
            return
        if self.make_recorder is None:
            self.log("[RECORDING] not available here")
            return
        try:
            self.observer = self.make_recorder()
        except OSError as e:
            self.log(f"[RECORDING] cannot record: {e}")
            return
        self.recording = True
        self.log("[RECORDING] on")

    async def run(self) -> RunResult:
        self._loop = asyncio.get_running_loop()
        prepare = getattr(self.backend, "start", None)
        if prepare is not None:
            await prepare()  # e.g. find credentials: fails at once with one line
        start = self.now()
        start_sink = getattr(self.sink, "start", None)
        if start_sink is not None:
            start_sink(start)
        self.engine = Engine(self.settings, start, tools=self.tools.specs())
        self._apply(self.engine.start(start))
        mic = asyncio.create_task(self._mic(), name="mic")
        timer = asyncio.create_task(self._timer(), name="timer")
        try:
            while self._stopped is None:
                event = await self.queue.get()
                self.engine_events += 1
                if isinstance(event, ev.Operator) and event.command.startswith("recording_"):
                    self._set_recording(event.command == "recording_on")
                if isinstance(event, ev.Operator) and event.command == "stop":
                    self._ended_because = self._ended_because or OPERATOR
                if isinstance(event, ev.SessionFailed):
                    self._last_failure = event
                before = self.engine.next_deadline()
                if self.chunk_cpu_ns is not None and isinstance(event, ev.MicFrame):
                    t = time.process_time_ns()
                    effects = self.engine.handle(event, self.now())
                    self.chunk_cpu_ns.append(time.process_time_ns() - t)
                else:
                    effects = self.engine.handle(event, self.now())
                self._apply(effects, event)
                if self.engine.next_deadline() != before:
                    self._rearm.set()
                if self._stop_request is not None and self._stopped is None:
                    self._ended_because = self._ended_because or SIGNAL
                    self._apply(self.engine.end(self._stop_request, self.now()))
                self._check_finished()
        finally:
            mic.cancel()
            timer.cancel()
            if self.engine.state is not State.STOPPED:
                self._ended_because = self._ended_because or CANCELLED
                self._apply(self.engine.end(self._stopped or CANCELLED, self.now()))
            await self._shutdown()
        ended = self._ended_because or self._failure_kind()
        failure = self._last_failure
        failed = ended in (RETRIES_EXHAUSTED, REFUSED)
        error = f"{failure.code}: {failure.message}" if failure and failed else None
        metrics = {"ended_because": ended, **({"error": error} if error else {}), **self.metrics()}
        return RunResult(
            reason=self._stopped or CANCELLED,
            seconds=self.now() - start,
            metrics=metrics,
            ended_because=ended,
            error=error,
        )

    def _failure_kind(self) -> str:
        """The engine stopped by itself: because the service refused, or kept failing."""
        failure = self._last_failure
        return REFUSED if failure is not None and not failure.retryable else RETRIES_EXHAUSTED

    # ---- workers -----------------------------------------------------------------------

    async def _mic(self) -> None:
        seq = 0
        chunk = self.settings.audio.chunk_frames * 2
        async for pcm in self.source.frames():
            self.post(ev.MicFrame(seq=seq, pcm=pcm))
            seq += 1
        self._input_ended_at = self.now()
        self.post(ev.MicEnded())
        # A microphone keeps streaming after the speaker stops: silence, so the model can
        # end-point the last utterance and the stream stays alive until the run ends.
        period = self.settings.audio.chunk_frames / self.settings.audio.input_sample_rate
        t0 = self.now()
        for i in itertools.count(1):
            await asyncio.sleep(max(0.0, t0 + i * period - self.now()))
            self.post(ev.MicFrame(seq=seq, pcm=bytes(chunk)))
            seq += 1

    async def _timer(self) -> None:
        assert self.engine is not None
        fired: float | None = None
        while True:
            self._rearm.clear()
            deadline = self.engine.next_deadline()
            if deadline == fired:
                deadline = None  # already told; wait until the engine's deadline changes
            timeout = None if deadline is None else max(0.0, deadline - self.now())
            try:
                await asyncio.wait_for(self._rearm.wait(), timeout)
            except TimeoutError:
                fired = deadline
                self.post(ev.Tick())

    # ---- effects -----------------------------------------------------------------------

    def _apply(self, effects: list[fx.Effect], event: ev.WorkerEvent | None = None) -> None:
        now = self.now()
        for e in effects:
            match e:
                case fx.OpenSession(session_id=sid):
                    self.workers[sid] = _SessionWorker(self, sid)
                    self.observer.session_opened(sid, now, [])
                case fx.Send(session_id=sid):
                    worker = self.workers.get(sid)
                    if worker is not None:
                        worker.outbox.put_nowait(e)
                case fx.CloseSession(session_id=sid):
                    worker = self.workers.get(sid)
                    if worker is not None:
                        worker.abandon()
                case fx.Play(pcm=pcm):
                    self.sink.play(pcm, now)
                case fx.FlushPlayback():
                    self.sink.flush(now)
                case fx.RunTool():
                    self._run_tool(e)
                case fx.Log(line=line):
                    self.log(line)
                case fx.Transitioned(trigger=trigger, source=source, dest=dest, sessions=ids):
                    self.observer.transition(now, trigger, source, dest, list(ids))
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

    # ---- the end -----------------------------------------------------------------------

    def _check_finished(self) -> None:
        engine = self.engine
        if engine is None or self._stopped or self._input_ended_at is None:
            return
        if not self.finish_when_input_ends:
            return
        now = self.now()
        quiet = engine.idle and not self.speaker_busy(now)
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        settled = (
            quiet and self._quiet_since is not None and now - self._quiet_since >= SETTLE_SECONDS
        )
        if settled or now - self._input_ended_at >= MAX_TAIL_SECONDS:
            self._ended_because = self._ended_because or INPUT_ENDED
            self._apply(engine.end("the input ended", now))

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
        await self.source.aclose()
        await self.sink.aclose()
        self.observer.close()

    def metrics(self) -> dict[str, Any]:
        engine = self.engine
        if engine is None:
            return {}
        return {
            **mx.summary(engine),
            "engine_events": self.engine_events,
            "assistant_truncated_ms": mx.truncated_ms(engine),
        }


def dumps(result: RunResult) -> str:
    return json.dumps(
        {"reason": result.reason, "seconds": round(result.seconds, 3), **result.metrics}, indent=2
    )

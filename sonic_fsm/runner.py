"""A conversation with audio devices or files: :class:`Runner` drives an
:class:`sonic_fsm.api.Conversation` from an :class:`AudioSource` and plays its answers on an
:class:`AudioSink`, through the public API alone (``sonic-fsm run --headless`` and the
dashboard). The same code runs in real time and, on :class:`sonic_fsm.clock.VirtualTimeLoop`,
in virtual time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sonic_fsm import api
from sonic_fsm import tools as tl
from sonic_fsm.api import CANCELLED, FAILURES, INPUT_ENDED, SIGNAL
from sonic_fsm.audio.base import AudioSink, AudioSource
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core.backend import Backend
from sonic_fsm.core.snapshot import Snapshot
from sonic_fsm.observer import Observer
from sonic_fsm.settings import Settings

SETTLE_SECONDS = 2.0  # quiet time after the input ended before a headless run finishes
MAX_TAIL_SECONDS = 60.0  # a headless run never waits longer than this after its input ended
FEEDBACK_SECONDS = 0.2  # how often a speaker that counts what it really played reports it


@dataclass
class RunResult:
    """What a finished conversation reports."""

    reason: str
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    ended_because: str = INPUT_ENDED
    error: str | None = None
    """The last session failure, ``Code: message``, when the conversation ended for one."""


class Runner:
    """One conversation on audio devices or files. ``run()`` until it ends.

    The source's frames go in with ``send_audio``; after the source ends, silence goes on
    (a microphone keeps streaming, so the model can end-point the last utterance) and, with
    ``finish_when_input_ends``, the run ends once all is answered and played. The
    conversation's audio goes to the sink, its log lines to ``log``. A sink that counts what
    its device has really played (``played_bytes``: the speaker) reports it every
    :data:`FEEDBACK_SECONDS` with what it still has queued (the API's playback feedback);
    the others play in real time from delivery, as the engine assumes without feedback.
    """

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
        self.conversation = api.Conversation(
            settings, backend, tools, observer=observer, recorder=recorder, on_handled=on_handled
        )
        self.source = source
        self.sink = sink
        self.log = log or (lambda line: None)
        self.finish_when_input_ends = finish_when_input_ends
        self._loop: asyncio.AbstractEventLoop | None = None
        self._input_ended_at: float | None = None
        self._quiet_since: float | None = None
        self._because: str | None = None  # set when this runner asked for the end
        self._next_feedback = 0.0

    # ---- the public face ---------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self.conversation.backend

    @property
    def tools(self) -> tl.Tools:
        return self.conversation.tools

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def speaker_busy(self, now: float) -> bool:
        """The speaker still has audio queued at ``now``."""
        return self.sink.queued_seconds(now) > 0

    def assistant_busy(self) -> bool:
        """An answer is pending or still playing (what a talker waits out)."""
        if self._loop is None:
            return False
        return self.conversation.answer_pending or self.speaker_busy(self.now())

    # The operator's calls (the dashboard's keys): the public API's.

    def force_handoff(self) -> None:
        self.conversation.force_handoff()

    def set_muted(self, muted: bool) -> None:
        self.conversation.set_muted(muted)

    def set_recording(self, on: bool) -> None:
        self.conversation.set_recording(on)

    def stop(self) -> None:
        self.conversation.stop()

    def request_stop(self, reason: str) -> None:
        """End the conversation properly (a signal handler on the loop's thread calls this):
        sessions closed, outputs written, the final line."""
        if not self.conversation.closed:
            self._because = self._because or SIGNAL
            self.conversation.stop(reason)

    def snapshot(self) -> Snapshot | None:
        return self.conversation.snapshot()

    def metrics(self) -> dict[str, Any]:
        return self.conversation.metrics()

    async def run(self) -> RunResult:
        self._loop = asyncio.get_running_loop()
        start = self.now()
        start_sink = getattr(self.sink, "start", None)
        if start_sink is not None:
            start_sink(start)
        ended: api.Ended | None = None
        try:
            async with self.conversation:
                mic = asyncio.create_task(self._mic(), name="mic")
                try:
                    ended = await self._play()
                finally:
                    mic.cancel()
        finally:
            await self.source.aclose()
            await self.sink.aclose()
        metrics = dict(ended.metrics)
        because = self._because or metrics.get("ended_because") or CANCELLED
        metrics["ended_because"] = because
        if because not in FAILURES:
            metrics.pop("error", None)
        return RunResult(
            reason=ended.reason,
            seconds=self.now() - start,
            metrics=metrics,
            ended_because=because,
            error=metrics.get("error"),
        )

    # ---- the two directions -------------------------------------------------------------

    async def _mic(self) -> None:
        conv = self.conversation
        async for pcm in self.source.frames():
            if conv.closed:
                return
            conv.send_audio(pcm)
            self._feedback()
        self._input_ended_at = self.now()
        # A microphone keeps streaming after the speaker stops: silence, so the model can
        # end-point the last utterance and the stream stays alive until the run ends.
        silence = bytes(self.settings.audio.chunk_frames * 2)
        period = self.settings.audio.chunk_frames / self.settings.audio.input_sample_rate
        t0 = self.now()
        for i in itertools.count(1):
            await asyncio.sleep(max(0.0, t0 + i * period - self.now()))
            if conv.closed:
                return
            conv.send_audio(silence)
            self._feedback()
            self._check_finished()

    async def _play(self) -> api.Ended:
        async for event in self.conversation.events():
            match event:
                case api.AssistantAudio(pcm=pcm):
                    self.sink.play(pcm, self.now())
                case api.StopPlayback():
                    self.sink.flush(self.now())
                case api.Log(line=line):
                    self.log(line)
                case api.Ended():
                    return event
        raise AssertionError("events() ends with Ended")  # pragma: no cover

    def _feedback(self) -> None:
        played = getattr(self.sink, "played_bytes", None)
        now = self.now()
        if played is None or now < self._next_feedback:
            return
        self._next_feedback = now + FEEDBACK_SECONDS
        self.conversation.played(played, self.sink.queued_seconds(now))

    def _check_finished(self) -> None:
        if not self.finish_when_input_ends or self._input_ended_at is None:
            return
        now = self.now()
        quiet = self.conversation.idle and not self.speaker_busy(now)
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = now
        settled = (
            quiet and self._quiet_since is not None and now - self._quiet_since >= SETTLE_SECONDS
        )
        if self.conversation.state == "RECOVERING":
            # Waiting for a replacement is bounded by the retries; the tail counts from
            # when there is a session again to answer what was said.
            self._input_ended_at = max(self._input_ended_at, now)
        if settled or now - self._input_ended_at >= MAX_TAIL_SECONDS:
            self._because = self._because or INPUT_ENDED
            self.conversation.stop("the input ended")


def dumps(result: RunResult) -> str:
    return json.dumps(
        {"reason": result.reason, "seconds": round(result.seconds, 3), **result.metrics}, indent=2
    )

"""The engine: owns the machine, the sessions, the buffer and the history, and dispatches
each event to the room that decides it.

Sans-IO. It is fed worker events and the time they are handled at (``handle(event, now)``),
and returns effects for adapters to carry out; it never reads a clock and never does I/O.
``next_deadline()`` tells the one timer adapter when to call again with :class:`Tick`.

The rooms (modules of functions over the engine): :mod:`~sonic_fsm.core.sessions` (open,
ready, failed, closed), :mod:`~sonic_fsm.core.useraudio` (where microphone frames go),
:mod:`~sonic_fsm.core.answers` (what the model says), :mod:`~sonic_fsm.core.handoff` (the
switch and the history a new session gets), :mod:`~sonic_fsm.core.tooluse`,
:mod:`~sonic_fsm.core.timers`, :mod:`~sonic_fsm.core.views` and
:mod:`~sonic_fsm.core.metrics`. Every state decision is in :mod:`~sonic_fsm.core.machine`.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Sequence
from typing import Any

from transitions import EventData

from sonic_fsm.core import answers, handoff, sessions, timers, tooluse, useraudio, views
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import toolcalls as tc
from sonic_fsm.core.buffer import ReplayBuffer
from sonic_fsm.core.config import Settings
from sonic_fsm.core.ledger import Ledger
from sonic_fsm.core.machine import OPEN_ROLES, WORKING_ROLES, Role, State, Trigger, attach
from sonic_fsm.core.metrics import Metrics
from sonic_fsm.core.playback import Playback
from sonic_fsm.core.retry import Backoff, RandomSource, Retries
from sonic_fsm.core.sessions import Session
from sonic_fsm.core.snapshot import Snapshot, TranscriptLine, TransitionRecord
from sonic_fsm.core.timers import Timer

BACKOFF_BASE_SECONDS = 0.5
LOG_LIMIT = 500


class Engine:
    """Session continuation, driven by events; see ``architecture.md`` for the invariants."""

    def __init__(
        self,
        settings: Settings,
        now: float,
        rng: RandomSource | None = None,
        tools: Sequence[dict[str, Any]] = (),
    ) -> None:
        """``tools``: the ``toolSpec`` entries every session declares (``Tools.specs()``)."""
        self.s = settings
        # Seeded by default so a run (and its virtual-time replay) is reproducible.
        self.backoff = Backoff.from_settings(settings.backend, rng or random.Random(0))
        self.now = now
        self.started_at = now
        self._fx: list[fx.Effect] = []
        self.session_ids = itertools.count(1)
        self.sessions: dict[str, Session] = {}
        self.current: str | None = None
        self.next: str | None = None
        self.buffer = ReplayBuffer(settings.buffer_cap_bytes)
        self.ledger = Ledger.from_settings(settings)
        self.playback = Playback(settings.audio.output_sample_rate)
        self.last_seq = -1
        self.switch = handoff.Switch()  # the hand-off or recovery under way
        self.retries = Retries()  # failures in a row, and the replacement they wait for
        self.muted = False
        self.metrics = Metrics()
        self.state_since = now
        self.last_transition: TransitionRecord | None = None
        self.recent_transitions: deque[TransitionRecord] = deque(maxlen=20)
        self.recent_levels: deque[float] = deque(maxlen=5)  # the mic meter holds its peak
        self.log: list[str] = []
        self.transcript: list[TranscriptLine] = []
        self.stop_reason: str | None = None
        self.tool_specs = list(tools)
        self.calls = tc.ToolCalls()
        self.tool_result_ids = itertools.count(1)
        self.state: State = State.NORMAL
        self._fired: deque[Trigger] = deque()  # the trigger running, then those queued
        self.machine = attach(self, on_exception=self._on_exception)
        self._armed: list[tuple[float, Timer]] = []  # the timers as the last call left them

    # ---- guards' context ---------------------------------------------------------------

    @property
    def has_ready_next(self) -> bool:
        return self.next is not None and self.sessions[self.next].ready

    @property
    def forced(self) -> bool:
        return self.switch.forced

    @property
    def turn_settled(self) -> bool:
        cur = self.sessions.get(self.current or "")
        return cur is None or not cur.turn_in_progress

    @property
    def has_current(self) -> bool:
        cur = self.sessions.get(self.current or "")
        return cur is not None and cur.role is Role.CURRENT

    @property
    def retries_left(self) -> bool:
        return not self.backoff.exhausted(self.retries.attempts)

    @property
    def has_no_outstanding_tool(self) -> bool:
        return not self.calls.outstanding(self.current)

    # ---- entry points ------------------------------------------------------------------

    def start(self, now: float) -> list[fx.Effect]:
        """Open the first session."""
        self.now = now
        self.current = sessions.open_session(self, Role.CURRENT)
        self._armed = timers.deadlines(self)
        return self.take()

    def handle(self, event: ev.WorkerEvent, now: float) -> list[fx.Effect]:
        """Handle one worker event at time ``now``; return what the adapters must do."""
        self._advance(now)
        armed = None
        if self.state is not State.STOPPED and any(self.now >= t for t, _ in self._armed):
            # What fell due by ``now`` happened before this event. The engine has not
            # changed since its last call and no deadline depends on the time, so the list
            # that call left says whether anything is due.
            timers.check(self)
        if self.state is not State.STOPPED:
            self._dispatch(event)
            armed = timers.check(self)
        elif isinstance(event, ev.MicFrame):
            useraudio.after_end(self, event.seq, event.pcm)
        sessions.prune(self)  # gone sessions no deadline reads
        self._armed = armed if armed is not None else timers.deadlines(self)
        return self.take()

    def next_deadline(self) -> float | None:
        """The earliest time at which :class:`Tick` must be handled."""
        return min((when for when, _ in self._armed), default=None)

    def deadlines(self) -> list[tuple[float, Timer]]:
        """Every armed timer as ``(when, what)``: the list the last timer check read, as it
        stood when the last call (``start``, ``handle``, ``end``) returned; the engine
        changes only in those calls."""
        return list(self._armed)

    # ---- dispatch ----------------------------------------------------------------------

    def _dispatch(self, event: ev.WorkerEvent) -> None:
        match event:
            case ev.MicFrame(seq=seq, pcm=pcm):
                useraudio.on_mic(self, seq, pcm)
            case ev.SessionReady(session_id=sid, expires_at=expires_at):
                if sid in self.sessions:
                    self.sessions[sid].expires_at = expires_at
                sessions.on_ready(self, sid)
            case ev.SessionOutput(session_id=sid, event=out):
                answers.on_output(self, sid, out)
            case ev.SessionSent(session_id=sid, seq=seq):
                if (
                    sid == self.next
                    and self.state is State.HANDOFF
                    and seq >= self.switch.drain_seq
                ):
                    self.fire(Trigger.BUFFER_DRAINED)
            case ev.SessionFailed(session_id=sid, code=code, message=message):
                sessions.on_failed(self, sid, f"{code}: {message}", event.retryable)
            case ev.SessionClosed(session_id=sid):
                sess = self.sessions.get(sid)
                if sess is not None and sess.role in WORKING_ROLES:
                    sessions.on_failed(self, sid, "stream ended unexpectedly")
                elif sess is not None and sess.role is not Role.FAILED:
                    sess.role = Role.CLOSED
            case ev.ToolFinished():
                tooluse.on_tool_finished(self, event)
            case ev.Operator(command=command):
                self._on_operator(command)
            case ev.PlaybackProgress(queued_seconds=queued):
                self.playback.progress(queued, self.now)
            case ev.Tick() | ev.MicEnded():
                pass  # time passed / the input ended: the timers below are checked

    def _on_operator(self, command: str) -> None:
        if command == "force_handoff":
            if (
                self.allowed(Trigger.FORCE_HANDOFF)
                and self.has_current
                and self.sessions[self.current or ""].ready
            ):
                self.switch.forced = True
                self.say("[OPERATOR] hand-off forced")
                self.fire(Trigger.FORCE_HANDOFF)
        elif command in ("mute", "unmute"):
            self.muted = command == "mute"
            self.say(f"[OPERATOR] microphone {'muted' if self.muted else 'unmuted'}")
        elif command == "stop":
            self.stop_because("stopped by the operator")

    # ---- tools (the bookkeeping and its rule: sonic_fsm.core.toolcalls) ----------------------

    def tool_gone(self, sid: str) -> bool:
        """The session can no longer answer a tool result: closed, failed or handed over."""
        sess = self.sessions.get(sid)
        return sess is None or sess.cut or sess.role not in WORKING_ROLES

    # ---- state callbacks (run by the machine) ------------------------------------------

    def on_enter_MONITORING(self, e: EventData) -> None:
        self.switch.monitoring_since = self.now

    def open_next(self, e: EventData) -> None:
        """Into BUFFERING from NORMAL or MONITORING: the next session opens."""
        handoff.open_next(self)

    def resume_current(self, e: EventData) -> None:
        """The next session failed during the hand-off: the current one takes audio again."""
        handoff.resume_current(self)

    def hand_over(self, e: EventData) -> None:
        """Into HANDOFF from BUFFERING: the current session hands over."""
        handoff.begin(self, recovering=False)

    def recover(self, e: EventData) -> None:
        """Into HANDOFF from RECOVERING: the replacement takes over from the failed session."""
        handoff.begin(self, recovering=True)

    def on_enter_PROMOTED(self, e: EventData) -> None:
        handoff.promote(self)

    def on_enter_NORMAL(self, e: EventData) -> None:
        handoff.settle(self)

    def on_enter_RECOVERING(self, e: EventData) -> None:
        handoff.start_recovery(self)

    def on_enter_STOPPED(self, e: EventData) -> None:
        for sid, sess in self.sessions.items():
            if sess.role in OPEN_ROLES:
                sessions.close_session(self, sid)
        reason = self.stop_reason or "retries exhausted"
        self.say(f"[STOPPED] {reason}")
        self.emit(fx.Stopped(reason=reason))

    # ---- machine plumbing --------------------------------------------------------------

    def trigger(self, name: str) -> bool:
        """Bound by the machine (``model_override``): runs the trigger ``name``."""
        raise NotImplementedError

    def allowed(self, trigger: Trigger) -> bool:
        """The table has ``trigger`` for the current state. An unknown trigger raises."""
        return Trigger(trigger) in self.machine.get_triggers(self.state)

    def fire(self, trigger: Trigger) -> None:
        """Fire ``trigger`` if the table has it for the state the machine is in when it runs:
        an event the state does not care about is not a transition. Inside a callback the
        machine is mid-transition, so the trigger is queued and checked when its turn comes
        (after the transition under way and those queued before it). A name that is no
        trigger at all raises (ValueError) at once; ``ignore_invalid_triggers=False`` holds
        for the rest."""
        self._fired.append(Trigger(trigger))
        if len(self._fired) > 1:
            return  # a transition is under way; its loop below runs this one in turn
        try:
            while self._fired:
                if self.allowed(self._fired[0]):
                    self.trigger(self._fired[0].value)
                self._fired.popleft()
        except BaseException:
            self._fired.clear()
            raise

    def schedule_retry(self, e: EventData) -> None:
        """After a failed next session: open another after a backoff, while retries last."""
        sessions.schedule_retry(self)

    def record_transition(self, e: EventData) -> None:
        """Runs after every state change: time in state, the log line, the observer."""
        assert e.transition is not None
        source, dest = e.transition.source, str(e.transition.dest)
        spent = self.now - self.state_since
        self.metrics.time_in_state[source] = self.metrics.time_in_state.get(source, 0.0) + spent
        self.state_since = self.now
        at = self.now - self.started_at
        self.last_transition = TransitionRecord(
            at=at, trigger=e.event.name, source=source, dest=dest
        )
        self.recent_transitions.append(self.last_transition)
        if self.s.session_logging.log_transitions:
            self.say(f"[TRANSITION] {source} -> {dest} ({e.event.name})")
        ids = tuple(i for i in (self.current, self.next, self.switch.old, self.switch.failed) if i)
        self.emit(fx.Transitioned(trigger=e.event.name, source=source, dest=dest, sessions=ids))

    def _on_exception(self, e: EventData) -> None:
        raise e.error  # type: ignore[misc]

    def stop_because(self, reason: str) -> None:
        self.stop_reason = reason
        self.fire(Trigger.STOP)

    def end(self, reason: str, now: float) -> list[fx.Effect]:
        """End the conversation: close every session properly."""
        self._advance(now)
        if self.state is not State.STOPPED:
            self.stop_because(reason)
        self._armed = timers.deadlines(self)
        return self.take()

    # ---- bookkeeping -------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        self.now = max(self.now, now)

    def emit(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.Play):
            self.metrics.audio_played_bytes += len(effect.pcm)
            self.playback.play(effect.session_id, effect.content_id, len(effect.pcm), self.now)
        elif isinstance(effect, fx.FlushPlayback):
            self.playback.flush(self.now)
        self._fx.append(effect)

    def take(self) -> list[fx.Effect]:
        out, self._fx = self._fx, []
        return out

    def say(self, line: str) -> None:
        stamped = f"{self.now - self.started_at:9.3f} {line}"
        self.log.append(stamped)
        if len(self.log) > LOG_LIMIT:
            del self.log[: len(self.log) - LOG_LIMIT]
        self.emit(fx.Log(line=stamped))

    # ---- views -------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing is being said or answered, and nothing is switching."""
        return self.state is State.NORMAL and not self.answer_pending and self.ledger.open is None

    @property
    def answer_pending(self) -> bool:
        """An answer is being generated, or a transcribed utterance still awaits one."""
        busy = any(
            s.turn_in_progress
            for s in self.sessions.values()
            if s.role in (Role.CURRENT, Role.CLOSING)
        )
        return busy or self.ledger.awaiting_answer()

    def snapshot(self) -> Snapshot:
        return views.snapshot(self)

"""The engine: owns the machine, the sessions, the buffer and the history.

Sans-IO. It is fed worker events and the time they are handled at (``handle(event, now)``),
and returns effects for adapters to carry out; it never reads a clock and never does I/O.
``next_deadline()`` tells the one timer adapter when to call again with :class:`Tick`.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from transitions import EventData

from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import history as hist
from sonic_fsm.core import protocol as pr
from sonic_fsm.core import toolcalls as tc
from sonic_fsm.core.buffer import ReplayBuffer
from sonic_fsm.core.ledger import Entry, Ledger
from sonic_fsm.core.machine import (
    GONE_ROLES,
    OPEN_ROLES,
    WORKING_ROLES,
    Role,
    State,
    Trigger,
    attach,
    audio_route,
)
from sonic_fsm.core.playback import Playback
from sonic_fsm.core.retry import Backoff, RandomSource
from sonic_fsm.core.snapshot import (
    SessionView,
    Snapshot,
    ToolView,
    TranscriptLine,
    TransitionRecord,
)
from sonic_fsm.settings import Settings

OLD_SESSION_GRACE_SECONDS = 30.0
BEFORE_HANDOFF = (State.NORMAL, State.MONITORING, State.BUFFERING)  # the limit still ahead
BACKOFF_BASE_SECONDS = 0.5
WORDS_PER_SECOND = 2.5  # to tell how much of an answer's text its heard audio carried
LOG_LIMIT = 500
TRANSCRIPT_LIMIT = 400


@dataclass
class Session:
    """The engine's record of one session."""

    id: str
    prompt_name: str
    audio_name: str
    opened_at: float
    role: Role
    ready: bool = False
    live: bool = False  # its audio content has started: it takes user frames
    cut: bool = False  # no longer takes user audio; only finishes the answer it was giving
    first_seq: int | None = None  # first user frame it received
    last_seq: int = -1  # last user frame it received
    pending_speculative: int = 0
    audio_open: str | None = None  # content id of assistant audio being generated
    contents: dict[str, pr.ContentStart] = field(default_factory=dict)
    history_answers_due: int = 0  # re-sent USER history turns it will answer first
    speculative_texts: list[str] = field(default_factory=list)  # this turn's, until FINAL
    answer_audio: str | None = None  # content id of the latest answer's audio
    answer_audio_bytes: int = 0
    answer_entry: Entry | None = None  # the latest answer's words in the history
    answer_cut: bool = False  # the user cut the latest answer (its history entry is final)
    unheard: str | None = None  # content id of audio not played: it began over the user
    audio_in_bytes: int = 0
    audio_out_bytes: int = 0
    history_bytes: int = 0
    expires_at: float | None = None  # its signing credentials expire then (temporary keys)

    @property
    def turn_in_progress(self) -> bool:
        return self.pending_speculative > 0 or self.audio_open is not None


class Timer(Enum):
    """What the engine waits for, in the order a Tick handles them."""

    THRESHOLD = "threshold"  # the current session is old enough to prepare its successor
    HARD_DEADLINE = "hard deadline"  # switch now, turn boundary or not
    AUDIO_START = "audio start"  # the assistant did not start speaking in time
    NEXT_READY = "next ready"  # the next session did not get ready in time
    RETRY = "retry"  # open another replacement after a backoff
    OLD_SESSION = "old session"  # the old session did not finish its answer in time


@dataclass
class Metrics:
    sessions_opened: int = 0
    handoffs: int = 0
    recoveries: int = 0
    handoff_ms: list[float] = field(default_factory=list)
    history_bytes_sent: list[int] = field(default_factory=list)
    time_in_state: dict[str, float] = field(default_factory=dict)
    barge_ins: int = 0
    failures: int = 0
    audio_received_bytes: int = 0  # assistant audio that arrived from any session
    audio_played_bytes: int = 0  # queued on the speaker
    audio_interrupted_bytes: int = 0  # held back, then dropped because the user barged in


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
        self._ids = itertools.count(1)
        self.sessions: dict[str, Session] = {}
        self.current: str | None = None
        self.next: str | None = None
        self.old: str | None = None  # the session handing over, until it is done
        self.failed: str | None = None  # the session a recovery replaces
        self.buffer = ReplayBuffer(settings.buffer_cap_bytes)
        self.ledger = Ledger.from_settings(settings)
        self.playback = Playback(settings.audio.output_sample_rate)
        self.last_seq = -1
        self.forced = False
        self.attempts = 0
        self.retry_at: float | None = None
        self.monitoring_since: float | None = None
        self.handoff_started: float | None = None
        self.handoff_kind = "handoff"
        self.drain_seq = -1
        self.promoted_at: float | None = None
        self.held: list[fx.Play] = []
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
        self._tool_results = itertools.count(1)
        self.state: State = State.NORMAL
        self.machine = attach(self, on_exception=self._on_exception)

    # ---- guards' context ---------------------------------------------------------------

    @property
    def has_ready_next(self) -> bool:
        return self.next is not None and self.sessions[self.next].ready

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
        return not self.backoff.exhausted(self.attempts)

    @property
    def has_no_outstanding_tool(self) -> bool:
        return not self.calls.outstanding(self.current)

    # ---- entry points ------------------------------------------------------------------

    def start(self, now: float) -> list[fx.Effect]:
        """Open the first session."""
        self.now = now
        self.current = self._open(Role.CURRENT)
        return self._take()

    def handle(self, event: ev.WorkerEvent, now: float) -> list[fx.Effect]:
        """Handle one worker event at time ``now``; return what the adapters must do."""
        self._advance(now)
        if self.state is not State.STOPPED:
            self._dispatch(event)
            self._check_timers()
        return self._take()

    def next_deadline(self) -> float | None:
        """The earliest time at which :class:`Tick` must be handled."""
        return min((when for when, _ in self.deadlines()), default=None)

    def deadlines(self) -> list[tuple[float, Timer]]:
        """Every armed timer as ``(when, what)``: what ``next_deadline`` and the timer
        handling both read."""
        return [(when, what) for what in Timer if (when := self._deadline(what)) is not None]

    # ---- dispatch ----------------------------------------------------------------------

    def _dispatch(self, event: ev.WorkerEvent) -> None:
        match event:
            case ev.MicFrame(seq=seq, pcm=pcm):
                self._on_mic(seq, pcm)
            case ev.SessionReady(session_id=sid, expires_at=expires_at):
                if sid in self.sessions:
                    self.sessions[sid].expires_at = expires_at
                self._on_ready(sid)
            case ev.SessionOutput(session_id=sid, event=out):
                self._on_output(sid, out)
            case ev.SessionSent(session_id=sid, seq=seq):
                if sid == self.next and self.state is State.HANDOFF and seq >= self.drain_seq:
                    self._fire(Trigger.BUFFER_DRAINED)
            case ev.SessionFailed(session_id=sid, code=code, message=message):
                self._on_failed(sid, f"{code}: {message}", event.retryable)
            case ev.SessionClosed(session_id=sid):
                sess = self.sessions.get(sid)
                if sess is not None and sess.role in WORKING_ROLES:
                    self._on_failed(sid, "stream ended unexpectedly")
                elif sess is not None and sess.role is not Role.FAILED:
                    sess.role = Role.CLOSED
            case ev.ToolFinished():
                self._on_tool_finished(event)
            case ev.Operator(command=command):
                self._on_operator(command)
            case ev.PlaybackProgress(queued_seconds=queued):
                self.playback.progress(queued, self.now)
            case ev.Tick() | ev.MicEnded():
                pass  # time passed / the input ended: the timers below are checked

    def _on_operator(self, command: str) -> None:
        if command == "force_handoff":
            if (
                self._allowed(Trigger.FORCE_HANDOFF)
                and self.has_current
                and self.sessions[self.current or ""].ready
            ):
                self.forced = True
                self._say("[OPERATOR] hand-off forced")
                self._fire(Trigger.FORCE_HANDOFF)
        elif command in ("mute", "unmute"):
            self.muted = command == "mute"
            self._say(f"[OPERATOR] microphone {'muted' if self.muted else 'unmuted'}")
        elif command == "stop":
            self._stop("stopped by the operator")

    # ---- user audio --------------------------------------------------------------------

    def _audio_target(self) -> Session | None:
        """The one session that takes live user audio now, if any (the machine's route)."""
        route = audio_route(self.state)
        if route is None:
            return None
        sess = self.sessions.get((self.next if route is Role.NEXT else self.current) or "")
        return sess if sess is not None and sess.live else None

    def _on_mic(self, seq: int, pcm: bytes) -> None:
        if self.muted:
            pcm = bytes(len(pcm))
        self.last_seq = seq
        onset = self.ledger.feed(seq, pcm)
        self.recent_levels.append(self.ledger.last_level_db)
        target = self._audio_target()
        self.buffer.append(seq, pcm, sent=target is not None)
        if target is not None:
            self._send_audio(target, [(seq, pcm)], ack=self.state is State.HANDOFF)
        if onset:
            self._barge_in_for(target)
        if self.state not in (State.HANDOFF, State.RECOVERING):
            self._trim_buffer()

    def _barge_in_for(self, listening: Session | None) -> None:
        """The user started speaking. Audio whose service cannot stop it (the old session no
        longer hears the user; audio that sounds later than its service believes) stops here,
        as soon as a barge-in the service honours; what waited behind it goes too."""
        unaware = self.playback.unaware(self.now, listening.id if listening else None)
        unaware |= {p.session_id for p in self.held}
        if not unaware:
            return
        self.metrics.barge_ins += 1
        self.metrics.audio_interrupted_bytes += sum(len(p.pcm) for p in self.held)
        self.held = []
        self._emit(fx.FlushPlayback())
        for sid in sorted(unaware):
            sess = self.sessions[sid]
            self._keep_what_was_heard(sess)
            if self.s.session_logging.log_barge_in_events:
                self._say(f"[BARGE_IN] the user spoke over {sid}'s answer: stopped here")
            self._add_transcript(
                TranscriptLine(kind="assistant", session_id=sid, text="(interrupted)",
                               interrupted=True)
            )  # fmt: skip
            if sid == self.old:
                self._old_done()

    def _keep_what_was_heard(self, sess: Session) -> None:
        """The user cut ``sess``'s latest answer: the history keeps the part they heard."""
        full = sess.answer_entry.text if sess.answer_entry else " ".join(sess.speculative_texts)
        sess.speculative_texts.clear()
        if not full or sess.answer_cut:
            return
        sess.answer_cut = True
        words = full.split()
        heard = self.playback.heard_seconds(sess.answer_audio or "", self.now)
        total = max(
            sess.answer_audio_bytes / (2 * self.playback.rate), len(words) / WORDS_PER_SECOND
        )
        n = min(len(words), round(len(words) * heard / total)) if total > 0 else len(words)
        said = " ".join(words[:n]) + (" …" if n < len(words) else "")
        if sess.answer_entry is not None:
            sess.answer_entry.text = said
        else:
            sess.answer_entry = self.ledger.assistant_said(sess.id, said.strip())

    def _send_audio(self, sess: Session, frames: list[tuple[int, bytes]], ack: bool) -> None:
        if not frames:
            return
        if sess.first_seq is None:
            sess.first_seq = frames[0][0]
            self.ledger.opened(sess.id, sess.first_seq)
        sess.last_seq = frames[-1][0]
        events = tuple(pr.audio_input(sess.prompt_name, sess.audio_name, pcm) for _, pcm in frames)
        sess.audio_in_bytes += sum(len(p) for _, p in frames)
        self._emit(
            fx.Send(session_id=sess.id, events=events, ack_seq=frames[-1][0] if ack else None)
        )

    def _trim_buffer(self) -> None:
        """Keep only what the current session may still have to replay."""
        cur = self.sessions.get(self.current or "")
        heard_to = cur.last_seq if cur is not None else self.last_seq
        keep = self.ledger.keep_from(self.current, heard_to)
        self.buffer.trim_before(keep)
        self.ledger.prune(keep)

    # ---- session lifecycle -------------------------------------------------------------

    def _open(self, role: Role) -> str:
        sid = f"s{next(self._ids)}"
        prompt = f"prompt-{sid}"
        sess = Session(sid, prompt, f"{prompt}-audio", self.now, role)
        self.sessions[sid] = sess
        self.metrics.sessions_opened += 1
        b = self.s.backend
        opening = [
            pr.session_start(b.max_tokens, b.top_p, b.temperature, b.endpointing_sensitivity),
            pr.prompt_start(prompt, b.voice_id, self.s.audio.output_sample_rate, self.tool_specs),
            *pr.text_block(
                prompt,
                f"{prompt}-system",
                "SYSTEM",
                b.system_prompt,
                self.s.history.max_text_input_bytes,
            ),
        ]
        self._emit(fx.OpenSession(session_id=sid))
        self._emit(fx.Send(session_id=sid, events=tuple(opening), opening=True))
        return sid

    def _close(self, sid: str, failed: bool = False) -> None:
        sess = self.sessions[sid]
        if sess.role in GONE_ROLES:
            return
        if not failed:
            closing: list[dict[str, Any]] = []
            if sess.live:
                closing.append(pr.content_end(sess.prompt_name, sess.audio_name))
            closing += [pr.prompt_end(sess.prompt_name), pr.session_end()]
            self._emit(fx.Send(session_id=sid, events=tuple(closing)))
        sess.role = Role.FAILED if failed else Role.CLOSED
        sess.live = False
        self._emit(fx.CloseSession(session_id=sid))

    def _on_ready(self, sid: str) -> None:
        sess = self.sessions.get(sid)
        if sess is None or sess.role in GONE_ROLES:
            return
        sess.ready = True
        if sid == self.current and not sess.live:
            # The very first session: it takes everything captured so far.
            self._start_audio(sess, self.buffer.since(sess.last_seq + 1))
            self.buffer.mark_sent(0)
        elif sid == self.next:
            self._say(f"[READY] {sid} accepted its opening events")
            self._fire(Trigger.NEXT_READY)

    def _start_audio(self, sess: Session, frames: list[Any], ack: bool = False) -> None:
        self._emit(
            fx.Send(
                session_id=sess.id,
                events=(pr.audio_content_start(sess.prompt_name, sess.audio_name),),
            )
        )
        sess.live = True
        self._send_audio(sess, [(f.seq, f.pcm) for f in frames], ack=False)
        if ack:
            self._emit(fx.Send(session_id=sess.id, events=(), ack_seq=self.last_seq))

    def _on_failed(self, sid: str, why: str, retryable: bool = True) -> None:
        sess = self.sessions.get(sid)
        if sess is None or sess.role in GONE_ROLES:
            return
        self.metrics.failures += 1
        role = sess.role
        self._close(sid, failed=True)
        self._say(f"[FAILURE] {sid} ({role}) failed: {why}")
        if not retryable and role in WORKING_ROLES:
            # Access denied, an unknown model, a bad request: another session would fail
            # the same way, so say why once instead of retrying.
            self._stop(why)
            return
        if sid == self.next:
            self.next = None
            self.attempts += 1
            self._fire(Trigger.NEXT_FAILED)
        elif sid == self.old:
            self._old_done()
        elif sid == self.current:
            if self.state is State.HANDOFF:
                self.failed = sid  # the next session is about to take over anyway
            else:
                self.failed = sid
                self._fire(Trigger.CURRENT_FAILED)

    def _schedule_retry(self) -> None:
        if not self.retries_left:
            self._say(f"[RETRY] giving up after {self.attempts} failed attempts")
            self.retry_at = None
            return
        delay = self.backoff.delay(self.attempts)
        self.retry_at = self.now + delay
        self._say(f"[RETRY] attempt {self.attempts + 1} in {delay:.2f}s")

    # ---- model output ------------------------------------------------------------------

    def _on_output(self, sid: str, raw: Any) -> None:
        sess = self.sessions.get(sid)
        if sess is None or sess.role in GONE_ROLES:
            return
        try:
            out = pr.parse_output(raw) if isinstance(raw, dict) else raw
        except pr.ProtocolError as e:
            self._on_failed(sid, f"malformed event ({e})")
            return
        if out is None:
            return
        if isinstance(out, pr.AudioOutput):
            self.metrics.audio_received_bytes += len(out.pcm)
        if sess.cut and not sess.turn_in_progress:
            return  # an old session's new turn: the next session answers it instead
        match out:
            case pr.ContentStart():
                sess.contents[out.content_id] = out
                self._on_content_start(sess, out)
            case pr.TextOutput():
                self._on_text(sess, out)
            case pr.AudioOutput():
                self._on_audio(sess, out)
            case pr.ContentEnd():
                self._on_content_end(sess, out)
            case pr.ToolUse():
                self._on_tool_use(sess, out)

    def _on_content_start(self, sess: Session, c: pr.ContentStart) -> None:
        if c.role != "ASSISTANT":
            return
        self.calls.answer_began(sess.id)
        if c.type == "TEXT" and c.stage == pr.SPECULATIVE:
            if not sess.turn_in_progress:
                self._answer_started(sess)
            sess.pending_speculative += 1
        elif c.type == "AUDIO":
            if not sess.turn_in_progress:
                self._answer_started(sess)
            sess.audio_open = sess.answer_audio = c.content_id
            if self.s.session_logging.log_audio_events:
                self._say(f"[AUDIO] {sess.id}: assistant audio {c.content_id} started")
            if sess.id == self.current and self.state is State.MONITORING:
                self._say(
                    f"[AUDIO_START] assistant audio started on {sess.id}: buffering user audio"
                )
                self._fire(Trigger.ASSISTANT_AUDIO_STARTED)

    def _answer_started(self, sess: Session) -> None:
        history_turn = sess.history_answers_due > 0
        if history_turn:
            sess.history_answers_due -= 1
        sess.answer_audio, sess.answer_audio_bytes, sess.answer_entry = None, 0, None
        sess.answer_cut = False
        self.ledger.answer_began(sess.id, sess.last_seq, evidence=not history_turn)

    def _on_text(self, sess: Session, t: pr.TextOutput) -> None:
        content = sess.contents.get(t.content_id)
        stage = content.stage if content else None
        if t.interrupted:
            self._on_interrupted(sess)
            return
        if t.role == "USER":
            self.ledger.user_said(sess.id, t.text, sess.last_seq)
            self._add_transcript(TranscriptLine(kind="user", session_id=sess.id, text=t.text))
        elif t.role == "ASSISTANT":
            final = stage != pr.SPECULATIVE
            self._add_transcript(
                TranscriptLine(kind="assistant", session_id=sess.id, text=t.text, final=final)
            )
            if final:
                sess.speculative_texts.clear()
                if not sess.answer_cut:  # else the user cut it: what they heard stays
                    sess.answer_entry = self.ledger.assistant_said(sess.id, t.text)
            else:
                sess.speculative_texts.append(t.text)

    def _on_interrupted(self, sess: Session) -> None:
        self.metrics.barge_ins += 1
        # What the user heard of the answer they cut short is part of the conversation:
        # without it a new session would see the question unanswered and answer it again.
        self._keep_what_was_heard(sess)
        if self.s.session_logging.log_barge_in_events:
            self._say(f"[BARGE_IN] {sess.id}: the user interrupted the assistant")
        self._add_transcript(
            TranscriptLine(
                kind="assistant", session_id=sess.id, text="(interrupted)", interrupted=True
            )
        )
        dropped = [p for p in self.held if p.session_id == sess.id]
        self.metrics.audio_interrupted_bytes += sum(len(p.pcm) for p in dropped)
        self.held = [p for p in self.held if p.session_id != sess.id]
        self._emit(fx.FlushPlayback())
        sess.pending_speculative = 0
        self._turn_done(sess)

    def _on_audio(self, sess: Session, a: pr.AudioOutput) -> None:
        sess.audio_out_bytes += len(a.pcm)
        if a.content_id == sess.answer_audio:
            sess.answer_audio_bytes += len(a.pcm)
        self.playback.arrived(sess.id, len(a.pcm), self.now)
        first = a.content_id == sess.answer_audio and sess.answer_audio_bytes == len(a.pcm)
        if first and self.ledger.open is not None and not self.muted:
            # The answer would start while the user is speaking: it would talk over them.
            # Their speech cuts it, as a barge-in would; its service answers them next.
            sess.unheard = a.content_id
            self._keep_what_was_heard(sess)
            if self.s.session_logging.log_barge_in_events:
                self._say(f"[BARGE_IN] {sess.id} began an answer over the user: not played")
        if a.content_id == sess.unheard:
            self.metrics.audio_interrupted_bytes += len(a.pcm)
            return
        play = fx.Play(session_id=sess.id, content_id=a.content_id, pcm=a.pcm)
        if self.old is not None and sess.id != self.old:
            self.held.append(play)  # the old session's answer plays to its end first
        else:
            self._emit(play)

    def _on_content_end(self, sess: Session, c: pr.ContentEnd) -> None:
        start = sess.contents.pop(c.content_id, None)
        if start is None or start.role != "ASSISTANT":
            return
        if start.type == "AUDIO" and sess.audio_open == c.content_id:
            sess.audio_open = None
            if self.s.session_logging.log_audio_events:
                self._say(
                    f"[AUDIO] {sess.id}: assistant audio {c.content_id} ended ({c.stop_reason}), "
                    f"{sess.audio_out_bytes} bytes from this session so far"
                )
        elif start.type == "TEXT" and start.stage == pr.FINAL and sess.pending_speculative:
            sess.pending_speculative -= 1
        if c.stop_reason == "INTERRUPTED":
            sess.pending_speculative = 0
        if not sess.turn_in_progress:
            self._turn_done(sess)

    def _turn_done(self, sess: Session) -> None:
        self.ledger.answer_ended(sess.id)
        if sess.audio_open is not None or sess.pending_speculative:
            return
        if sess.id == self.old:
            self._old_done()
        elif sess.id == self.current and self.state is State.BUFFERING:
            self._fire(Trigger.TURN_ENDED)

    def _old_done(self) -> None:
        """The old session finished its answer (or there is none): close it, and let the
        new session's held audio play."""
        old, self.old = self.old, None
        if old is not None and self.sessions[old].role is Role.CLOSING:
            self._close(old)
        for play in self.held:
            self._emit(play)
        self.held = []
        if self.state is State.PROMOTED:
            self._fire(Trigger.OLD_SESSION_DONE)

    # ---- tools (the bookkeeping and its rule: sonic_fsm.core.toolcalls) ----------------------

    def _tool_gone(self, sid: str) -> bool:
        """The session can no longer answer a tool result: closed, failed or handed over."""
        sess = self.sessions.get(sid)
        return sess is None or sess.cut or sess.role not in WORKING_ROLES

    def _on_tool_use(self, sess: Session, use: pr.ToolUse) -> None:
        what, call = self.calls.ask(
            sess.id,
            use.tool_use_id,
            use.tool_name,
            use.content,
            self.now,
            self._tool_gone,
            lambda sid: self.sessions[sid].role is Role.FAILED,
        )
        if what == tc.DUPLICATE:
            self._say(f"[TOOL] {sess.id}: {use.tool_name} {use.tool_use_id} asked again: ignored")
            return
        assert call is not None
        line = TranscriptLine(
            kind="tool", session_id=sess.id, text=use.tool_name, ref=use.tool_use_id
        )
        self._add_transcript(line)
        if what == tc.RUN:
            self._say(f"[TOOL] {sess.id}: running {use.tool_name} {use.tool_use_id} {use.content}")
            self._emit(
                fx.RunTool(
                    session_id=sess.id,
                    tool_use_id=use.tool_use_id,
                    tool_name=use.tool_name,
                    content=use.content,
                )
            )
            return
        assert call.root is not None
        self._say(
            f"[TOOL] {sess.id}: {use.tool_name} is the call {call.root.session_id} left behind: "
            + ("its result is sent" if what == tc.SEND else "waiting for its result")
        )
        if what == tc.SEND:
            self._send_tool_result(call)

    def _on_tool_finished(self, e: ev.ToolFinished) -> None:
        run = self.calls.calls.get((e.session_id, e.tool_use_id))
        took = self.now - run.asked_at if run is not None else 0.0
        if e.error is not None:
            self._say(f"[TOOL] {e.tool_name} {e.tool_use_id} failed after {took:.2f}s: {e.error}")
        else:
            self._say(f"[TOOL] {e.tool_name} {e.tool_use_id} answered in {took:.2f}s")
        for i, line in enumerate(self.transcript):
            if line.kind == "tool" and line.ref == e.tool_use_id:
                self.transcript[i] = dataclasses.replace(
                    line, seconds=took, failed=e.error is not None
                )
        sent = self.calls.finish(
            e.session_id, e.tool_use_id, e.result, e.error, self.now, self._tool_gone
        )
        for call in sent:
            self._send_tool_result(call)
        if not sent:
            self._say(f"[TOOL] {e.tool_use_id}: its session was handed over; result kept")

    def _send_tool_result(self, call: tc.Call) -> None:
        sess = self.sessions[call.session_id]
        name = f"{sess.prompt_name}-tool-{next(self._tool_results)}"
        events = pr.tool_result_block(sess.prompt_name, name, call.tool_use_id, call.run.result)
        self._emit(fx.Send(session_id=sess.id, events=tuple(events)))

    # ---- timers ------------------------------------------------------------------------

    def _hard_deadline(self, sess: Session) -> float:
        deadline = sess.opened_at + self.s.hard_deadline_seconds
        if sess.expires_at is not None:
            deadline = min(deadline, sess.expires_at - self.s.hard_deadline_margin_seconds)
        return deadline

    def _check_timers(self) -> None:
        """Fire what is due; a move may make another deadline due at once (e.g. back in
        NORMAL with a session already past its threshold), so look again after one."""
        for _ in range(len(State)):
            before = self.state
            self._check_timers_once()
            if self.state is before:
                return

    def _deadline(self, what: Timer) -> float | None:
        """When the timer ``what`` is due, or None when it is not armed: the one place each
        deadline is written."""
        st = self.state
        cur = self.sessions.get(self.current or "")
        at_risk = cur is not None and cur.ready and st in BEFORE_HANDOFF
        nxt = self.sessions.get(self.next or "")
        match what:
            case Timer.THRESHOLD if at_risk and st is State.NORMAL:
                assert cur is not None
                return cur.opened_at + self.s.transition_threshold_seconds
            case Timer.HARD_DEADLINE if at_risk and not self.forced:
                assert cur is not None
                return self._hard_deadline(cur)
            case Timer.AUDIO_START if st is State.MONITORING and self.monitoring_since is not None:
                return self.monitoring_since + self.s.audio_start_timeout_seconds
            case Timer.NEXT_READY if nxt is not None and not nxt.ready:
                return nxt.opened_at + self.s.next_session_ready_timeout_seconds
            case Timer.RETRY:
                return self.retry_at
            case Timer.OLD_SESSION if st is State.PROMOTED and self.promoted_at is not None:
                return self.promoted_at + OLD_SESSION_GRACE_SECONDS
        return None

    def _check_timers_once(self) -> None:
        """Handle each due timer in turn; each is looked at again after the one before it
        moved the machine."""
        for what in Timer:
            when = self._deadline(what)
            if when is not None and self.now >= when:
                self._on_timer(what)

    def _on_timer(self, what: Timer) -> None:
        cur = self.sessions.get(self.current or "")
        age = self.now - cur.opened_at if cur is not None else 0.0
        match what:
            case Timer.THRESHOLD:
                if self.s.session_logging.log_transitions:
                    self._say(
                        f"[THRESHOLD] {self.current} is {age:.1f}s old: "
                        "waiting for the assistant to speak"
                    )
                self._fire(Trigger.THRESHOLD_REACHED)
            case Timer.HARD_DEADLINE:
                self._say(f"[DEADLINE] {self.current} is {age:.1f}s old: hand-off forced")
                self.forced = True
                self._fire(Trigger.DEADLINE_REACHED)
            case Timer.AUDIO_START:
                self._say("[AUDIO_START] no assistant audio in time: hand-off forced")
                self.forced = True
                self._fire(Trigger.AUDIO_START_TIMED_OUT)
            case Timer.NEXT_READY:
                self._on_failed(self.next or "", "not ready in time")
            case Timer.RETRY:
                self.retry_at = None
                if self.next is None and self.state in (State.BUFFERING, State.RECOVERING):
                    self.next = self._open(Role.NEXT)
            case Timer.OLD_SESSION:
                self._say("[PROMOTION] old session did not finish in time: closing it")
                self._old_done()

    # ---- state callbacks (run by the machine) ------------------------------------------

    def on_enter_MONITORING(self, e: EventData) -> None:
        self.monitoring_since = self.now

    def open_next(self, e: EventData) -> None:
        """Into BUFFERING from NORMAL or MONITORING: the next session opens."""
        if self.next is None:
            self.next = self._open(Role.NEXT)
            self._say(f"[BUFFERING] opening {self.next} in the background")

    def resume_current(self, e: EventData) -> None:
        """The next session failed during the hand-off: the current one takes audio again."""
        cur = self.sessions[self.current or ""]
        cur.cut = False
        if cur.live:
            missed = self.buffer.since(cur.last_seq + 1)
            self._send_audio(cur, [(f.seq, f.pcm) for f in missed], ack=False)

    def hand_over(self, e: EventData) -> None:
        """Into HANDOFF from BUFFERING: the current session hands over."""
        self._begin_handoff(recovering=False)

    def recover(self, e: EventData) -> None:
        """Into HANDOFF from RECOVERING: the replacement takes over from the failed session."""
        self._begin_handoff(recovering=True)

    def _begin_handoff(self, recovering: bool) -> None:
        self.handoff_kind = "recovery" if recovering else "handoff"
        self.handoff_started = self.now
        nxt = self.sessions[self.next or ""]
        old = None if recovering else self.sessions.get(self.current or "")
        src = self.sessions.get((self.failed if recovering else self.current) or "")
        replay_from = self.ledger.replay_from(
            src.id if src else None, src.last_seq if src else self.last_seq, finished=recovering
        )
        frames = self.buffer.since(replay_from)
        first_kept = frames[0].seq if frames else self.last_seq + 1
        messages = self._history_for(first_kept, old)
        blocks: list[dict[str, Any]] = []
        for i, m in enumerate(messages):
            blocks += pr.text_block(
                nxt.prompt_name,
                f"{nxt.prompt_name}-history-{i}",
                m.role,
                m.text,
                self.s.history.max_text_input_bytes,
            )
        nxt.history_bytes = hist.size(messages)
        if self.s.session_logging.log_audio_events:
            self._say(f"[AUDIO] replaying frames {first_kept}..{self.last_seq} to {nxt.id}")
        nxt.history_answers_due = 1 if messages and messages[-1].role == hist.USER else 0
        self.metrics.history_bytes_sent.append(nxt.history_bytes)
        if blocks:
            self._emit(fx.Send(session_id=nxt.id, events=tuple(blocks)))
        if old is not None:
            old.cut = True
        self.drain_seq = self.last_seq
        self._start_audio(nxt, frames, ack=True)
        self.buffer.mark_sent(first_kept)
        if self.s.session_logging.log_transitions:
            self._say(
                f"[HANDOFF] {nxt.id} gets {len(messages)} history messages "
                f"({nxt.history_bytes} bytes) and {len(frames)} buffered frames"
            )

    def _history_for(self, first_kept: int, old: Session | None) -> list[hist.Message]:
        """History for the next session: the conversation without the USER turns whose audio
        is replayed from ``first_kept`` (the replay makes the model answer them); an earlier
        one left unanswered stays last, to be answered."""
        messages = self.ledger.history(first_kept)
        if old is not None and old.turn_in_progress and old.speculative_texts:
            # The answer being given now: the next session must know it was given.
            messages.append(hist.Message(hist.ASSISTANT, " ".join(old.speculative_texts)))
        h = self.s.history
        return hist.for_new_session(messages, h.max_messages, h.max_total_bytes)

    def on_enter_PROMOTED(self, e: EventData) -> None:
        old_id, new_id = self.current, self.next
        self.current, self.next = new_id, None
        self.sessions[new_id or ""].role = Role.CURRENT
        took = (self.now - (self.handoff_started or self.now)) * 1000
        if self.handoff_kind == "handoff":
            self.metrics.handoffs += 1
        else:
            self.metrics.recoveries += 1
        self.metrics.handoff_ms.append(took)
        self.promoted_at = self.now
        self._add_transcript(
            TranscriptLine(
                kind="handoff", session_id=new_id or "", text=f"{old_id or self.failed} -> {new_id}"
            )
        )
        if self.s.session_logging.log_transitions:
            self._say(f"[PROMOTION] {new_id} is current ({self.handoff_kind} took {took:.0f} ms)")
        old = self.sessions.get(old_id or "")
        if self.handoff_kind == "handoff" and old is not None and old.role is Role.CURRENT:
            old.role = Role.CLOSING
            self.old = old.id
            if not old.turn_in_progress:
                self._old_done()
        else:
            self.old = None
            self._old_done()

    def on_enter_NORMAL(self, e: EventData) -> None:
        self.forced = False
        self.attempts = 0
        self.retry_at = None
        self.monitoring_since = None
        self.failed = None
        self.promoted_at = None
        self._trim_buffer()

    def on_enter_RECOVERING(self, e: EventData) -> None:
        self.current = None
        self.attempts = 0
        self._say(f"[RECOVERY] replacing {self.failed}")
        if self.next is not None:
            if self.sessions[self.next].ready:
                self._fire(Trigger.NEXT_READY)
        else:
            self.next = self._open(Role.NEXT)

    def on_enter_STOPPED(self, e: EventData) -> None:
        for sid, sess in self.sessions.items():
            if sess.role in OPEN_ROLES:
                self._close(sid)
        reason = self.stop_reason or "retries exhausted"
        self._say(f"[STOPPED] {reason}")
        self._emit(fx.Stopped(reason=reason))

    # ---- machine plumbing --------------------------------------------------------------

    def trigger(self, name: str) -> bool:
        """Bound by the machine (``model_override``): runs the trigger ``name``."""
        raise NotImplementedError

    def _allowed(self, trigger: Trigger) -> bool:
        """The table has ``trigger`` for the current state. An unknown trigger raises."""
        return Trigger(trigger) in self.machine.get_triggers(self.state)

    def _fire(self, trigger: Trigger) -> None:
        """Fire ``trigger`` if the table has it for the current state (queued when inside a
        callback): an event the state does not care about is not a transition. A name that
        is no trigger at all raises (ValueError); ``ignore_invalid_triggers=False`` holds for
        the rest."""
        if self._allowed(trigger):
            self.trigger(trigger.value)

    def schedule_retry(self, e: EventData) -> None:
        """After a failed next session: open another after a backoff, while retries last."""
        self._schedule_retry()

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
            self._say(f"[TRANSITION] {source} -> {dest} ({e.event.name})")
        ids = tuple(i for i in (self.current, self.next, self.old, self.failed) if i)
        self._emit(fx.Transitioned(trigger=e.event.name, source=source, dest=dest, sessions=ids))

    def _on_exception(self, e: EventData) -> None:
        raise e.error  # type: ignore[misc]

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._fire(Trigger.STOP)

    def end(self, reason: str, now: float) -> list[fx.Effect]:
        """End the conversation: close every session properly."""
        self._advance(now)
        if self.state is not State.STOPPED:
            self._stop(reason)
        return self._take()

    # ---- bookkeeping -------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        self.now = max(self.now, now)

    def _emit(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.Play):
            self.metrics.audio_played_bytes += len(effect.pcm)
            self.playback.play(effect.session_id, effect.content_id, len(effect.pcm), self.now)
        elif isinstance(effect, fx.FlushPlayback):
            self.playback.flush(self.now)
        self._fx.append(effect)

    def _take(self) -> list[fx.Effect]:
        out, self._fx = self._fx, []
        return out

    def _say(self, line: str) -> None:
        stamped = f"{self.now - self.started_at:9.3f} {line}"
        self.log.append(stamped)
        if len(self.log) > LOG_LIMIT:
            del self.log[: len(self.log) - LOG_LIMIT]
        self._emit(fx.Log(line=stamped))

    def _add_transcript(self, line: TranscriptLine) -> None:
        if line.kind == "assistant" and line.final and self.transcript:
            # FINAL text replaces the SPECULATIVE text it confirms.
            for i in range(len(self.transcript) - 1, -1, -1):
                old = self.transcript[i]
                if (
                    old.session_id == line.session_id
                    and old.kind == "assistant"
                    and not old.final
                    and old.text == line.text
                ):
                    self.transcript[i] = line
                    return
        self.transcript.append(line)
        if len(self.transcript) > TRANSCRIPT_LIMIT:
            del self.transcript[: len(self.transcript) - TRANSCRIPT_LIMIT]

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

    def productive_pct(self) -> float:
        total = self.now - self.started_at
        if total <= 0:
            return 100.0
        t = dict(self.metrics.time_in_state)
        t[self.state.value] = t.get(self.state.value, 0.0) + (self.now - self.state_since)
        unproductive = t.get("HANDOFF", 0.0) + t.get("RECOVERING", 0.0)
        return 100.0 * (1 - unproductive / total)

    def snapshot(self) -> Snapshot:
        cur = self.sessions.get(self.current or "")
        age = self.now - cur.opened_at if cur else 0.0
        views = tuple(
            SessionView(
                session_id=s.id,
                role=s.role.value,
                age_seconds=self.now - s.opened_at,
                ready=s.ready,
                audio_in_bytes=s.audio_in_bytes,
                audio_out_bytes=s.audio_out_bytes,
            )
            for s in self.sessions.values()
            if s.role in OPEN_ROLES or self.now - s.opened_at < 5
        )
        ms = self.metrics.handoff_ms
        return Snapshot(
            now=self.now - self.started_at,
            state=self.state.value,
            last_transition=self.last_transition,
            session_age_seconds=age,
            threshold_seconds=self.s.transition_threshold_seconds,
            hard_deadline_seconds=self.s.hard_deadline_seconds,
            limit_seconds=self.s.session_limit_seconds,
            buffer_bytes=self.buffer.bytes,
            buffer_cap_bytes=self.buffer.cap_bytes,
            sessions=views,
            transcript=tuple(self.transcript[-100:]),
            log=tuple(self.log[-100:]),
            metrics={
                "handoffs": float(self.metrics.handoffs),
                "recoveries": float(self.metrics.recoveries),
                "productive_pct": self.productive_pct(),
                "last_handoff_ms": ms[-1] if ms else 0.0,
                "peak_buffer_bytes": float(self.buffer.peak_bytes),
                "frames_lost": float(self.buffer.lost_frames),
            },
            muted=self.muted,
            mic_level_db=max(self.recent_levels, default=-96.0),
            transitions=tuple(self.recent_transitions),
            tools=tuple(
                ToolView(
                    name=c.name,
                    session_id=c.session_id,
                    seconds=self.now - c.asked_at,
                    phase=phase,
                )
                for c, phase in self.calls.pending(self._tool_gone)
            ),
            handoff_waits_for_tool=self.state is State.BUFFERING
            and self.has_ready_next
            and not self.has_no_outstanding_tool,
        )

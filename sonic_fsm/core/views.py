"""What the engine shows: the snapshot the dashboard, the page and the API read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sonic_fsm.core import effects as fx
from sonic_fsm.core import metrics as mx
from sonic_fsm.core import sessions
from sonic_fsm.core.machine import OPEN_ROLES, State
from sonic_fsm.core.snapshot import SessionView, Snapshot, ToolView, TranscriptLine

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine

TRANSCRIPT_LIMIT = 400


def snapshot(eng: Engine) -> Snapshot:
    """What the engine shows now: state, sessions, transcript, log, figures, tools."""
    cur = eng.sessions.get(eng.current or "")
    age = eng.now - cur.opened_at if cur else 0.0
    views = tuple(
        SessionView(
            session_id=s.id,
            role=s.role.value,
            age_seconds=eng.now - s.opened_at,
            ready=s.ready,
            audio_in_bytes=s.audio_in_bytes,
            audio_out_bytes=s.audio_out_bytes,
        )
        for s in eng.sessions.values()
        if s.role in OPEN_ROLES or eng.now - s.opened_at < sessions.SHOWN_SECONDS
    )
    return Snapshot(
        now=eng.now - eng.started_at,
        state=eng.state.value,
        last_transition=eng.last_transition,
        session_age_seconds=age,
        threshold_seconds=eng.s.transition_threshold_seconds,
        hard_deadline_seconds=eng.s.hard_deadline_seconds,
        limit_seconds=eng.s.session_limit_seconds,
        buffer_bytes=eng.buffer.bytes,
        buffer_cap_bytes=eng.buffer.cap_bytes,
        sessions=views,
        transcript=tuple(eng.transcript[-100:]),
        log=tuple(eng.log[-100:]),
        metrics=mx.live(eng),
        muted=eng.muted,
        mic_level_db=max(eng.recent_levels, default=-96.0),
        transitions=tuple(eng.recent_transitions),
        tools=tuple(
            ToolView(
                name=c.name,
                session_id=c.session_id,
                seconds=eng.now - c.asked_at,
                phase=phase,
            )
            for c, phase in eng.calls.pending(eng.tool_gone)
        ),
        handoff_waits_for_tool=eng.state is State.BUFFERING
        and eng.has_ready_next
        and not eng.has_no_outstanding_tool,
    )


def add_transcript(eng: Engine, line: TranscriptLine) -> None:
    """A line of the transcript; a FINAL assistant text replaces the SPECULATIVE it confirms."""
    if line.kind == "assistant" and line.final and eng.transcript:
        # FINAL text replaces the SPECULATIVE text it confirms.
        for i in range(len(eng.transcript) - 1, -1, -1):
            old = eng.transcript[i]
            if (
                old.session_id == line.session_id
                and old.kind == "assistant"
                and not old.final
                and old.text == line.text
            ):
                eng.transcript[i] = line
                eng.emit(fx.Said(line=line))
                return
    eng.transcript.append(line)
    eng.emit(fx.Said(line=line))
    if len(eng.transcript) > TRANSCRIPT_LIMIT:
        del eng.transcript[: len(eng.transcript) - TRANSCRIPT_LIMIT]


@dataclass(frozen=True, kw_only=True)
class Switch:
    """Where the switch of sessions stands: what a front end reports of a hand-off."""

    kind: str  # "handoff" or "recovery": the switch under way, or the last one
    current: str | None
    failed: str | None  # the session a recovery replaces
    buffer_bytes: int  # user audio buffered for the next session
    history_sends: int  # histories sent so far (one per new session)
    history_bytes: int  # their bytes, in all
    last_handoff_ms: float  # HANDOFF entered until the new session took live audio
    handoffs: int
    recoveries: int


def switch(eng: Engine) -> Switch:
    m = eng.metrics
    return Switch(
        kind=eng.switch.kind,
        current=eng.current,
        failed=eng.switch.failed,
        buffer_bytes=eng.buffer.bytes,
        history_sends=len(m.history_bytes_sent),
        history_bytes=sum(m.history_bytes_sent),
        last_handoff_ms=m.handoff_ms[-1] if m.handoff_ms else 0.0,
        handoffs=m.handoffs,
        recoveries=m.recoveries,
    )


def session_summary(eng: Engine, session_id: str, now: float) -> dict[str, Any]:
    """One session's figures at ``now``, for a recording when it closes (empty: unknown)."""
    sess = eng.sessions.get(session_id)
    if sess is None:
        return {}
    return {
        "role": sess.role,
        "age_seconds": round(now - sess.opened_at, 3),
        "audio_in_bytes": sess.audio_in_bytes,
        "audio_out_bytes": sess.audio_out_bytes,
        "history_bytes": sess.history_bytes,
    }

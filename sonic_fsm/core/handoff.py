"""The hand-off: the next session opens, gets the history and the unanswered audio,
takes over; the old one finishes its answer and closes. A recovery is the same for a session
that failed. The machine's callbacks for these moves land here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sonic_fsm.core import effects as fx
from sonic_fsm.core import history as hist
from sonic_fsm.core import protocol as pr
from sonic_fsm.core import sessions, useraudio, views
from sonic_fsm.core.machine import Role, State, Trigger
from sonic_fsm.core.snapshot import TranscriptLine

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.sessions import Session


@dataclass
class Switch:
    """How far the switch between sessions has come (a hand-off, or a recovery)."""

    forced: bool = False  # it no longer waits for a turn boundary (timeout, deadline, operator)
    monitoring_since: float | None = None  # the threshold passed: waiting for assistant audio
    kind: str = "handoff"  # or "recovery": the current session failed
    started: float | None = None  # HANDOFF entered
    drain_seq: int = -1  # the last buffered frame the next session must have been sent
    promoted_at: float | None = None  # the next session became current
    old: str | None = None  # the session handing over, until it is done
    failed: str | None = None  # the session a recovery replaces
    held: list[fx.Play] = field(default_factory=list)  # new audio waiting for the old answer


def old_done(eng: Engine) -> None:
    """The old session finished its answer (or there is none): close it, and let the
    new session's held audio play."""
    old, eng.switch.old = eng.switch.old, None
    if old is not None and eng.sessions[old].role is Role.CLOSING:
        sessions.close_session(eng, old)
    for play in eng.switch.held:
        eng.emit(play)
    eng.switch.held = []
    if eng.state is State.PROMOTED:
        eng.fire(Trigger.OLD_SESSION_DONE)


def open_next(eng: Engine) -> None:
    """Into BUFFERING from NORMAL or MONITORING: the next session opens."""
    if eng.next is None:
        eng.next = sessions.open_session(eng, Role.NEXT)
        eng.say(f"[BUFFERING] opening {eng.next} in the background")


def resume_current(eng: Engine) -> None:
    """The next session failed during the hand-off: the current one takes audio again."""
    cur = eng.sessions[eng.current or ""]
    cur.cut = False
    if cur.live:
        missed = eng.buffer.since(cur.last_seq + 1)
        useraudio.send_audio(eng, cur, [(f.seq, f.pcm) for f in missed], ack=False)


def begin(eng: Engine, recovering: bool) -> None:
    eng.switch.kind = "recovery" if recovering else "handoff"
    eng.switch.started = eng.now
    nxt = eng.sessions[eng.next or ""]
    old = None if recovering else eng.sessions.get(eng.current or "")
    src = eng.sessions.get((eng.switch.failed if recovering else eng.current) or "")
    replay_from = eng.ledger.replay_from(
        src.id if src else None, src.last_seq if src else eng.last_seq, finished=recovering
    )
    frames = eng.buffer.since(replay_from)
    first_kept = frames[0].seq if frames else eng.last_seq + 1
    messages = _history_for(eng, first_kept, old)
    blocks: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        blocks += pr.text_block(
            nxt.prompt_name,
            f"{nxt.prompt_name}-history-{i}",
            m.role,
            m.text,
            eng.s.history.max_text_input_bytes,
        )
    nxt.history_bytes = hist.size(messages)
    if eng.s.session_logging.log_audio_events:
        eng.say(f"[AUDIO] replaying frames {first_kept}..{eng.last_seq} to {nxt.id}")
    nxt.history_answers_due = 1 if messages and messages[-1].role == hist.USER else 0
    eng.metrics.history_bytes_sent.append(nxt.history_bytes)
    if blocks:
        eng.emit(fx.Send(session_id=nxt.id, events=tuple(blocks)))
    if old is not None:
        old.cut = True
    eng.switch.drain_seq = eng.last_seq
    sessions.start_audio(eng, nxt, frames, ack=True)
    eng.buffer.mark_sent(first_kept)
    if eng.s.session_logging.log_transitions:
        eng.say(
            f"[HANDOFF] {nxt.id} gets {len(messages)} history messages "
            f"({nxt.history_bytes} bytes) and {len(frames)} buffered frames"
        )


def _history_for(eng: Engine, first_kept: int, old: Session | None) -> list[hist.Message]:
    """History for the next session: the conversation without the USER turns whose audio
    is replayed from ``first_kept`` (the replay makes the model answer them); an earlier
    one left unanswered stays last, to be answered."""
    messages = eng.ledger.history(first_kept)
    if old is not None and old.turn_in_progress and old.speculative_texts:
        # The answer being given now: the next session must know it was given.
        messages.append(hist.Message(hist.ASSISTANT, " ".join(old.speculative_texts)))
    h = eng.s.history
    return hist.for_new_session(messages, h.max_messages, h.max_total_bytes)


def promote(eng: Engine) -> None:
    old_id, new_id = eng.current, eng.next
    eng.current, eng.next = new_id, None
    eng.sessions[new_id or ""].role = Role.CURRENT
    took = (eng.now - (eng.switch.started or eng.now)) * 1000
    if eng.switch.kind == "handoff":
        eng.metrics.handoffs += 1
    else:
        eng.metrics.recoveries += 1
    eng.metrics.handoff_ms.append(took)
    eng.switch.promoted_at = eng.now
    views.add_transcript(
        eng,
        TranscriptLine(
            kind="handoff",
            session_id=new_id or "",
            text=f"{old_id or eng.switch.failed} -> {new_id}",
        ),
    )
    if eng.s.session_logging.log_transitions:
        eng.say(f"[PROMOTION] {new_id} is current ({eng.switch.kind} took {took:.0f} ms)")
    old = eng.sessions.get(old_id or "")
    if eng.switch.kind == "handoff" and old is not None and old.role is Role.CURRENT:
        old.role = Role.CLOSING
        eng.switch.old = old.id
        if not old.turn_in_progress:
            old_done(eng)
    else:
        eng.switch.old = None
        old_done(eng)


def settle(eng: Engine) -> None:
    eng.switch.forced = False
    eng.retries.retry_at = None
    eng.switch.monitoring_since = None
    eng.switch.failed = None
    eng.switch.promoted_at = None
    useraudio.trim_buffer(eng)


def start_recovery(eng: Engine) -> None:
    """Into RECOVERING (after a failure that counts): the user's audio waits in the buffer
    for a next session already opening, else for a replacement opened after a backoff."""
    eng.current = None
    eng.say(f"[RECOVERY] replacing {eng.switch.failed}")
    if eng.next is None:
        sessions.schedule_retry(eng)
    elif eng.sessions[eng.next].ready:
        eng.fire(Trigger.NEXT_READY)

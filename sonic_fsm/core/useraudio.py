"""User audio: where each microphone frame goes (the machine's route per state), what is
kept to replay, and the user starting to speak over an answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonic_fsm.core import answers, handoff, views
from sonic_fsm.core import effects as fx
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.machine import Role, State, audio_route
from sonic_fsm.core.snapshot import TranscriptLine

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.sessions import Session


def receiver(eng: Engine) -> Session | None:
    """The one session that takes live user audio now, if any (the machine's route)."""
    route = audio_route(eng.state)
    if route is None:
        return None
    sess = eng.sessions.get((eng.next if route is Role.NEXT else eng.current) or "")
    return sess if sess is not None and sess.live else None


def on_mic(eng: Engine, seq: int, pcm: bytes) -> None:
    if eng.muted:
        pcm = bytes(len(pcm))
    eng.last_seq = seq
    onset = eng.ledger.feed(seq, pcm)
    eng.recent_levels.append(eng.ledger.last_level_db)
    target = receiver(eng)
    eng.buffer.append(seq, pcm, sent=target is not None)
    if target is not None:
        send_audio(eng, target, [(seq, pcm)], ack=eng.state is State.HANDOFF)
    if onset:
        _barge_in_for(eng, target)
    answers.play_waiting(eng)
    if eng.state not in (State.HANDOFF, State.RECOVERING):
        trim_buffer(eng)
    if lost := eng.buffer.take_losses():
        eng.say(f"[LOST] {len(lost)} user frames ({lost[0]}..{lost[-1]}) could not be kept")


def after_end(eng: Engine, seq: int, pcm: bytes) -> None:
    """The conversation ended, but its last answer may still sound: the user speaking
    stops it."""
    if not eng.muted and eng.ledger.feed(seq, pcm):
        _barge_in_for(eng, None)
    answers.play_waiting(eng)


def _barge_in_for(eng: Engine, listening: Session | None) -> None:
    """The user started speaking. Audio whose service cannot stop it (the old session no
    longer hears the user; audio that sounds later than its service believes) stops here,
    as soon as a barge-in the service honours; what waited behind it goes too."""
    unaware = eng.playback.unaware(eng.now, listening.id if listening else None)
    unaware |= {p.session_id for p in eng.switch.held}
    if not unaware:
        return
    eng.metrics.barge_ins += 1
    eng.metrics.audio_interrupted_bytes += sum(len(p.pcm) for p in eng.switch.held)
    eng.switch.held = []
    eng.emit(fx.FlushPlayback())
    for sid in sorted(unaware):
        sess = eng.sessions[sid]
        answers.keep_what_was_heard(eng, sess)
        eng.ledger.answer_ended(sid)  # cut by the user: given all the same
        if eng.s.session_logging.log_barge_in_events:
            eng.say(f"[BARGE_IN] the user spoke over {sid}'s answer: stopped here")
        views.add_transcript(
            eng,
            TranscriptLine(
                kind="assistant", session_id=sid, text="(interrupted)", interrupted=True
            ),
        )
        if sid == eng.switch.old:
            handoff.old_done(eng)


def send_audio(eng: Engine, sess: Session, frames: list[tuple[int, bytes]], ack: bool) -> None:
    if not frames:
        return
    if sess.first_seq is None:
        sess.first_seq = frames[0][0]
        eng.ledger.opened(sess.id, sess.first_seq)
    sess.last_seq = frames[-1][0]
    events = tuple(pr.audio_input(sess.prompt_name, sess.audio_name, pcm) for _, pcm in frames)
    sess.audio_in_bytes += sum(len(p) for _, p in frames)
    eng.emit(fx.Send(session_id=sess.id, events=events, ack_seq=frames[-1][0] if ack else None))


def trim_buffer(eng: Engine) -> None:
    """Keep only what the current session may still have to replay."""
    cur = eng.sessions.get(eng.current or "")
    heard_to = cur.last_seq if cur is not None else eng.last_seq
    keep = eng.ledger.keep_from(eng.current, heard_to)
    eng.buffer.trim_before(keep)
    eng.ledger.prune(keep)

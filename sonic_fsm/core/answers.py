"""What the model says: assistant text and audio, the end of a turn, interruptions.

Where an answer starts and ends, what of it goes in the history (what the user heard of an
answer they cut), and when its audio plays (an answer begun while the user speaks waits
until they stop)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sonic_fsm.core import effects as fx
from sonic_fsm.core import handoff, sessions, tooluse, views
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.machine import GONE_ROLES, State, Trigger
from sonic_fsm.core.snapshot import TranscriptLine

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.sessions import Session

WORDS_PER_SECOND = 2.5  # to tell how much of an answer's text its heard audio carried
WAIT_LIMIT_SECONDS = 4.0  # an answer begun while the user speaks waits at most this long
UNHEARD_SECONDS = 0.1  # an answer cut before this much of it sounded said nothing


def keep_what_was_heard(eng: Engine, sess: Session) -> None:
    """The user cut ``sess``'s latest answer: the history keeps the part they heard."""
    full = sess.answer_entry.text if sess.answer_entry else " ".join(sess.speculative_texts)
    sess.speculative_texts.clear()
    if sess.answer_cut:
        return
    sess.answer_cut = True
    if not full:
        return
    words = full.split()
    heard = eng.playback.heard_seconds(sess.answer_audio or "", eng.now)
    total = max(sess.answer_audio_bytes / (2 * eng.playback.rate), len(words) / WORDS_PER_SECOND)
    n = min(len(words), round(len(words) * heard / total)) if total > 0 else len(words)
    said = " ".join(words[:n]) + (" …" if n < len(words) else "")
    if sess.answer_entry is not None:
        sess.answer_entry.text = said
    else:
        sess.answer_entry = eng.ledger.assistant_said(sess.id, said.strip())


def on_output(eng: Engine, sid: str, raw: Any) -> None:
    sess = eng.sessions.get(sid)
    if sess is None or sess.role in GONE_ROLES:
        return
    try:
        out = pr.parse_output(raw) if isinstance(raw, dict) else raw
    except pr.ProtocolError as e:
        sessions.on_failed(eng, sid, f"malformed event ({e})")
        return
    if out is None:
        return
    if isinstance(out, pr.AudioOutput):
        eng.metrics.audio_received_bytes += len(out.pcm)
    if sess.cut and not sess.turn_in_progress:
        return  # an old session's new turn: the next session answers it instead
    match out:
        case pr.ContentStart():
            sess.contents[out.content_id] = out
            _on_content_start(eng, sess, out)
        case pr.TextOutput():
            _on_text(eng, sess, out)
        case pr.AudioOutput():
            _on_audio(eng, sess, out)
        case pr.ContentEnd():
            _on_content_end(eng, sess, out)
        case pr.ToolUse():
            tooluse.on_tool_use(eng, sess, out)


def _on_content_start(eng: Engine, sess: Session, c: pr.ContentStart) -> None:
    if c.role != "ASSISTANT":
        return
    eng.calls.answer_began(sess.id)
    if c.type == "TEXT" and c.stage == pr.SPECULATIVE:
        if not sess.turn_in_progress:
            _answer_started(eng, sess)
        sess.pending_speculative += 1
    elif c.type == "AUDIO":
        if not sess.turn_in_progress:
            _answer_started(eng, sess)
        sess.audio_open = sess.answer_audio = c.content_id
        if eng.s.session_logging.log_audio_events:
            eng.say(f"[AUDIO] {sess.id}: assistant audio {c.content_id} started")
        if sess.id == eng.current and eng.state is State.MONITORING:
            eng.say(f"[AUDIO_START] assistant audio started on {sess.id}: buffering user audio")
            eng.fire(Trigger.ASSISTANT_AUDIO_STARTED)


def _answer_started(eng: Engine, sess: Session) -> None:
    history_turn = sess.history_answers_due > 0
    if history_turn:
        sess.history_answers_due -= 1
    sess.answer_audio, sess.answer_audio_bytes, sess.answer_entry = None, 0, None
    # A repeat of an answer already given (the user cut it) is not played: as good as cut.
    sess.answer_cut = eng.ledger.answer_began(sess.id, sess.last_seq, evidence=not history_turn)
    if sess.answer_cut and eng.s.session_logging.log_barge_in_events:
        eng.say(f"[REPEAT] {sess.id} answers again what the user cut: not played")


def _on_text(eng: Engine, sess: Session, t: pr.TextOutput) -> None:
    content = sess.contents.get(t.content_id)
    stage = content.stage if content else None
    if t.interrupted:
        _on_interrupted(eng, sess)
        return
    if t.role == "USER":
        eng.ledger.user_said(sess.id, t.text, sess.last_seq)
        views.add_transcript(eng, TranscriptLine(kind="user", session_id=sess.id, text=t.text))
    elif t.role == "ASSISTANT":
        final = stage != pr.SPECULATIVE
        views.add_transcript(
            eng, TranscriptLine(kind="assistant", session_id=sess.id, text=t.text, final=final)
        )
        if final:
            sess.speculative_texts.clear()
            if not sess.answer_cut:  # else the user cut it: what they heard stays
                sess.answer_entry = eng.ledger.assistant_said(sess.id, t.text)
        else:
            sess.speculative_texts.append(t.text)


def _on_interrupted(eng: Engine, sess: Session) -> None:
    eng.metrics.barge_ins += 1
    if _cut_unheard(eng, sess):
        # The user began to speak as the answer began: the service stopped it before a word
        # of it sounded. Cut here, its question would be lost; a replacement hears it again.
        eng.emit(fx.FlushPlayback())
        sessions.replace_current(eng, "its answer was cut before a word of it was heard")
        return
    # What the user heard of the answer they cut short is part of the conversation:
    # without it a new session would see the question unanswered and answer it again.
    keep_what_was_heard(eng, sess)
    if eng.s.session_logging.log_barge_in_events:
        eng.say(f"[BARGE_IN] {sess.id}: the user interrupted the assistant")
    views.add_transcript(
        eng,
        TranscriptLine(
            kind="assistant", session_id=sess.id, text="(interrupted)", interrupted=True
        ),
    )
    dropped = [p for p in eng.switch.held if p.session_id == sess.id]
    eng.metrics.audio_interrupted_bytes += sum(len(p.pcm) for p in dropped)
    eng.switch.held = [p for p in eng.switch.held if p.session_id != sess.id]
    _drop_waiting(eng, sess)
    eng.emit(fx.FlushPlayback())
    sess.pending_speculative = 0
    _turn_done(eng, sess)


def _cut_unheard(eng: Engine, sess: Session) -> bool:
    """The current session's answer was cut before :data:`UNHEARD_SECONDS` of it sounded,
    while the machine can replace the session (not already switching), and its question has
    not been asked again before (see :meth:`Ledger.ask_again`)."""
    heard = eng.playback.heard_seconds(sess.answer_audio or "", eng.now)
    return (
        sess.id == eng.current
        and eng.state in (State.NORMAL, State.MONITORING, State.BUFFERING)
        and not sess.answer_cut
        and heard < UNHEARD_SECONDS
        and eng.ledger.ask_again(sess.id, sess.last_seq)
    )


def _on_audio(eng: Engine, sess: Session, a: pr.AudioOutput) -> None:
    sess.audio_out_bytes += len(a.pcm)
    if a.content_id == sess.answer_audio:
        sess.answer_audio_bytes += len(a.pcm)
    eng.playback.arrived(sess.id, len(a.pcm), eng.now)
    if sess.answer_cut and a.content_id == sess.answer_audio:
        eng.metrics.audio_interrupted_bytes += len(a.pcm)  # the rest of an answer cut
        return
    first = a.content_id == sess.answer_audio and sess.answer_audio_bytes == len(a.pcm)
    play = fx.Play(session_id=sess.id, content_id=a.content_id, pcm=a.pcm)
    if first and sess.waiting_since is None and eng.ledger.open is not None and not eng.muted:
        # The answer would start while the user is speaking: played, it would talk over
        # them; dropped, their question would be lost. It waits until they stop.
        sess.waiting_since = eng.now
        if eng.s.session_logging.log_barge_in_events:
            eng.say(f"[WAIT] {sess.id} began an answer while the user speaks: it waits")
    if sess.waiting_since is not None:
        sess.waiting.append(play)
    else:
        _to_speaker(eng, play)


def _to_speaker(eng: Engine, play: fx.Play) -> None:
    if eng.switch.old is not None and play.session_id != eng.switch.old:
        eng.switch.held.append(play)  # the old session's answer plays to its end first
    else:
        eng.emit(play)


def play_waiting(eng: Engine) -> None:
    """On every microphone frame: an answer that waits for the user plays once they have
    stopped speaking, or once it waited :data:`WAIT_LIMIT_SECONDS` (speech that never
    stops is noise the tracker takes for a voice, not a person who is still talking)."""
    for sess in eng.sessions.values():
        if sess.waiting_since is None:
            continue
        if eng.ledger.open is not None and eng.now - sess.waiting_since < WAIT_LIMIT_SECONDS:
            continue
        waiting, sess.waiting, sess.waiting_since = sess.waiting, [], None
        for play in waiting:
            _to_speaker(eng, play)
        if sess.id == eng.switch.old and not sess.turn_in_progress:
            handoff.old_done(eng)


def _drop_waiting(eng: Engine, sess: Session) -> None:
    eng.metrics.audio_interrupted_bytes += sum(len(p.pcm) for p in sess.waiting)
    sess.waiting, sess.waiting_since = [], None


def _on_content_end(eng: Engine, sess: Session, c: pr.ContentEnd) -> None:
    start = sess.contents.pop(c.content_id, None)
    if start is None or start.role != "ASSISTANT":
        return
    if start.type == "AUDIO" and sess.audio_open == c.content_id:
        sess.audio_open = None
        if eng.s.session_logging.log_audio_events:
            eng.say(
                f"[AUDIO] {sess.id}: assistant audio {c.content_id} ended ({c.stop_reason}), "
                f"{sess.audio_out_bytes} bytes from this session so far"
            )
    elif start.type == "TEXT" and start.stage == pr.FINAL and sess.pending_speculative:
        sess.pending_speculative -= 1
    if c.stop_reason == "INTERRUPTED":
        sess.pending_speculative = 0
    if not sess.turn_in_progress:
        _turn_done(eng, sess)


def _turn_done(eng: Engine, sess: Session) -> None:
    eng.ledger.answer_ended(sess.id)
    sess.answered = True
    if sess.audio_open is not None or sess.pending_speculative:
        return
    if sess.id == eng.switch.old:
        if sess.waiting_since is None:  # else once its waiting answer plays
            handoff.old_done(eng)
    elif sess.id == eng.current and eng.state is State.BUFFERING:
        eng.fire(Trigger.TURN_ENDED)

"""Sessions and their lifecycle: open, ready, failed, closed, and the role each plays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sonic_fsm.core import effects as fx
from sonic_fsm.core import handoff, useraudio
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.machine import GONE_ROLES, WORKING_ROLES, Role, State, Trigger

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.ledger import Entry


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
    # An answer that began while the user spoke: its audio waits until they stop (answers.py).
    waiting: list[fx.Play] = field(default_factory=list)
    waiting_since: float | None = None  # None: its audio plays as it comes
    audio_in_bytes: int = 0
    audio_out_bytes: int = 0
    history_bytes: int = 0
    expires_at: float | None = None  # its signing credentials expire then (temporary keys)
    ready_by: float = 0.0  # it must have accepted its opening events by then (see ready_by)
    answered: bool = False  # it finished an answer: the service works (see count_failure)

    @property
    def turn_in_progress(self) -> bool:
        return self.pending_speculative > 0 or self.audio_open is not None


PROVEN_SECONDS = 30.0
"""A session alive this long, or one that finished an answer, has proven that the service
works: the failures before it no longer count against ``backend.max_retries``."""


def ends_at(eng: Engine, sess: Session) -> float:
    """When the service ends ``sess``: its session limit, or its credentials' expiry."""
    end = sess.opened_at + eng.s.session_limit_seconds
    return end if sess.expires_at is None else min(end, sess.expires_at)


def ready_by(eng: Engine) -> float:
    """When a session opened now must have accepted its opening events: after
    ``next_session_ready_timeout_seconds``, and never later than the user's audio can wait
    for it. While a current session takes the audio, that is the current session's end (the
    next one must be ready before it); when the audio waits in the buffer (the first
    session, a replacement), it is the buffer's duration."""
    wait = eng.now + eng.s.next_session_ready_timeout_seconds
    cur = eng.sessions.get(eng.current or "")
    if cur is not None and cur.role is Role.CURRENT and cur.live and ends_at(eng, cur) > eng.now:
        return min(wait, ends_at(eng, cur))
    return min(wait, eng.now + eng.s.audio_buffer_duration_seconds)


def open_session(eng: Engine, role: Role) -> str:
    sid = f"s{next(eng.session_ids)}"
    prompt = f"prompt-{sid}"
    sess = Session(sid, prompt, f"{prompt}-audio", eng.now, role, ready_by=ready_by(eng))
    eng.sessions[sid] = sess
    eng.metrics.sessions_opened += 1
    b = eng.s.backend
    opening = [
        pr.session_start(b.max_tokens, b.top_p, b.temperature, b.endpointing_sensitivity),
        pr.prompt_start(prompt, b.voice_id, eng.s.audio.output_sample_rate, eng.tool_specs),
        *pr.text_block(
            prompt,
            f"{prompt}-system",
            "SYSTEM",
            b.system_prompt,
            eng.s.history.max_text_input_bytes,
        ),
    ]
    eng.emit(fx.OpenSession(session_id=sid))
    eng.emit(fx.Send(session_id=sid, events=tuple(opening), opening=True))
    return sid


def close_session(eng: Engine, sid: str, failed: bool = False) -> None:
    sess = eng.sessions[sid]
    if sess.role in GONE_ROLES:
        return
    if not failed:
        closing: list[dict[str, Any]] = []
        if sess.live:
            closing.append(pr.content_end(sess.prompt_name, sess.audio_name))
        closing += [pr.prompt_end(sess.prompt_name), pr.session_end()]
        eng.emit(fx.Send(session_id=sid, events=tuple(closing)))
    sess.role = Role.FAILED if failed else Role.CLOSED
    sess.live = False
    eng.emit(fx.CloseSession(session_id=sid))


GONE_KEPT = 8
"""Gone sessions kept (the ones opened last) whatever else: an adapter may still ask their figures
(a recording's summary once its stream has closed, up to the close timeout later)."""
SHOWN_SECONDS = 5.0
"""A gone session is shown in the snapshot until this long after it opened."""


def prune(eng: Engine) -> None:
    """Forget gone sessions that nothing refers to, so a long conversation does not keep
    every session it ever opened. Kept: the :data:`GONE_KEPT` opened last; any the switch names
    (current, next, old, failed) or whose audio it holds; any whose audio is on the speaker
    or waits to play; any a tool call belongs to; any still shown (:data:`SHOWN_SECONDS`);
    any opened since the last failure (it may end the row of failures)."""
    gone = [s for s in eng.sessions.values() if s.role in GONE_ROLES]
    if len(gone) <= GONE_KEPT:
        return
    named = {eng.current, eng.next, eng.switch.old, eng.switch.failed}
    named |= {p.session_id for p in eng.switch.held}
    named |= {p.session_id for p in eng.playback.pieces}
    named |= eng.calls.session_ids()
    since = eng.retries.last_at
    for s in gone[:-GONE_KEPT]:
        if (
            s.id not in named
            and not s.waiting
            and s.waiting_since is None
            and eng.now - s.opened_at >= SHOWN_SECONDS
            and (since is None or s.opened_at < since)
        ):
            del eng.sessions[s.id]


def on_ready(eng: Engine, sid: str) -> None:
    sess = eng.sessions.get(sid)
    if sess is None or sess.role in GONE_ROLES:
        return
    sess.ready = True
    if sid == eng.current and not sess.live:
        # The very first session: it takes everything captured so far.
        start_audio(eng, sess, eng.buffer.since(sess.last_seq + 1))
        eng.buffer.mark_sent(0)
    elif sid == eng.next:
        eng.say(f"[READY] {sid} accepted its opening events")
        eng.fire(Trigger.NEXT_READY)


def start_audio(eng: Engine, sess: Session, frames: list[Any], ack: bool = False) -> None:
    eng.emit(
        fx.Send(
            session_id=sess.id,
            events=(pr.audio_content_start(sess.prompt_name, sess.audio_name),),
        )
    )
    sess.live = True
    useraudio.send_audio(eng, sess, [(f.seq, f.pcm) for f in frames], ack=False)
    if ack:
        eng.emit(fx.Send(session_id=sess.id, events=(), ack_seq=eng.last_seq))


def on_failed(eng: Engine, sid: str, why: str, retryable: bool = True) -> None:
    sess = eng.sessions.get(sid)
    if sess is None or sess.role in GONE_ROLES:
        return
    eng.metrics.failures += 1
    role = sess.role
    close_session(eng, sid, failed=True)
    eng.say(f"[FAILURE] {sid} ({role}) failed: {why}")
    if not retryable and role in WORKING_ROLES:
        # Access denied, an unknown model, a bad request: another session would fail
        # the same way, so say why once instead of retrying.
        eng.stop_because(why)
        return
    if sid == eng.next:
        eng.next = None
        count_failure(eng, why)
        eng.fire(Trigger.NEXT_FAILED)
    elif sid == eng.switch.old:
        handoff.old_done(eng)
    elif sid == eng.current:
        eng.switch.failed = sid
        if eng.state is not State.HANDOFF:  # else the next session is taking over anyway
            count_failure(eng, why)
            eng.fire(Trigger.CURRENT_FAILED)


def replace_current(eng: Engine, why: str) -> None:
    """The current session owes an answer it can no longer give: it is replaced as a failed
    one is, the replacement hearing the audio it had not answered, but at once (there is no
    failure to back off from) and without counting against ``backend.max_retries``."""
    sid = eng.current or ""
    close_session(eng, sid, failed=True)  # a call it left behind is joined, as a failed one's
    eng.say(f"[ASK_AGAIN] {sid} is replaced: {why}")
    eng.switch.failed = sid
    if eng.next is None:
        eng.retries.retry_at = eng.now
    eng.fire(Trigger.CURRENT_FAILED)


def count_failure(eng: Engine, why: str) -> None:
    """One more failure in a row that needs a replacement session. The row starts again once
    a session opened after the last failure has proven itself (:data:`PROVEN_SECONDS`)."""
    since = eng.retries.last_at
    if since is None or any(
        s.opened_at >= since and s.ready and (s.answered or eng.now - s.opened_at >= PROVEN_SECONDS)
        for s in eng.sessions.values()
    ):
        eng.retries.attempts = 0
    eng.retries.attempts += 1
    eng.retries.last_at = eng.now
    eng.retries.last_why = why
    if not eng.retries_left:
        eng.stop_reason = (
            f"retries exhausted: {eng.retries.attempts} failures in a row "
            f"(backend.max_retries = {eng.backoff.max_retries}), the last: {why}"
        )


def schedule_retry(eng: Engine) -> None:
    """Open a replacement after a jittered backoff, while retries last (one timer: a retry
    already scheduled stands)."""
    if not eng.retries_left:
        eng.say(f"[RETRY] giving up after {eng.retries.attempts} failures in a row")
        eng.retries.retry_at = None
        return
    if eng.retries.retry_at is not None:
        return
    delay = eng.backoff.delay(eng.retries.attempts)
    eng.retries.retry_at = eng.now + delay
    eng.say(
        f"[RETRY] failure {eng.retries.attempts} of at most {eng.backoff.max_retries} in a row: "
        f"a new session in {delay:.2f}s"
    )

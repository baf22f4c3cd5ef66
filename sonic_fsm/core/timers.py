"""The engine's timers: one list of deadlines ``[(when, what)]``, read both by
``Engine.next_deadline()`` (when the adapter must call again) and by the timer handling (what
is due now), as aioquic's ``get_timer()`` / ``handle_timer()`` share theirs."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from sonic_fsm.core import handoff, sessions
from sonic_fsm.core.machine import Role, State, Trigger

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine
    from sonic_fsm.core.sessions import Session

OLD_SESSION_GRACE_SECONDS = 30.0
BEFORE_HANDOFF = (State.NORMAL, State.MONITORING, State.BUFFERING)  # the limit still ahead


class Timer(Enum):
    """What the engine waits for, in the order a Tick handles them."""

    THRESHOLD = "threshold"  # the current session is old enough to prepare its successor
    HARD_DEADLINE = "hard deadline"  # switch now, turn boundary or not
    AUDIO_START = "audio start"  # the assistant did not start speaking in time
    READY = "ready"  # a session the conversation waits for did not get ready in time
    RETRY = "retry"  # open another replacement after a backoff
    OLD_SESSION = "old session"  # the old session did not finish its answer in time


def hard_deadline(eng: Engine, sess: Session) -> float:
    """The service's end of ``sess`` less the margin: the hand-off is forced then."""
    return sessions.ends_at(eng, sess) - eng.s.hard_deadline_margin_seconds


def awaited(eng: Engine) -> Session | None:
    """The session whose readiness the conversation waits for: a next session, or the
    first one, that has not accepted its opening events yet."""
    for sid in (eng.next, eng.current):
        sess = eng.sessions.get(sid or "")
        if sess is not None and not sess.ready and sess.role in (Role.CURRENT, Role.NEXT):
            return sess
    return None


def deadlines(eng: Engine) -> list[tuple[float, Timer]]:
    """Every armed timer as ``(when, what)``, in the order they are handled: the one place
    each deadline is written."""
    st = eng.state
    cur = eng.sessions.get(eng.current or "")
    armed: list[tuple[float, Timer]] = []
    if cur is not None and cur.ready and st in BEFORE_HANDOFF:  # the limit still ahead
        if st is State.NORMAL:
            armed.append((cur.opened_at + eng.s.transition_threshold_seconds, Timer.THRESHOLD))
        if not eng.switch.forced:
            armed.append((hard_deadline(eng, cur), Timer.HARD_DEADLINE))
    if st is State.MONITORING and eng.switch.monitoring_since is not None:
        armed.append(
            (eng.switch.monitoring_since + eng.s.audio_start_timeout_seconds, Timer.AUDIO_START)
        )
    if (waiting := awaited(eng)) is not None:
        armed.append((waiting.ready_by, Timer.READY))
    if eng.retries.retry_at is not None:
        armed.append((eng.retries.retry_at, Timer.RETRY))
    if st is State.PROMOTED and eng.switch.promoted_at is not None:
        armed.append((eng.switch.promoted_at + OLD_SESSION_GRACE_SECONDS, Timer.OLD_SESSION))
    return armed


def check(eng: Engine) -> list[tuple[float, Timer]]:
    """Fire what is due; a move may make another deadline due at once (e.g. back in
    NORMAL with a session already past its threshold), so look again after one. Returns
    the deadlines as they stand afterwards (what ``Engine.next_deadline()`` reads)."""
    for _ in range(len(State)):
        before = eng.state
        armed = _check_once(eng)
        if eng.state is before:
            break
    return armed


_ORDER = {what: i for i, what in enumerate(Timer)}


def _check_once(eng: Engine) -> list[tuple[float, Timer]]:
    """Handle each due timer in turn, in :class:`Timer` order. The deadlines are read once,
    and again only after a timer was handled: that may have moved the machine, so the ones
    after it are taken as they stand then. Returns the deadlines as they stand at the end."""
    armed = deadlines(eng)
    i = 0
    while i < len(armed):
        when, what = armed[i]
        i += 1
        if eng.now >= when:
            _handle(eng, what)
            armed = deadlines(eng)
            i = next((j for j, (_, t) in enumerate(armed) if _ORDER[t] > _ORDER[what]), len(armed))
    return armed


def _handle(eng: Engine, what: Timer) -> None:
    cur = eng.sessions.get(eng.current or "")
    age = eng.now - cur.opened_at if cur is not None else 0.0
    match what:
        case Timer.THRESHOLD:
            if eng.s.session_logging.log_transitions:
                eng.say(
                    f"[THRESHOLD] {eng.current} is {age:.1f}s old: "
                    "waiting for the assistant to speak"
                )
            eng.fire(Trigger.THRESHOLD_REACHED)
        case Timer.HARD_DEADLINE:
            eng.say(f"[DEADLINE] {eng.current} is {age:.1f}s old: hand-off forced")
            eng.switch.forced = True
            eng.fire(Trigger.DEADLINE_REACHED)
        case Timer.AUDIO_START:
            eng.say("[AUDIO_START] no assistant audio in time: hand-off forced")
            eng.switch.forced = True
            eng.fire(Trigger.AUDIO_START_TIMED_OUT)
        case Timer.READY:
            waiting = awaited(eng)
            if waiting is not None:
                took = waiting.ready_by - waiting.opened_at
                why = f"not ready in time (no answer to its opening events in {took:.1f} s)"
                sessions.on_failed(eng, waiting.id, why)
        case Timer.RETRY:
            eng.retries.retry_at = None
            if eng.next is None and eng.state in (State.BUFFERING, State.RECOVERING):
                eng.next = sessions.open_session(eng, Role.NEXT)
        case Timer.OLD_SESSION:
            eng.say("[PROMOTION] old session did not finish in time: closing it")
            handoff.old_done(eng)

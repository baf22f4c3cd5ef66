"""End to end in virtual time: whole conversations on the in-process emulator, scored by the
oracle from what was spoken and what the speaker played."""

from __future__ import annotations

import pytest
from conftest import converse

from nova_emulator.faults import Faults, no_faults
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench.run import ScoredRun, scored_run
from sonic_fsm.bench.script import evenly
from sonic_fsm.core import sessions
from sonic_fsm.settings import load


def slow_next_sessions(n: int) -> Faults:
    """Every session after the first takes 8 s to open: the user speaks meanwhile."""
    return Faults(start_delay_seconds=8.0) if n > 1 else Faults()


@pytest.mark.slow  # a 30-minute conversation: seconds of CPU
def test_thirty_minute_conversation_answers_everything_once() -> None:
    settings = load(None, ["session_limit_seconds=480"])
    out = converse(
        settings, evenly(120, 15.0), slow_next_sessions, barge_in_at=(2,), late_at={3: 7.6, 4: 7.8}
    )
    s = out.score
    m = out.result.metrics
    spoken_extra = len(out.source.extras)
    assert s.spoken == 120 + spoken_extra
    assert spoken_extra >= 3  # utterances spoken while a hand-off was under way
    assert s.lost == [] and s.answered_twice == [] and s.unexpected == []
    assert s.restarted == []  # no answer was begun twice either
    assert m["handoffs"] >= 3 and m["recoveries"] == 0
    assert m["barge_ins"] >= 1
    # Only answers the user talked over may be cut short; every other one is heard whole.
    assert s.cut_without_barge_in == []
    assert len(s.truncated) <= m["barge_ins"]
    assert m["peak_buffer_bytes"] <= settings.buffer_cap_bytes
    assert m["frames_lost"] == 0


SILENT_MINUTE = load(
    None,
    [
        "session_limit_seconds=60",
        "transition_threshold_seconds=30",
        "hard_deadline_margin_seconds=8",
        "emulator.silence_timeout_seconds=600",
    ],
)
"""A one-minute session limit; the emulator does not end a session for silence."""


def test_silent_user_is_handed_over_at_the_hard_deadline() -> None:
    settings = SILENT_MINUTE
    out = converse(
        settings, evenly(1, 1.0) + evenly(1, 1.0, first=200.0, start_number=2), no_faults, ()
    )
    assert out.result.metrics["handoffs"] >= 3
    assert out.result.metrics["recoveries"] == 0  # never hit the service's limit
    assert any("[DEADLINE]" in line for line in out.log)
    assert out.score.lost == [] and out.score.answered_twice == []


def test_a_long_conversation_forgets_the_sessions_it_has_finished_with() -> None:
    """A fifteen-minute conversation on one-minute sessions opens more than a dozen; the
    engine keeps the open ones and the last few gone, not every one it ever opened."""
    lines = evenly(1, 1.0) + evenly(1, 1.0, first=900.0, start_number=2)
    out = converse(SILENT_MINUTE, lines, no_faults, ())
    assert out.result.metrics["handoffs"] >= 12
    kept = out.conv.conversation._engine.sessions
    assert len(kept) <= sessions.GONE_KEPT + 2, sorted(kept)
    assert out.score.lost == [] and out.score.answered_twice == []


def test_stream_dying_mid_answer_recovers_without_losing_anything() -> None:
    settings = load(None, ["session_limit_seconds=480"])

    def dies(n: int) -> Faults:
        return Faults(die_mid_answer=3) if n == 1 else Faults()

    out = converse(settings, evenly(8, 12.0), dies, ())
    m = out.result.metrics
    assert m["recoveries"] == 1
    assert out.score.lost == []
    # The answer cut by the failure is given again, whole, by the replacement.
    assert 3 not in out.score.truncated
    assert out.score.answered_twice == []


def test_next_session_never_ready_is_replaced_with_bounded_retries() -> None:
    settings = load(
        None,
        [
            "session_limit_seconds=120",
            "transition_threshold_seconds=40",
            "next_session_ready_timeout_seconds=5",
            "hard_deadline_margin_seconds=10",
        ],
    )

    def second_never_ready(n: int) -> Faults:
        return Faults(never_ready=True) if n == 2 else Faults()

    out = converse(settings, evenly(12, 10.0), second_never_ready, ())
    m = out.result.metrics
    assert m["handoffs"] >= 1 and m["failures"] >= 1
    assert any("not ready in time" in line for line in out.log)
    assert out.score.lost == [] and out.score.answered_twice == []


def test_throttled_starts_back_off_then_succeed() -> None:
    settings = load(
        None,
        [
            "session_limit_seconds=120",
            "transition_threshold_seconds=40",
            "hard_deadline_margin_seconds=10",
        ],
    )

    def throttled(n: int) -> Faults:
        return Faults(refuse_start=True) if n in (2, 3) else Faults()

    out = converse(settings, evenly(10, 10.0), throttled, ())
    retries = [line for line in out.log if "[RETRY]" in line]
    assert len(retries) == 2
    delays = [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in retries]
    # Exponential with equal jitter: within [base/2, base], then [base, 2 * base].
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert out.result.metrics["handoffs"] >= 1
    assert out.score.lost == [] and out.score.answered_twice == []


def test_barge_in_at_the_handoff_point_is_not_answered_again() -> None:
    """The user cuts an answer short just as the next session is ready: the cut answer
    counts as given (it goes into the history), so the next session must not restart it."""
    settings = load(
        None,
        [
            "session_limit_seconds=120",
            "transition_threshold_seconds=40",
            "hard_deadline_margin_seconds=10",
        ],
    )
    out = converse(settings, evenly(24, 12.0), no_faults, barge_in_at=(1, 2, 3, 4))
    s = out.score
    assert out.result.metrics["handoffs"] >= 3 and out.result.metrics["barge_ins"] >= 3
    assert s.lost == [] and s.answered_twice == [] and s.restarted == []
    assert s.cut_without_barge_in == []


def failing(fault: Faults, sessions: range | None = None):
    """A fault plan: ``fault`` for the sessions in ``sessions`` (every session if None)."""

    def plan(n: int) -> Faults:
        return fault if sessions is None or n in sessions else Faults()

    return plan


def run_with(settings, lines, plan) -> tuple[ScoredRun, LocalBackend]:
    """A scored conversation, and the backend that counts the sessions it opened."""
    backend = LocalBackend(settings, plan)
    return scored_run(settings, lines, backend, True, (), None), backend


def test_a_first_session_that_never_becomes_ready_is_replaced_and_nothing_is_lost() -> None:
    """The user speaks while the first session never accepts its opening events: their audio
    waits in the buffer, a replacement opens after a backoff and answers all of it."""
    settings = load(None, [])
    out, backend = run_with(
        settings, evenly(6, 12.0), failing(Faults(never_ready=True), range(1, 2))
    )
    s, m = out.score, out.result.metrics
    assert backend.opened == 2  # the first, and one replacement
    assert s.spoken == 6 and s.lost == [] and s.answered_twice == [] and s.restarted == []
    assert m["recoveries"] == 1 and m["ended_because"] == "input_ended"
    assert sum("[RETRY]" in line for line in out.log) == 1


def test_the_next_sessions_ready_wait_never_outlives_the_current_session() -> None:
    """A silent user: the hand-off is forced at the hard deadline (52 s), 8 s before the
    current session's end, and the next session never becomes ready. The user speaks across
    the end of the current session: a replacement is opened when the current one ends, not
    when the 30 s ready timeout would have run out, and the utterance is answered once."""
    settings = SILENT_MINUTE
    lines = evenly(1, 1.0) + evenly(1, 1.0, first=58.6, start_number=2)
    out, backend = run_with(settings, lines, failing(Faults(never_ready=True), range(2, 3)))
    s, m = out.score, out.result.metrics
    assert any("[DEADLINE]" in line for line in out.log)
    assert s.lost == [] and s.answered_twice == []
    assert m["frames_lost"] == 0
    assert backend.opened == 3  # the first, the next that never got ready, its replacement


def test_a_session_that_dies_in_every_answer_stops_the_conversation_after_the_retries() -> None:
    """Every session dies halfway through its first answer: at most ``max_retries``
    replacements, each after a backoff, then the conversation stops saying why; no answer is
    given twice or over the user."""
    settings = load(None, ["backend.max_retries=3"])
    out, backend = run_with(settings, evenly(4, 12.0), failing(Faults(die_mid_answer=1)))
    s, m = out.score, out.result.metrics
    assert backend.opened == 1 + 3
    assert m["ended_because"] == "retries_exhausted"
    assert sum("[RETRY]" in line for line in out.log) == 3
    assert any("[STOPPED] retries exhausted: 4 failures in a row" in line for line in out.log)
    assert s.answered_twice == [] and s.talk_over == [] and s.unexpected == []


def test_sessions_that_answer_before_they_die_keep_the_conversation_going() -> None:
    """Every session gives one answer whole and dies halfway through its second: each has
    proven the service works, so the failures do not add up; every utterance is answered
    once (the cut answer again, whole, by the replacement)."""
    settings = load(None, ["backend.max_retries=2"])
    out, backend = run_with(settings, evenly(6, 12.0), failing(Faults(die_mid_answer=2)))
    s, m = out.score, out.result.metrics
    assert m["ended_because"] == "input_ended"
    assert s.lost == [] and s.answered_twice == [] and s.talk_over == []
    assert backend.opened >= 4  # more failures than max_retries, none in a row

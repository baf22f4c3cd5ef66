"""The engine on its own (sans-IO): fed events and times, judged by the effects it returns."""

from __future__ import annotations

import pytest

from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core import timers
from sonic_fsm.core.engine import Engine
from sonic_fsm.core.machine import State
from sonic_fsm.settings import load
from sonic_fsm.tools import registry

SETTINGS = load(None, ["session_limit_seconds=60", "transition_threshold_seconds=30",
                       "hard_deadline_margin_seconds=8"])  # fmt: skip


def started() -> Engine:
    engine = Engine(SETTINGS, 0.0)
    effects = engine.start(0.0)
    assert [type(e) for e in effects[:2]] == [fx.OpenSession, fx.Send]
    engine.handle(ev.SessionReady(session_id="s1"), 0.1)
    return engine


def test_a_fatal_error_stops_with_its_reason_instead_of_retrying() -> None:
    engine = started()
    failed = ev.SessionFailed(
        session_id="s1", code="AccessDeniedException", message="no access", retryable=False
    )
    effects = engine.handle(failed, 1.0)
    stopped = [e for e in effects if isinstance(e, fx.Stopped)]
    assert engine.state is State.STOPPED
    assert stopped and "AccessDeniedException: no access" in stopped[0].reason
    assert not any(isinstance(e, fx.OpenSession) for e in effects)


def test_a_retryable_error_opens_a_replacement_after_a_backoff() -> None:
    engine = started()
    failed = ev.SessionFailed(session_id="s1", code="ModelStreamErrorException", message="x")
    effects = engine.handle(failed, 1.0)
    assert engine.state is State.RECOVERING
    assert not any(isinstance(e, fx.OpenSession) for e in effects)
    assert any("[RETRY]" in e.line for e in effects if isinstance(e, fx.Log))
    retry_at = engine.next_deadline()
    assert retry_at is not None and 1.25 <= retry_at <= 1.5  # attempt 1: base/2 to base
    effects = engine.handle(ev.Tick(), retry_at)
    assert [e.session_id for e in effects if isinstance(e, fx.OpenSession)] == ["s2"]


def test_the_threshold_is_a_deadline_the_adapter_is_told() -> None:
    engine = started()
    assert engine.next_deadline() == 30.0
    engine.handle(ev.Tick(), 30.0)
    assert engine.state is State.MONITORING
    assert engine.next_deadline() == 52.0  # the hard deadline, before the audio-start timeout


def test_temporary_credentials_bring_the_hard_deadline_forward() -> None:
    engine = Engine(SETTINGS, 0.0)
    engine.start(0.0)
    engine.handle(ev.SessionReady(session_id="s1", expires_at=40.0), 0.1)
    # The key expires at 40 s: the hand-off is forced a margin (8 s) before, not at 52 s.
    assert engine.next_deadline() == 30.0  # the threshold still comes first
    engine.handle(ev.Tick(), 30.0)
    assert engine.next_deadline() == 32.0
    engine.handle(ev.Tick(), 32.0)
    assert engine.state is State.BUFFERING and engine.forced


def test_sessions_offer_the_registry_and_tool_use_becomes_a_run_tool_effect() -> None:
    engine = Engine(SETTINGS, 0.0, tools=registry(SETTINGS).specs())
    opening = next(e for e in engine.start(0.0) if isinstance(e, fx.Send))
    prompt = next(x["event"]["promptStart"] for x in opening.events if "promptStart" in x["event"])
    tools = prompt["toolConfiguration"]["tools"]
    assert [t["toolSpec"]["name"] for t in tools] == ["getDateAndTimeTool", "testSignalTool"]
    engine.handle(ev.SessionReady(session_id="s1"), 0.1)
    use = {"event": {"toolUse": {"contentId": "c9", "toolName": "getDateAndTimeTool",
                                 "toolUseId": "t-1", "content": "{}"}}}  # fmt: skip
    effects = engine.handle(ev.SessionOutput(session_id="s1", event=use), 1.0)
    runs = [e for e in effects if isinstance(e, fx.RunTool)]
    assert runs == [fx.RunTool(session_id="s1", tool_use_id="t-1",
                               tool_name="getDateAndTimeTool", content="{}")]  # fmt: skip


def test_the_first_session_must_be_ready_before_the_buffer_is_full() -> None:
    """The user's audio waits in the buffer for the first session: it is replaced when it
    has not accepted its opening events while the buffer still holds everything."""
    engine = Engine(SETTINGS, 0.0)
    engine.start(0.0)
    buffer_s = SETTINGS.audio_buffer_duration_seconds
    assert engine.next_deadline() == min(buffer_s, SETTINGS.next_session_ready_timeout_seconds)
    engine.handle(ev.Tick(), buffer_s)
    assert engine.state is State.RECOVERING
    assert engine.sessions["s1"].role.value == "failed"


def test_the_next_sessions_ready_wait_ends_with_the_current_session() -> None:
    """Forced at the hard deadline (52 s), the next session has until the current one's end
    (60 s) to be ready, not the 30 s ready timeout."""
    engine = started()
    engine.handle(ev.Tick(), 30.0)  # the threshold
    engine.handle(ev.Tick(), 52.0)  # the hard deadline: s2 opens
    assert engine.state is State.BUFFERING and engine.next == "s2"
    assert engine.next_deadline() == 60.0
    effects = engine.handle(ev.Tick(), 60.0)
    assert engine.next is None and engine.sessions["s2"].role.value == "failed"
    assert any("[RETRY]" in e.line for e in effects if isinstance(e, fx.Log))


def test_a_frame_reads_the_deadlines_once_per_check_and_next_deadline_reads_that_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timers are worked out once for a frame (after it; before it only when the list
    the last call left has one due), and next_deadline() / deadlines() answer from the
    list that check read, not anew."""
    engine = started()
    reads = 0
    awaited = timers.awaited

    def counted(eng: Engine) -> object:
        nonlocal reads
        reads += 1
        return awaited(eng)

    monkeypatch.setattr(timers, "awaited", counted)  # one call in each reading of the list
    engine.handle(ev.MicFrame(seq=0, pcm=bytes(2048)), 1.0)
    assert reads == 1
    assert engine.next_deadline() == 30.0
    armed = [(30.0, timers.Timer.THRESHOLD), (52.0, timers.Timer.HARD_DEADLINE)]
    assert engine.deadlines() == armed
    assert reads == 1
    engine.handle(ev.MicFrame(seq=1, pcm=bytes(2048)), 30.0)  # the threshold is due first
    assert engine.state is State.MONITORING


def test_a_timer_handled_makes_the_ones_after_it_read_again() -> None:
    """Due together: the threshold moves the machine to MONITORING, which arms the
    audio-start timeout; the hard deadline, after it in order, still fires in that check."""
    engine = started()
    engine.handle(ev.Tick(), 52.0)  # the threshold (30 s) and the hard deadline (52 s)
    assert engine.state is State.BUFFERING and engine.forced
    assert timers.Timer.HARD_DEADLINE not in [what for _, what in engine.deadlines()]

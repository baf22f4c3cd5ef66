"""The table: every (state, trigger) pair moves as the table says or is refused, and the
committed diagram is what the table generates."""

from __future__ import annotations

from pathlib import Path

import pytest
from transitions import MachineError

from sonic_fsm.core import machine
from sonic_fsm.core.machine import State
from sonic_fsm.diagram import render

ROOT = Path(__file__).resolve().parent.parent


class Ctx:
    """A guard context with every flag settable; callbacks named in the table are no-ops."""

    def __init__(
        self,
        state: State,
        *,
        has_ready_next=True,
        turn_settled=True,
        forced=False,
        retries_left=True,
        has_current=True,
        has_no_outstanding_tool=True,
    ) -> None:
        self.has_no_outstanding_tool = has_no_outstanding_tool
        self.has_ready_next = has_ready_next
        self.turn_settled = turn_settled
        self.forced = forced
        self.retries_left = retries_left
        self.has_current = has_current
        self.machine = machine.attach(self, on_exception=None)
        self.machine.set_state(state)

    def trigger(self, name: str) -> bool:
        raise NotImplementedError  # bound by the machine (model_override)

    def schedule_retry(self, e) -> None:
        self.retried = True

    def record_transition(self, e) -> None:
        pass

    def open_next(self, e) -> None:
        pass

    def resume_current(self, e) -> None:
        pass

    def hand_over(self, e) -> None:
        pass

    def recover(self, e) -> None:
        pass


REFUSED = "refused"  # the machine raises MachineError; the state stays
STAYS = "stays"  # a guard says no: no error, no callback, the state stays
RETRIES = "retries"  # an internal transition: the state stays and a retry is scheduled
RETRY = "retry"  # with a destination, (dest, RETRY): the move also schedules a retry

TRIGGERS = [
    "threshold_reached",
    "assistant_audio_started",
    "turn_ended",
    "next_ready",
    "buffer_drained",
    "old_session_done",
    "audio_start_timed_out",
    "deadline_reached",
    "next_failed",
    "current_failed",
    "force_handoff",
    "stop",
]
"""Every trigger, as the strings the table names (a trigger Enum maps to these by value)."""

# The guard combinations the grid runs. Unlisted flags keep Ctx's defaults (all True but
# ``forced``).
CASES: dict[str, dict[str, bool]] = {
    "handoff point": {},
    "next not ready": {"has_ready_next": False},
    "turn unsettled": {"turn_settled": False},
    "unsettled but forced, no retries": {
        "turn_settled": False,
        "forced": True,
        "retries_left": False,
    },
    "tool outstanding": {"has_no_outstanding_tool": False},
    "tool outstanding but forced": {"forced": True, "has_no_outstanding_tool": False},
    "no current, next not ready, forced": {
        "has_ready_next": False,
        "forced": True,
        "has_current": False,
    },
    "no current, no retries": {
        "has_ready_next": False,
        "has_current": False,
        "retries_left": False,
    },
}

S = State
Outcome = State | str | tuple[State, str]

# Written out by hand, not derived from machine.TRANSITIONS: a changed row must fail here.
# A pair that no guard reads has one outcome for every case; a trigger absent from a state's
# row is refused there.
UNGUARDED: dict[State, dict[str, Outcome]] = {
    S.NORMAL: {
        "threshold_reached": S.MONITORING,
        "deadline_reached": S.BUFFERING,
        "force_handoff": S.BUFFERING,
        "stop": S.STOPPED,
    },
    S.MONITORING: {
        "assistant_audio_started": S.BUFFERING,
        "audio_start_timed_out": S.BUFFERING,
        "deadline_reached": S.BUFFERING,
        "force_handoff": S.BUFFERING,
        "stop": S.STOPPED,
    },
    S.BUFFERING: {
        "next_failed": RETRIES,
        "stop": S.STOPPED,
    },
    S.HANDOFF: {
        "buffer_drained": S.PROMOTED,
        "stop": S.STOPPED,
    },
    S.PROMOTED: {
        "old_session_done": S.NORMAL,
        "stop": S.STOPPED,
    },
    S.RECOVERING: {
        "next_ready": S.HANDOFF,
        "stop": S.STOPPED,
    },
    S.STOPPED: {},
}

# The hand-off point: the next session is ready, and the turn is settled with no tool call
# outstanding, or the switch is forced.
AT_HANDOFF_POINT: dict[str, Outcome] = {
    "handoff point": S.HANDOFF,
    "next not ready": STAYS,
    "turn unsettled": STAYS,
    "unsettled but forced, no retries": S.HANDOFF,
    "tool outstanding": STAYS,
    "tool outstanding but forced": S.HANDOFF,
    "no current, next not ready, forced": STAYS,
    "no current, no retries": STAYS,
}

# A failure of the current session is replaced while retries last; else the conversation
# ends (retries exhausted).
CURRENT_FAILED: dict[str, Outcome] = {
    "handoff point": S.RECOVERING,
    "next not ready": S.RECOVERING,
    "turn unsettled": S.RECOVERING,
    "unsettled but forced, no retries": S.STOPPED,
    "tool outstanding": S.RECOVERING,
    "tool outstanding but forced": S.RECOVERING,
    "no current, next not ready, forced": S.RECOVERING,
    "no current, no retries": S.STOPPED,
}

GUARDED: dict[tuple[State, str], dict[str, Outcome]] = {
    (S.BUFFERING, "turn_ended"): AT_HANDOFF_POINT,
    (S.BUFFERING, "next_ready"): AT_HANDOFF_POINT,
    (S.BUFFERING, "deadline_reached"): AT_HANDOFF_POINT,
    (S.NORMAL, "current_failed"): CURRENT_FAILED,
    (S.MONITORING, "current_failed"): CURRENT_FAILED,
    (S.BUFFERING, "current_failed"): CURRENT_FAILED,
    (S.PROMOTED, "current_failed"): CURRENT_FAILED,
    (S.HANDOFF, "next_failed"): {
        "handoff point": (S.BUFFERING, RETRY),
        "next not ready": (S.BUFFERING, RETRY),
        "turn unsettled": (S.BUFFERING, RETRY),
        "unsettled but forced, no retries": (S.BUFFERING, RETRY),
        "tool outstanding": (S.BUFFERING, RETRY),
        "tool outstanding but forced": (S.BUFFERING, RETRY),
        "no current, next not ready, forced": S.RECOVERING,
        "no current, no retries": S.STOPPED,
    },
    (S.RECOVERING, "next_failed"): {
        "handoff point": RETRIES,
        "next not ready": RETRIES,
        "turn unsettled": RETRIES,
        "unsettled but forced, no retries": S.STOPPED,
        "tool outstanding": RETRIES,
        "tool outstanding but forced": RETRIES,
        "no current, next not ready, forced": RETRIES,
        "no current, no retries": S.STOPPED,
    },
}


def expected(state: State, trigger: str, case: str) -> Outcome:
    """The hand-written outcome of ``trigger`` in ``state`` under the guard ``case``."""
    if (state, trigger) in GUARDED:
        return GUARDED[state, trigger][case]
    return UNGUARDED[state].get(trigger, REFUSED)


def test_the_expected_table_covers_the_machine() -> None:
    """A new trigger or state must get its row here before the grid runs it."""
    assert sorted(getattr(t, "value", t) for t in machine.triggers()) == sorted(TRIGGERS)
    assert set(UNGUARDED) == set(State)
    for (state, trigger), outcomes in GUARDED.items():
        assert trigger not in UNGUARDED[state]
        assert set(outcomes) == set(CASES)


@pytest.mark.parametrize(
    ("trigger", "forced", "want"),
    [
        ("turn_ended", False, State.BUFFERING),
        ("next_ready", False, State.BUFFERING),
        ("turn_ended", True, State.HANDOFF),
        ("deadline_reached", True, State.HANDOFF),
    ],
)
def test_a_planned_handoff_waits_for_an_outstanding_tool(
    trigger: str, forced: bool, want: State
) -> None:
    """Written by hand, not derived from the table: only a forced switch leaves a tool call
    behind."""
    ctx = Ctx(State.BUFFERING, forced=forced, has_no_outstanding_tool=False)
    ctx.trigger(trigger)
    assert ctx.state is want


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize("case", list(CASES))
def test_every_state_trigger_pair(state: State, trigger: str, case: str) -> None:
    ctx = Ctx(state, **CASES[case])
    want = expected(state, trigger, case)
    if want == REFUSED:
        with pytest.raises(MachineError):
            ctx.trigger(trigger)
        assert ctx.state is state
        return
    ctx.trigger(trigger)
    dest, retry = want if isinstance(want, tuple) else (want, None)
    assert getattr(ctx, "retried", False) is (want == RETRIES or retry == RETRY)
    assert ctx.state is (state if dest in (STAYS, RETRIES) else dest)


def test_happy_path_in_order() -> None:
    ctx = Ctx(State.NORMAL)
    for trigger, dest in [
        ("threshold_reached", State.MONITORING),
        ("assistant_audio_started", State.BUFFERING),
        ("turn_ended", State.HANDOFF),
        ("buffer_drained", State.PROMOTED),
        ("old_session_done", State.NORMAL),
    ]:
        ctx.trigger(trigger)
        assert ctx.state is dest


def test_handoff_waits_for_the_turn_unless_forced() -> None:
    ctx = Ctx(State.BUFFERING, turn_settled=False)
    ctx.trigger("next_ready")
    assert ctx.state is State.BUFFERING
    ctx.forced = True
    ctx.trigger("deadline_reached")
    assert ctx.state is State.HANDOFF


def test_recovery_gives_up_when_retries_run_out() -> None:
    ctx = Ctx(State.RECOVERING, retries_left=True)
    ctx.trigger("next_failed")
    assert ctx.state is State.RECOVERING and ctx.retried
    ctx.retries_left = False
    ctx.trigger("next_failed")
    assert ctx.state is State.STOPPED


def test_stopped_refuses_everything() -> None:
    for trigger in TRIGGERS:
        ctx = Ctx(State.STOPPED)
        with pytest.raises(MachineError):
            ctx.trigger(trigger)


def test_committed_diagram_matches_the_table() -> None:
    committed = (ROOT / "fsm_diagram.md").read_text()
    assert committed == render(), "run `make diagram` and commit fsm_diagram.md"


def test_diagram_names_every_transition_and_guard() -> None:
    text = render()
    for t in machine.TRANSITIONS:
        assert t["trigger"] in text
    assert "is_handoff_point" in text and "has_retries_left" in text and "has_current" in text

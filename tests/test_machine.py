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


def expected(state: State, trigger: str, flags: dict[str, bool]) -> State | str | None:
    """What the table says: the destination, ``state`` for an internal move, or "refused"."""
    for t in machine.TRANSITIONS:
        if t["trigger"] != trigger:
            continue
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        if state not in sources:
            continue
        model = type("M", (), {"has_no_outstanding_tool": True, **flags})()
        ctx = type("C", (), {"model": model})()
        if not all(c(ctx) for c in t.get("conditions", [])):
            continue
        if any(c(ctx) for c in t.get("unless", [])):
            continue
        return t["dest"] if t["dest"] is not None else state
    has_source = any(
        t["trigger"] == trigger
        and state in (t["source"] if isinstance(t["source"], list) else [t["source"]])
        for t in machine.TRANSITIONS
    )
    return state if has_source else "refused"


FLAG_SETS = [
    {
        "has_ready_next": True,
        "turn_settled": True,
        "forced": False,
        "retries_left": True,
        "has_current": True,
    },
    {
        "has_ready_next": False,
        "turn_settled": True,
        "forced": False,
        "retries_left": True,
        "has_current": True,
    },
    {
        "has_ready_next": True,
        "turn_settled": False,
        "forced": False,
        "retries_left": True,
        "has_current": True,
    },
    {
        "has_ready_next": True,
        "turn_settled": False,
        "forced": True,
        "retries_left": False,
        "has_current": True,
    },
    {
        "has_ready_next": True,
        "turn_settled": True,
        "forced": False,
        "retries_left": True,
        "has_current": True,
        "has_no_outstanding_tool": False,
    },
    {
        "has_ready_next": True,
        "turn_settled": True,
        "forced": True,
        "retries_left": True,
        "has_current": True,
        "has_no_outstanding_tool": False,
    },
    {
        "has_ready_next": False,
        "turn_settled": True,
        "forced": True,
        "retries_left": True,
        "has_current": False,
    },
]


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
@pytest.mark.parametrize("trigger", machine.triggers())
@pytest.mark.parametrize("flags", FLAG_SETS, ids=range(len(FLAG_SETS)))
def test_every_state_trigger_pair(state: State, trigger: str, flags: dict[str, bool]) -> None:
    ctx = Ctx(state, **flags)
    want = expected(state, trigger, flags)
    if want == "refused":
        with pytest.raises(MachineError):
            ctx.trigger(trigger)
        assert ctx.state is state
    else:
        ctx.trigger(trigger)
        assert ctx.state is want


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
    for trigger in machine.triggers():
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

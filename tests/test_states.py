"""The machine's data: every trigger has a row, every state its words and its audio route,
the README's table of states is the one generated from it, and an unknown trigger raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonic_fsm.core import machine
from sonic_fsm.core.engine import Engine
from sonic_fsm.core.machine import Role, State, Trigger
from sonic_fsm.settings import load

ROOT = Path(__file__).resolve().parent.parent


def test_every_trigger_has_a_row_and_every_row_a_trigger() -> None:
    assert set(machine.triggers()) == set(Trigger)
    assert all(isinstance(t["trigger"], Trigger) for t in machine.TRANSITIONS)


def test_every_state_says_where_user_audio_goes() -> None:
    assert set(machine.STATES) == set(State)
    assert machine.audio_route(State.HANDOFF) is Role.NEXT
    assert machine.audio_route(State.RECOVERING) is None


def test_readme_table_of_states_is_generated_from_the_machine() -> None:
    readme = (ROOT / "README.md").read_text()
    assert machine.states_table() in readme, (
        "the README's table of states differs from sonic_fsm.core.machine.STATES: paste "
        "`python -c 'from sonic_fsm.core.machine import states_table; print(states_table())'`"
    )


def test_a_trigger_the_state_does_not_take_is_a_no_op() -> None:
    engine = Engine(load(None, []), now=0.0)
    engine.fire(Trigger.BUFFER_DRAINED)  # only HANDOFF takes it
    assert engine.state is State.NORMAL


def test_a_name_that_is_no_trigger_raises() -> None:
    engine = Engine(load(None, []), now=0.0)
    with pytest.raises(ValueError):
        engine.fire("buffer_drianed")  # type: ignore[arg-type]
    assert engine.state is State.NORMAL


def test_a_trigger_queued_in_a_callback_is_checked_when_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside a callback the machine is mid-transition, so a trigger waits its turn; whether
    the table has it is asked when it runs. BUFFERING takes both STOP and NEXT_FAILED, but by
    the time NEXT_FAILED runs the conversation has STOPPED, which has no row for it."""
    engine = Engine(load(None, []), now=0.0)

    def open_next(e: object) -> None:
        engine.fire(Trigger.STOP)
        engine.fire(Trigger.NEXT_FAILED)

    monkeypatch.setattr(engine, "open_next", open_next)
    engine.fire(Trigger.DEADLINE_REACHED)  # NORMAL -> BUFFERING, then its `after`
    assert engine.state is State.STOPPED

"""Everything that decides a state change, as data: the states, the table, the guards.

The ``transitions`` library runs :data:`TRANSITIONS`; :mod:`sonic_fsm.diagram` renders the
same table into ``fsm_diagram.md``. Guards are pure predicates over a :class:`Context` (the
engine); side effects live in the engine's ``on_enter_*`` callbacks, which return effects
for an adapter to carry out.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, cast

from transitions import EventData, Machine


class State(Enum):
    NORMAL = "NORMAL"
    MONITORING = "MONITORING"
    BUFFERING = "BUFFERING"
    HANDOFF = "HANDOFF"
    PROMOTED = "PROMOTED"
    RECOVERING = "RECOVERING"
    STOPPED = "STOPPED"


class Context(Protocol):
    """What the guards read. The engine provides it."""

    @property
    def has_ready_next(self) -> bool:
        """The next session's stream accepted its opening events."""
        ...

    @property
    def turn_settled(self) -> bool:
        """Every SPECULATIVE assistant text of the turn has its FINAL, or it was interrupted."""
        ...

    @property
    def forced(self) -> bool:
        """The hand-off no longer waits for a turn boundary (timeout, deadline, operator)."""
        ...

    @property
    def has_current(self) -> bool:
        """A working current session exists (it may take user audio again)."""
        ...

    @property
    def retries_left(self) -> bool:
        """Another replacement session may still be tried."""
        ...

    @property
    def has_no_outstanding_tool(self) -> bool:
        """The current session has no tool call between its toolUse and the answer that
        follows the result (see :mod:`sonic_fsm.core.toolcalls`)."""
        ...


def is_handoff_point(event: EventData) -> bool:
    """The next session is ready and the turn allows switching: settled, and no tool call
    waits on the current session (or the switch is forced)."""
    ctx = cast(Context, event.model)
    return ctx.has_ready_next and (
        ctx.forced or (ctx.turn_settled and has_no_outstanding_tool(event))
    )


def has_no_outstanding_tool(event: EventData) -> bool:
    """A planned hand-off never splits a toolUse from its result and the answer to it."""
    ctx = cast(Context, event.model)
    return ctx.has_no_outstanding_tool


def has_current(event: EventData) -> bool:
    """The session handing over still works: a failed hand-off can fall back to it."""
    ctx = cast(Context, event.model)
    return ctx.has_current


def has_retries_left(event: EventData) -> bool:
    """Bounded retries: a replacement may be opened again."""
    ctx = cast(Context, event.model)
    return ctx.retries_left


S = State
LIVE = [S.NORMAL, S.MONITORING, S.BUFFERING, S.HANDOFF, S.PROMOTED, S.RECOVERING]

TRANSITIONS: list[dict[str, Any]] = [
    # --- the happy path: see the limit coming, switch at a turn boundary -----------------
    {"trigger": "threshold_reached", "source": S.NORMAL, "dest": S.MONITORING},
    {"trigger": "assistant_audio_started", "source": S.MONITORING, "dest": S.BUFFERING},
    {
        "trigger": "turn_ended",
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
    },
    {
        "trigger": "next_ready",
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
    },
    {"trigger": "buffer_drained", "source": S.HANDOFF, "dest": S.PROMOTED},
    {"trigger": "old_session_done", "source": S.PROMOTED, "dest": S.NORMAL},
    # --- forced paths: no turn boundary in time, or the hard deadline --------------------
    {"trigger": "audio_start_timed_out", "source": S.MONITORING, "dest": S.BUFFERING},
    {"trigger": "deadline_reached", "source": [S.NORMAL, S.MONITORING], "dest": S.BUFFERING},
    {
        "trigger": "deadline_reached",
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
    },
    # --- failures ------------------------------------------------------------------------
    {"trigger": "next_failed", "source": S.BUFFERING, "dest": None, "after": "schedule_retry"},
    {
        "trigger": "next_failed",
        "source": S.HANDOFF,
        "dest": S.BUFFERING,
        "conditions": [has_current],
    },
    {
        "trigger": "next_failed",
        "source": S.HANDOFF,
        "dest": S.RECOVERING,
        "unless": [has_current],
    },
    {
        "trigger": "next_failed",
        "source": S.RECOVERING,
        "dest": None,
        "conditions": [has_retries_left],
        "after": "schedule_retry",
    },
    {
        "trigger": "next_failed",
        "source": S.RECOVERING,
        "dest": S.STOPPED,
        "unless": [has_retries_left],
    },
    {
        "trigger": "current_failed",
        "source": [S.NORMAL, S.MONITORING, S.BUFFERING, S.PROMOTED],
        "dest": S.RECOVERING,
    },
    {"trigger": "next_ready", "source": S.RECOVERING, "dest": S.HANDOFF},
    # --- the operator --------------------------------------------------------------------
    {"trigger": "force_handoff", "source": [S.NORMAL, S.MONITORING], "dest": S.BUFFERING},
    {"trigger": "stop", "source": LIVE, "dest": S.STOPPED},
]
"""The table. ``dest: None`` is an internal transition: callbacks run, the state stays."""


def triggers() -> list[str]:
    """Every trigger of the table, in order of first appearance."""
    return list(dict.fromkeys(t["trigger"] for t in TRANSITIONS))


def machine_kwargs() -> dict[str, Any]:
    """How the machine is configured, shared by the engine and the diagram."""
    return {
        "states": State,
        "transitions": TRANSITIONS,
        "initial": State.NORMAL,
        "auto_transitions": False,
        "send_event": True,
        "queued": True,
        "ignore_invalid_triggers": False,
        "after_state_change": "record_transition",
    }


def attach(model: Any, on_exception: Any) -> Machine:
    """Run the table on ``model``; an exception inside a callback goes to ``on_exception``."""
    return Machine(model=model, on_exception=on_exception, **machine_kwargs())

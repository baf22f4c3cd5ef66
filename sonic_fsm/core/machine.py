"""Everything that decides a state change, as data: the states, the triggers, the table, the
guards, the roles a session plays and where user audio goes in each state.

The ``transitions`` library runs :data:`TRANSITIONS`; :mod:`sonic_fsm.diagram` renders the
same table into ``fsm_diagram.md`` and :data:`STATES` into the README's table of states.
Guards are pure predicates over a :class:`Context` (the engine). Side effects are the
engine's callbacks named here: an ``on_enter_*`` for what every entry into a state does, a
transition's ``after`` for what only that move does. They return effects for an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
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


class Trigger(StrEnum):
    """Every event the table knows. A name that is not here is a bug and raises."""

    THRESHOLD_REACHED = "threshold_reached"
    ASSISTANT_AUDIO_STARTED = "assistant_audio_started"
    TURN_ENDED = "turn_ended"
    NEXT_READY = "next_ready"
    BUFFER_DRAINED = "buffer_drained"
    OLD_SESSION_DONE = "old_session_done"
    AUDIO_START_TIMED_OUT = "audio_start_timed_out"
    DEADLINE_REACHED = "deadline_reached"
    NEXT_FAILED = "next_failed"
    CURRENT_FAILED = "current_failed"
    FORCE_HANDOFF = "force_handoff"
    STOP = "stop"


class Role(StrEnum):
    """The part a session plays in the conversation."""

    CURRENT = "current"  # the session the conversation runs on
    NEXT = "next"  # opened in the background to take over
    CLOSING = "closing"  # handed over; finishes the answer it was giving, then closes
    FAILED = "failed"
    CLOSED = "closed"


OPEN_ROLES = (Role.CURRENT, Role.NEXT, Role.CLOSING)
"""Roles of a session whose stream is still open (the engine closes them when it stops)."""
WORKING_ROLES = (Role.CURRENT, Role.NEXT)
"""Roles of a session the conversation still counts on (its failure is a failure)."""
GONE_ROLES = (Role.CLOSED, Role.FAILED)


@dataclass(frozen=True)
class StateDoc:
    """A state as the README's table shows it; ``audio_to`` is also what the engine reads."""

    doing: str  # what is happening
    audio_to: Role | None  # the session that takes live user audio (None: only buffered)
    audio_words: str  # where user audio goes, in words


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
T = Trigger
LIVE = [S.NORMAL, S.MONITORING, S.BUFFERING, S.HANDOFF, S.PROMOTED, S.RECOVERING]

TRANSITIONS: list[dict[str, Any]] = [
    # --- the happy path: see the limit coming, switch at a turn boundary -----------------
    {"trigger": T.THRESHOLD_REACHED, "source": S.NORMAL, "dest": S.MONITORING},
    {
        "trigger": T.ASSISTANT_AUDIO_STARTED,
        "source": S.MONITORING,
        "dest": S.BUFFERING,
        "after": "open_next",
    },
    {
        "trigger": T.TURN_ENDED,
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
        "after": "hand_over",
    },
    {
        "trigger": T.NEXT_READY,
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
        "after": "hand_over",
    },
    {"trigger": T.BUFFER_DRAINED, "source": S.HANDOFF, "dest": S.PROMOTED},
    {"trigger": T.OLD_SESSION_DONE, "source": S.PROMOTED, "dest": S.NORMAL},
    # --- forced paths: no turn boundary in time, or the hard deadline --------------------
    {
        "trigger": T.AUDIO_START_TIMED_OUT,
        "source": S.MONITORING,
        "dest": S.BUFFERING,
        "after": "open_next",
    },
    {
        "trigger": T.DEADLINE_REACHED,
        "source": [S.NORMAL, S.MONITORING],
        "dest": S.BUFFERING,
        "after": "open_next",
    },
    {
        "trigger": T.DEADLINE_REACHED,
        "source": S.BUFFERING,
        "dest": S.HANDOFF,
        "conditions": [is_handoff_point],
        "after": "hand_over",
    },
    # --- failures ------------------------------------------------------------------------
    {"trigger": T.NEXT_FAILED, "source": S.BUFFERING, "dest": None, "after": "schedule_retry"},
    {
        "trigger": T.NEXT_FAILED,
        "source": S.HANDOFF,
        "dest": S.BUFFERING,
        "conditions": [has_current],
        "after": ["resume_current", "schedule_retry"],
    },
    {
        "trigger": T.NEXT_FAILED,
        "source": S.HANDOFF,
        "dest": S.RECOVERING,
        "conditions": [has_retries_left],
        "unless": [has_current],
    },
    {
        "trigger": T.NEXT_FAILED,
        "source": S.HANDOFF,
        "dest": S.STOPPED,
        "unless": [has_current, has_retries_left],
    },
    {
        "trigger": T.NEXT_FAILED,
        "source": S.RECOVERING,
        "dest": None,
        "conditions": [has_retries_left],
        "after": "schedule_retry",
    },
    {
        "trigger": T.NEXT_FAILED,
        "source": S.RECOVERING,
        "dest": S.STOPPED,
        "unless": [has_retries_left],
    },
    {
        "trigger": T.CURRENT_FAILED,
        "source": [S.NORMAL, S.MONITORING, S.BUFFERING, S.PROMOTED],
        "dest": S.RECOVERING,
        "conditions": [has_retries_left],
    },
    {
        "trigger": T.CURRENT_FAILED,
        "source": [S.NORMAL, S.MONITORING, S.BUFFERING, S.PROMOTED],
        "dest": S.STOPPED,
        "unless": [has_retries_left],
    },
    {"trigger": T.NEXT_READY, "source": S.RECOVERING, "dest": S.HANDOFF, "after": "recover"},
    # --- the operator --------------------------------------------------------------------
    {
        "trigger": T.FORCE_HANDOFF,
        "source": [S.NORMAL, S.MONITORING],
        "dest": S.BUFFERING,
        "after": "open_next",
    },
    {"trigger": T.STOP, "source": LIVE, "dest": S.STOPPED},
]
"""The table. ``dest: None`` is an internal transition: callbacks run, the state stays.
``after`` names what the engine does for that move only (``hand_over``: the next session gets
the history and the buffered audio; ``recover``: the same for a replacement;
``resume_current``: a failed hand-off gives the audio back to the current session)."""

STATES: dict[State, StateDoc] = {
    S.NORMAL: StateDoc(
        "one live session, younger than `transition_threshold_seconds`",
        Role.CURRENT,
        "the current session",
    ),
    S.MONITORING: StateDoc(
        "threshold passed; waiting for the assistant to start speaking (a turn boundary)",
        Role.CURRENT,
        "the current session",
    ),
    S.BUFFERING: StateDoc(
        "the assistant is speaking (or the wait timed out); the next session opens in the "
        "background",
        Role.CURRENT,
        "the current session, and kept for the next",
    ),
    S.HANDOFF: StateDoc(
        "the next session gets the history, then the audio the current one has not answered, "
        "then live audio",
        Role.NEXT,
        "the next session",
    ),
    S.PROMOTED: StateDoc(
        "the next session is current; the old one finishes the answer it was giving, then closes",
        Role.CURRENT,
        "the new current session",
    ),
    S.RECOVERING: StateDoc(
        "the current session failed or ended; a replacement opens after a backoff, with the "
        "history and the unanswered audio",
        None,
        "kept for the replacement",
    ),
    S.STOPPED: StateDoc("the conversation ended", None, "nowhere"),
}
"""Each state in words, and the session that takes live user audio in it."""


def audio_route(state: State) -> Role | None:
    """The role of the session that takes live user audio in ``state`` (None: nobody)."""
    return STATES[state].audio_to


def states_table() -> str:
    """The README's table of states, generated from :data:`STATES`."""
    rows = ["| state | what is happening | user audio goes to |", "|---|---|---|"]
    rows += [f"| {st.value} | {d.doing} | {d.audio_words} |" for st, d in STATES.items()]
    return "\n".join(rows) + "\n"


def triggers() -> list[Trigger]:
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
        # The model declares every method the machine binds (``trigger``, the callbacks):
        # transitions replaces those and adds nothing else.
        "model_override": True,
    }


def attach(model: Any, on_exception: Any) -> Machine:
    """Run the table on ``model``; an exception inside a callback goes to ``on_exception``."""
    return Machine(model=model, on_exception=on_exception, **machine_kwargs())

"""The state machine as a strip, drawn from ``sonic_fsm.core.machine`` (never hand-drawn).

The states come from the ``State`` enum in declaration order; an arrow joins two
neighbours only when the ``TRANSITIONS`` table has that edge. Under the strip: the last
transitions with their triggers, the ways out of the active state the table allows, and the
tool calls the conversation waits on (a planned hand-off waits for them).

A forced hand-off on the emulator passes BUFFERING, HANDOFF and PROMOTED in a few
milliseconds, far between two frames; so every state entered in the last
``GLOW_SECONDS`` stays lit, and the path through them is spelled out.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text

from sonic_fsm.core import machine
from sonic_fsm.core.snapshot import Snapshot, TransitionRecord
from tui.present import (
    Edge,
    edges,
    exits,
    new_log_lines,
    recent_transitions,
    state_name,
    tool_wait,
)
from tui.widgets.panel import SnapshotPanel

NBSP = "\u00a0"
_ACTIVE = Style(reverse=True, bold=True)
_LIT = Style(bold=True, underline=True)
GLOW_SECONDS = 2.0
TRAIL_KEEP = 64


class StateStrip(SnapshotPanel):
    """Every state of the machine, the active one highlighted."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "state-strip--inactive",
        "state-strip--arrow",
        "state-strip--label",
        "state-strip--normal",
        "state-strip--monitoring",
        "state-strip--buffering",
        "state-strip--handoff",
        "state-strip--promoted",
        "state-strip--recovering",
        "state-strip--stopped",
    }

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.states: list[str] = [state_name(s) for s in machine.State]
        self.edges: list[Edge] = edges(machine.TRANSITIONS, self.states)
        self._pairs = {(e.source, e.dest) for e in self.edges}
        self.trail: list[TransitionRecord] = []
        """Every transition the strip has shown, oldest first (the last ``TRAIL_KEEP``)."""
        self._known: tuple[TransitionRecord, ...] = ()

    def watch_snapshot(self, snap: Snapshot | None) -> None:
        if snap is not None:
            known = recent_transitions(snap)
            if known != self._known:
                _, new = new_log_lines(self._known, known)
                self._known = known
                self.trail.extend(new)
                del self.trail[:-TRAIL_KEEP]
        super().watch_snapshot(snap)

    def view_key(self, snap: Snapshot | None) -> object:
        if snap is None:
            return None
        return (
            state_name(snap.state),
            tuple(self.recent(snap.now)),
            tuple(self.trail[-1:]),
            tool_wait(snap),
        )

    def recent(self, now: float) -> list[TransitionRecord]:
        """The transitions of the last ``GLOW_SECONDS`` (engine time), oldest first."""
        return [t for t in self.trail if now - t.at <= GLOW_SECONDS]

    def state_style(self, state: str) -> str:
        key = f"state-strip--{state.lower()}"
        return key if key in self.COMPONENT_CLASSES else "state-strip--label"

    def render(self) -> Text:
        snap = self.snapshot
        active = state_name(snap.state) if snap else ""
        text = Text(no_wrap=False, overflow="fold")
        inactive = self.get_component_rich_style("state-strip--inactive")
        arrow = self.get_component_rich_style("state-strip--arrow")
        label = self.get_component_rich_style("state-strip--label")
        wide = sum(len(s) + 2 for s in self.states) + 3 * (len(self.states) - 1)
        gap = 3 if wide <= self.content_size.width else 1
        recent = self.recent(snap.now) if snap else []
        lit = {state_name(t.dest) for t in recent} | {state_name(t.source) for t in recent}
        for i, state in enumerate(self.states):
            if i:
                joined = (self.states[i - 1], state) in self._pairs
                text.append("→".center(gap) if joined else " " * gap, style=arrow)
            chip = f"{NBSP}{state}{NBSP}"
            colour = self.get_component_rich_style(self.state_style(state))
            if state == active:
                text.append(chip, style=colour + _ACTIVE)
            elif state in lit:
                text.append(chip, style=colour + _LIT)
            else:
                text.append(chip, style=inactive)
        text.append("\n")
        if snap is None:
            text.append("waiting for the engine…", style=label)
            return text
        path = recent or ([self.trail[-1]] if self.trail else [])
        if not path:
            text.append(f"in {active} since the start", style=label)
        else:
            text.append("last ", style=label)
            first = state_name(path[0].source)
            text.append(first, style=self.get_component_rich_style(self.state_style(first)))
            for t in path:
                dst = state_name(t.dest)
                text.append(" ─", style=arrow)
                text.append(t.trigger, style="bold")
                text.append("→ ", style=arrow)
                text.append(dst, style=self.get_component_rich_style(self.state_style(dst)))
            text.append(f"  at {path[-1].at:.1f} s", style=label)
        waiting = tool_wait(snap)
        if waiting:  # before the ways out: on a short strip this is the line that shows
            text.append("\n")
            text.append(waiting, style="bold")
        ways = exits(self.edges, active)
        if ways:
            text.append("\n")
            text.append(f"from {active}:", style=label)
            for i, (dest, triggers) in enumerate(ways.items()):
                text.append(" ·" if i else "", style=arrow)
                if dest == active:
                    text.append(" stays on ", style=label)
                else:
                    text.append(" → ", style=arrow)
                    text.append(dest, style=self.get_component_rich_style(self.state_style(dest)))
                    text.append(" on ", style=label)
                text.append(", ".join(triggers))
        return text

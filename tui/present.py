"""Pure helpers that turn engine data into what the panels show (no Textual here).

Kept apart from the widgets so the rules (which transcript lines a FINAL replaces, which
log lines are new, what the strip's arrows are) are tested without a screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sonic_fsm.core.protocol import DEFAULT_ENDPOINTING, ENDPOINTING_PAUSE_SECONDS
from sonic_fsm.core.snapshot import Snapshot, TranscriptLine, TransitionRecord
from sonic_fsm.settings import Settings

TRANSITION_LINE = re.compile(
    r"^\s*(?P<at>\d+(?:\.\d+)?) \[TRANSITION\] "
    r"(?P<source>\w+) -> (?P<dest>\w+) \((?P<trigger>\w+)\)"
)
"""The engine's log line ``33.020 [TRANSITION] BUFFERING -> HANDOFF (turn_ended)``."""

INPUT_BYTES_PER_SECOND = 32_000
"""16 kHz 16-bit mono: what one second of buffered user audio weighs."""


def state_name(state: Any) -> str:
    """``State.NORMAL``, ``"NORMAL"``, ``"State.NORMAL"`` and ``"normal"`` all give ``NORMAL``."""
    if isinstance(state, Enum):
        return state.name
    return str(state).rsplit(".", 1)[-1].upper()


@dataclass(frozen=True, kw_only=True)
class Edge:
    trigger: str
    source: str
    dest: str


def edges(transitions: Iterable[Mapping[str, Any]], states: Sequence[str]) -> list[Edge]:
    """Every (trigger, source, dest) the ``transitions`` table allows, wildcards expanded.

    Sources may be one state, a list of states or ``"*"``; a dest of ``None`` (an internal
    transition) or ``"="`` (reflexive) means the source itself.
    """
    out: list[Edge] = []
    for row in transitions:
        sources = row["source"]
        if sources == "*":
            sources = list(states)
        elif isinstance(sources, str | Enum):
            sources = [sources]
        for source in sources:
            src = state_name(source)
            dest = row.get("dest")
            dst = src if dest is None or dest == "=" else state_name(dest)
            out.append(Edge(trigger=str(row["trigger"]), source=src, dest=dst))
    return out


def exits(all_edges: Sequence[Edge], state: str) -> dict[str, list[str]]:
    """The ways out of ``state``: each dest with its triggers, in table order, no repeats.

    A dest equal to ``state`` is an internal transition (callbacks run, the state stays).
    """
    out: dict[str, list[str]] = {}
    for edge in all_edges:
        if edge.source == state:
            triggers = out.setdefault(edge.dest, [])
            if edge.trigger not in triggers:
                triggers.append(edge.trigger)
    return out


def tool_line(line: TranscriptLine) -> str:
    """A tool call as the transcript shows it: its name, and how long it took or that it runs."""
    if line.seconds is None:
        return f"{line.text} … running"
    verdict = "failed after" if line.failed else "answered in"
    return f"{line.text} {verdict} {line.seconds:.1f} s"


def tool_wait(snap: Snapshot) -> str | None:
    """The tool calls the conversation waits on, one line; ``None`` when there are none."""
    if not snap.tools:
        return None
    calls = ", ".join(
        f"{t.name} on {t.session_id} ({t.phase}, {t.seconds:.1f} s)" for t in snap.tools
    )
    held = " — the hand-off waits for it" if snap.handoff_waits_for_tool else ""
    return f"tool {calls}{held}"


def visible_transcript(lines: Sequence[TranscriptLine]) -> list[TranscriptLine]:
    """The lines to show: in each turn, the k-th FINAL text replaces the k-th SPECULATIVE one.

    A turn is a run of lines of one kind from one session. Nova Sonic sends each content
    block's SPECULATIVE text before its audio and the FINAL text after, in the same order;
    the engine replaces a speculative line in place when the final text is identical, and
    this catches the rest. Speculative text without its final yet stays (shown as such);
    an interruption marker is not a final and replaces nothing.
    """
    shown: list[TranscriptLine] = []
    turn: list[TranscriptLine] = []

    def close_turn() -> None:
        finals = sum(1 for line in turn if line.final and not line.interrupted)
        for line in turn:
            if not line.final and finals > 0:
                finals -= 1
                continue
            shown.append(line)
        turn.clear()

    for line in lines:
        if turn and (line.kind != turn[-1].kind or line.session_id != turn[-1].session_id):
            close_turn()
        if line.kind == "handoff":
            shown.append(line)
        else:
            turn.append(line)
    close_turn()
    return shown


def recent_transitions(snap: Snapshot) -> tuple[TransitionRecord, ...]:
    """The transitions the snapshot still knows about, oldest first.

    A hand-off can pass through BUFFERING, HANDOFF and PROMOTED between two frames, so
    ``last_transition`` alone would hide it. The snapshot's ``transitions`` field is used
    when the engine fills it; otherwise the transition lines of its log are read.
    """
    recorded = getattr(snap, "transitions", None)
    if recorded:
        return tuple(recorded)
    out = []
    for line in snap.log:
        m = TRANSITION_LINE.match(line)
        if m:
            out.append(
                TransitionRecord(
                    at=float(m["at"]), trigger=m["trigger"], source=m["source"], dest=m["dest"]
                )
            )
    if not out and snap.last_transition is not None:
        out.append(snap.last_transition)
    return tuple(out)


def new_log_lines[T](shown: Sequence[T], latest: Sequence[T]) -> tuple[bool, list[T]]:
    """What to do to a log showing ``shown`` so that it ends like ``latest``.

    Returns ``(append, lines)``: append ``lines`` when ``latest`` continues what is shown
    (the engine may keep only a rolling window, so the start of ``shown`` may have dropped
    out), else clear and write ``lines``.
    """
    if not shown:
        return True, list(latest)
    for overlap in range(min(len(shown), len(latest)), 0, -1):
        if tuple(shown[-overlap:]) == tuple(latest[:overlap]):
            return True, list(latest[overlap:])
    return False, list(latest)


def human_bytes(n: float) -> str:
    """1234 -> ``1.2 kB``: short enough for a table cell."""
    for unit in ("B", "kB", "MB"):
        if abs(n) < 1000 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} MB"  # pragma: no cover - the loop always returns


def bar_cells(width: int, fraction: float) -> int:
    """How many of ``width`` cells a bar filled to ``fraction`` (clamped to 0..1) covers."""
    fraction = min(max(fraction, 0.0), 1.0)
    return round(width * fraction)


def settings_toml(data: Mapping[str, Any], notes: Mapping[str, str] | None = None) -> str:
    """The settings tree as TOML text: top-level keys first, then one ``[section]`` each;
    ``notes`` (by dotted key) become comments after their line."""
    notes = notes or {}
    lines: list[str] = []
    sections: list[tuple[str, Mapping[str, Any]]] = []

    def line(key: str, value: Any, dotted: str) -> str:
        note = notes.get(dotted)
        return f"{key} = {_toml_value(value)}" + (f"  # {note}" if note else "")

    for key, value in data.items():
        if isinstance(value, Mapping):
            sections.append((key, value))
        else:
            lines.append(line(key, value, key))
    for name, table in sections:
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(line(key, value, f"{name}.{key}") for key, value in table.items())
    return "\n".join(lines) + "\n"


def endpointing_note(s: Settings) -> str:
    """What ``backend.endpointing_sensitivity`` means here: the pause that ends a user's turn."""
    level = s.backend.endpointing_sensitivity
    if s.backend.kind == "emulator" and s.emulator.end_of_speech_ms > 0:
        return f"the emulator ends turns after {s.emulator.end_of_speech_ms} ms instead"
    if not level:
        level, pause = DEFAULT_ENDPOINTING, ENDPOINTING_PAUSE_SECONDS[DEFAULT_ENDPOINTING]
        return f"not sent: the service's default (the emulator's is {level}, {pause:g} s)"
    return f"a {ENDPOINTING_PAUSE_SECONDS[level]:g} s pause ends the user's turn"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

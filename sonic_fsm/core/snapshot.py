"""What a view (the dashboard, a log) sees of a running conversation: plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SessionView:
    session_id: str
    role: str  # "current", "next", "closing", "failed", "closed"
    age_seconds: float
    ready: bool
    audio_in_bytes: int
    audio_out_bytes: int


@dataclass(frozen=True, kw_only=True)
class TranscriptLine:
    kind: str  # "user", "assistant", "handoff", "tool"
    session_id: str
    text: str
    final: bool = True
    interrupted: bool = False
    ref: str = ""  # a tool line: the toolUseId
    seconds: float | None = None  # a tool line: how long the tool took, once it answered
    failed: bool = False  # a tool line: it raised, timed out or was unknown


@dataclass(frozen=True, kw_only=True)
class ToolView:
    """A tool call the conversation still waits on."""

    name: str
    session_id: str
    seconds: float  # since the model asked
    phase: str  # "running", "answering" (result sent, answer not begun), "left behind"


@dataclass(frozen=True, kw_only=True)
class TransitionRecord:
    at: float
    trigger: str
    source: str
    dest: str


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    now: float
    state: str
    last_transition: TransitionRecord | None
    session_age_seconds: float
    threshold_seconds: float
    hard_deadline_seconds: float
    limit_seconds: float
    buffer_bytes: int
    buffer_cap_bytes: int
    sessions: tuple[SessionView, ...]
    transcript: tuple[TranscriptLine, ...]
    log: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    muted: bool = False
    recording: bool = False
    transitions: tuple[TransitionRecord, ...] = ()  # the most recent, oldest first
    mic_level_db: float = -96.0
    tools: tuple[ToolView, ...] = ()  # outstanding tool calls
    handoff_waits_for_tool: bool = False  # the next session is ready; a tool call holds it

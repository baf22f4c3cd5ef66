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
    kind: str  # "user", "assistant", "handoff"
    session_id: str
    text: str
    final: bool = True
    interrupted: bool = False


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

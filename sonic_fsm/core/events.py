"""Worker events: what the session, audio, timer and operator workers tell the engine.

Each is a frozen keyword-only dataclass. Workers put them on the one queue; the engine
handles them one at a time, in arrival order, with the time they are handled at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class MicFrame:
    """One chunk of captured 16 kHz 16-bit mono user audio; ``seq`` counts from 0."""

    seq: int
    pcm: bytes


@dataclass(frozen=True, kw_only=True)
class MicEnded:
    """The audio source has no more frames."""


@dataclass(frozen=True, kw_only=True)
class SessionReady:
    """The session's stream accepted its opening events (sessionStart, promptStart, system).
    ``expires_at``: when the credentials that sign this stream expire (loop time), if they do."""

    session_id: str
    expires_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class SessionOutput:
    """One parsed output event of a session (see :mod:`sonic_fsm.core.protocol`)."""

    session_id: str
    event: Any


@dataclass(frozen=True, kw_only=True)
class SessionSent:
    """The adapter has sent the engine's audio to a session up to and including ``seq``."""

    session_id: str
    seq: int


@dataclass(frozen=True, kw_only=True)
class SessionFailed:
    """A session's stream raised, or its opening failed or timed out."""

    session_id: str
    code: str
    message: str
    retryable: bool = True


@dataclass(frozen=True, kw_only=True)
class SessionClosed:
    """A session's output stream ended (after our close, or unexpectedly)."""

    session_id: str


@dataclass(frozen=True, kw_only=True)
class ToolFinished:
    """A tool the engine asked for (:class:`sonic_fsm.core.effects.RunTool`) has its result:
    what it returned, or ``{"error": ...}`` when it failed (``error`` then says why)."""

    session_id: str
    tool_use_id: str
    tool_name: str
    result: Any
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class PlaybackProgress:
    """The speaker's own account of playback: it still has ``queued_seconds`` of assistant
    audio to play at the time this is handled (0: it has played everything it was given).

    Optional. Without it the engine assumes a speaker that plays what it is given in order,
    in real time, from the moment it is given (exact for the WAV timeline and close for a
    local device). A front end with its own buffering (a browser's jitter buffer, a network
    hop) sends it whenever it knows better, e.g. every 100-250 ms while it plays and once
    when it runs dry, so that a barge-in stops what is really sounding and the history
    keeps only what the listener really heard of an answer they cut.
    """

    queued_seconds: float


@dataclass(frozen=True, kw_only=True)
class Tick:
    """Time passed; the engine checks its deadlines."""


@dataclass(frozen=True, kw_only=True)
class Operator:
    """A command from the operator: ``force_handoff``, ``mute``, ``unmute``, ``stop``."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)


WorkerEvent = (
    MicFrame
    | MicEnded
    | SessionReady
    | SessionOutput
    | SessionSent
    | SessionFailed
    | SessionClosed
    | ToolFinished
    | PlaybackProgress
    | Tick
    | Operator
)

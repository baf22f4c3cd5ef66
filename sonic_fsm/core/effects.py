"""What the engine asks its adapters to do. The engine returns these; it never does I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sonic_fsm.core.snapshot import TranscriptLine


@dataclass(frozen=True, kw_only=True)
class OpenSession:
    """Open a new stream; then carry out the ``Send`` that follows (its opening events)."""

    session_id: str


@dataclass(frozen=True, kw_only=True)
class Send:
    """Send events in order. ``ack_seq``: report ``SessionSent`` with it once all are sent.
    ``opening``: these are the opening events; report ``SessionReady`` once they are sent."""

    session_id: str
    events: tuple[dict[str, Any], ...]
    ack_seq: int | None = None
    opening: bool = False


@dataclass(frozen=True, kw_only=True)
class CloseSession:
    """After the sends queued before it: close input, drain output, release (with a timeout)."""

    session_id: str


@dataclass(frozen=True, kw_only=True)
class Play:
    """Queue assistant audio (24 kHz 16-bit mono) on the speaker."""

    session_id: str
    content_id: str
    pcm: bytes


@dataclass(frozen=True, kw_only=True)
class FlushPlayback:
    """Barge-in: drop everything queued on the speaker now."""


@dataclass(frozen=True, kw_only=True)
class RunTool:
    """Run a tool the model asked for, off the audio path; report :class:`ToolFinished`.
    The engine sends the result (to the session that asked, if it still can take it)."""

    session_id: str
    tool_use_id: str
    tool_name: str
    content: str


@dataclass(frozen=True, kw_only=True)
class Log:
    line: str


@dataclass(frozen=True, kw_only=True)
class Said:
    """A line of the transcript was added, or a FINAL replaced the SPECULATIVE it confirms."""

    line: TranscriptLine


@dataclass(frozen=True, kw_only=True)
class Transitioned:
    """The machine moved (for observers: recordings, views)."""

    trigger: str
    source: str
    dest: str
    sessions: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Stopped:
    """The conversation has ended; ``reason`` says why."""

    reason: str


Effect = (
    OpenSession
    | Send
    | CloseSession
    | Play
    | FlushPlayback
    | RunTool
    | Log
    | Said
    | Transitioned
    | Stopped
)

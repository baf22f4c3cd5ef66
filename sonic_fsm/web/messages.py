"""The voice server's WebSocket protocol: what a client may send, and what it is sent.

Audio goes as binary messages of raw 16-bit little-endian mono PCM (client → server at
16 kHz, server → client at 24 kHz); everything else is one JSON object per text message with
a ``type``. Documented in the README ("Voice server"). Pure: no sockets here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from sonic_fsm import api
from sonic_fsm.core.snapshot import Snapshot

MAX_AUDIO_BYTES = 32000  # one binary message: at most 1 s of 16 kHz 16-bit audio
MAX_TEXT_BYTES = 4096  # one JSON message

# WebSocket close codes (RFC 6455 section 7.4.1)
UNSUPPORTED = 1003  # a message of a kind this server does not take
INVALID = 1007  # a message that is not what the protocol says
TOO_BIG = 1009


class ProtocolViolation(ValueError):
    """A client message the protocol does not allow: the connection is closed with ``code``
    and the message as its reason (kept under the 123 bytes a close reason may carry)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]


@dataclass(frozen=True, kw_only=True)
class Played:
    """``{"type": "played", "bytes": N, "queued_seconds": Q}``: the page's running total of
    audio played, and what it still has queued (optional)."""

    bytes: int
    queued_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class Command:
    """``{"type": "stop"}``, ``{"type": "force_handoff"}``, ``{"type": "mute", "muted": b}``."""

    name: str
    muted: bool = False


ClientMessage = bytes | Played | Command


def parse_audio(data: bytes) -> bytes:
    if len(data) > MAX_AUDIO_BYTES:
        raise ProtocolViolation(
            TOO_BIG, f"audio message of {len(data)} bytes: at most {MAX_AUDIO_BYTES}"
        )
    if len(data) % 2:
        raise ProtocolViolation(
            INVALID, f"audio message of {len(data)} bytes: 16-bit PCM comes in 2-byte samples"
        )
    return data


def parse_text(text: str) -> Played | Command:
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ProtocolViolation(TOO_BIG, f"text message over {MAX_TEXT_BYTES} bytes")
    try:
        body = json.loads(text)
    except ValueError:
        raise ProtocolViolation(INVALID, "text message is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ProtocolViolation(INVALID, 'text message must be a JSON object with a "type"')
    kind = body["type"]
    if kind == "played":
        n = body.get("bytes")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ProtocolViolation(INVALID, 'played: "bytes" must be a whole number >= 0')
        q = body.get("queued_seconds")
        if q is not None and (
            not isinstance(q, int | float) or isinstance(q, bool) or not 0 <= q < 3600
        ):
            raise ProtocolViolation(INVALID, 'played: "queued_seconds" must be 0 to 3600')
        return Played(bytes=n, queued_seconds=q)
    if kind in ("stop", "force_handoff"):
        return Command(name=kind)
    if kind == "mute":
        muted = body.get("muted")
        if not isinstance(muted, bool):
            raise ProtocolViolation(INVALID, 'mute: "muted" must be true or false')
        return Command(name="mute", muted=muted)
    raise ProtocolViolation(UNSUPPORTED, f"unknown message type {kind[:40]!r}")


_TYPES = {
    api.StopPlayback: "stop_playback",
    api.Transcript: "transcript",
    api.StateChanged: "state",
    api.HandoffBegun: "handoff_begun",
    api.HandoffDone: "handoff_done",
    api.ToolCall: "tool_call",
    api.ToolResult: "tool_result",
    api.Error: "error",
    api.Log: "log",
    api.Ended: "ended",
}


def event_message(event: api.Event) -> bytes | str:
    """Assistant audio as its raw PCM; every other event as JSON with ``type``."""
    if isinstance(event, api.AssistantAudio):
        return event.pcm
    body = dataclasses.asdict(event)
    return json.dumps({"type": _TYPES[type(event)], **body}, default=str)


def ready_message(input_rate: int, output_rate: int) -> str:
    return json.dumps(
        {
            "type": "ready",
            "input_rate": input_rate,
            "output_rate": output_rate,
            "max_audio_bytes": MAX_AUDIO_BYTES,
        }
    )


def snapshot_message(snap: Snapshot, played_seconds: float) -> str:
    body: dict[str, Any] = {
        "type": "snapshot",
        "now": round(snap.now, 3),
        "state": snap.state,
        "session_age_seconds": round(snap.session_age_seconds, 3),
        "threshold_seconds": snap.threshold_seconds,
        "hard_deadline_seconds": snap.hard_deadline_seconds,
        "limit_seconds": snap.limit_seconds,
        "buffer_bytes": snap.buffer_bytes,
        "buffer_cap_bytes": snap.buffer_cap_bytes,
        "sessions": [
            {
                "id": s.session_id,
                "role": s.role,
                "age_seconds": round(s.age_seconds, 3),
                "ready": s.ready,
            }
            for s in snap.sessions
        ],
        "handoffs": int(snap.metrics.get("handoffs", 0)),
        "recoveries": int(snap.metrics.get("recoveries", 0)),
        "played_seconds": round(played_seconds, 3),
        "muted": snap.muted,
    }
    return json.dumps(body)

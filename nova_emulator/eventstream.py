"""AWS event-stream framing (``application/vnd.amazon.eventstream``), sans-IO.

The SDK's own codec (``smithy_aws_event_stream``) encodes and checks frames (prelude CRC,
message CRC, header types), so the server and the SDK can never disagree on the format.
What it lacks is an incremental reader for bytes that arrive in arbitrary DATA pieces:
:class:`FrameReader` adds that. The Nova Sonic shapes (a signed outer frame around an inner
``chunk`` frame whose payload is ``{"bytes": base64}``) are built and read here too.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from smithy_aws_event_stream.events import (
    HEADERS_DICT,
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    Event,
    EventHeaderEncoder,
    EventMessage,
)
from smithy_aws_event_stream.exceptions import EventError

PRELUDE_BYTES = 12
_OVERHEAD = 16  # prelude (12) + message CRC (4)
MAX_FRAME_BYTES = MAX_HEADERS_LENGTH + MAX_PAYLOAD_LENGTH + _OVERHEAD


class FramingError(ValueError):
    """Bytes that are not a well-formed event-stream frame (bad length, CRC or header)."""


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One decoded frame: its headers, its payload, and the raw header bytes (for signing)."""

    headers: HEADERS_DICT
    payload: bytes
    header_bytes: bytes


def encode(headers: HEADERS_DICT, payload: bytes = b"") -> bytes:
    """One frame, with its prelude and both CRCs."""
    try:
        return EventMessage(headers=dict(headers), payload=payload).encode()
    except EventError as e:
        raise FramingError(f"cannot encode frame: {e}") from None


def encode_headers(headers: HEADERS_DICT) -> bytes:
    """The header section alone, as it is hashed for a chunk signature."""
    encoder = EventHeaderEncoder()
    encoder.encode_headers(headers)
    return encoder.get_result()


def decode(frame: bytes) -> Frame:
    """Decode exactly one complete frame; :class:`FramingError` on anything wrong."""
    if len(frame) < _OVERHEAD:
        raise FramingError(f"frame of {len(frame)} bytes is shorter than its prelude")
    total, headers_length = struct.unpack("!II", frame[:8])
    if total != len(frame):
        raise FramingError(f"frame says {total} bytes but has {len(frame)}")
    try:
        event = Event.decode(BytesIO(frame))
    except (EventError, struct.error, KeyError, UnicodeDecodeError, ValueError) as e:
        raise FramingError(f"bad frame: {type(e).__name__}: {e}") from None
    if event is None:  # pragma: no cover - Event.decode returns None only on empty input
        raise FramingError("empty frame")
    header_bytes = frame[PRELUDE_BYTES : PRELUDE_BYTES + headers_length]
    return Frame(
        headers=event.message.headers, payload=event.message.payload, header_bytes=header_bytes
    )


class FrameReader:
    """Turns a byte stream cut anywhere into whole frames.

    ``feed`` returns the frames completed so far; a length that cannot be a frame raises
    :class:`FramingError` at once, without waiting for megabytes that will never be valid.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= PRELUDE_BYTES:
            total, headers_length = struct.unpack_from("!II", self._buf, 0)
            if total < _OVERHEAD or total > MAX_FRAME_BYTES or headers_length > total - _OVERHEAD:
                raise FramingError(f"impossible frame length {total} (headers {headers_length})")
            if len(self._buf) < total:
                break
            frames.append(decode(bytes(self._buf[:total])))
            del self._buf[:total]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame (non-zero at the end = truncated)."""
        return len(self._buf)


# ---- the Nova Sonic shapes -----------------------------------------------------------------

CHUNK_HEADERS: dict[str, Any] = {
    ":message-type": "event",
    ":event-type": "chunk",
    ":content-type": "application/json",
}


def chunk_frame(event: dict[str, Any]) -> bytes:
    """An inner ``chunk`` frame carrying one Nova Sonic event as ``{"bytes": base64(json)}``."""
    raw = json.dumps(event, separators=(",", ":")).encode()
    payload = json.dumps({"bytes": base64.b64encode(raw).decode("ascii")}).encode()
    return encode(CHUNK_HEADERS, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    """A modeled exception; ``exception_type`` is the union's member (``validationException``)."""
    headers = {
        ":message-type": "exception",
        ":exception-type": exception_type,
        ":content-type": "application/json",
    }
    return encode(headers, json.dumps({"message": message}).encode())


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled error (``:message-type: error``); the SDK raises it as such."""
    return encode({":message-type": "error", ":error-code": code, ":error-message": message})


def signed_frame(inner: bytes, date: datetime.datetime, signature: bytes) -> bytes:
    """The outer frame a client sends: ``:date`` and the raw ``:chunk-signature``."""
    return encode({":date": date, ":chunk-signature": signature}, inner)


class ChunkError(ValueError):
    """An inner frame that is not a ``chunk`` event carrying base64 JSON."""


def read_chunk(inner: Frame) -> dict[str, Any]:
    """The Nova Sonic event inside an inner ``chunk`` frame."""
    kind = inner.headers.get(":message-type")
    etype = inner.headers.get(":event-type")
    if kind != "event" or etype != "chunk":
        raise ChunkError(f"expected a chunk event, got message-type {kind!r} event-type {etype!r}")
    try:
        body = json.loads(inner.payload)
    except (ValueError, UnicodeDecodeError):
        raise ChunkError("chunk payload is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("bytes"), str):
        raise ChunkError('chunk payload must be {"bytes": "<base64>"}')
    try:
        raw = base64.b64decode(body["bytes"], validate=True)
    except (binascii.Error, ValueError):
        raise ChunkError("chunk bytes are not valid base64") from None
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ChunkError("chunk bytes are not a JSON event") from None
    if not isinstance(event, dict):
        raise ChunkError("chunk bytes must hold a JSON object")
    return event

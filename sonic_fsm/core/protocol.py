"""Nova Sonic events: build the input events, parse the output events. Pure functions.

Input events are plain dicts shaped ``{"event": {NAME: {...}}}``, ready for ``json.dumps``.
Output events are parsed into small frozen dataclasses; anything malformed raises
:class:`ProtocolError` with one line naming the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

INTERRUPTED_TEXT = '{ "interrupted" : true }'
SPECULATIVE = "SPECULATIVE"
FINAL = "FINAL"


class ProtocolError(ValueError):
    """A malformed event."""


# ---- input (client to model) -------------------------------------------------------------


def _ev(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"event": {name: body}}


# Nova 2 Sonic ends a user's turn after this pause, by turnDetectionConfiguration's
# endpointingSensitivity (AWS Nova 2 user guide, "Turn-taking controllability").
ENDPOINTING_PAUSE_SECONDS = {"HIGH": 1.5, "MEDIUM": 1.75, "LOW": 2.0}
# Without one: the guide names no default. MEDIUM is the level it recommends for general
# conversation and the middle of the three, so a client tuned to it is wrong by at most
# 0.25 s against either other level; it is what the emulator assumes when none is sent.
DEFAULT_ENDPOINTING = "MEDIUM"


def session_start(
    max_tokens: int = 1024,
    top_p: float = 0.9,
    temperature: float = 0.7,
    endpointing_sensitivity: str = "",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inferenceConfiguration": {
            "maxTokens": max_tokens,
            "topP": top_p,
            "temperature": temperature,
        }
    }
    if endpointing_sensitivity:
        body["turnDetectionConfiguration"] = {"endpointingSensitivity": endpointing_sensitivity}
    return _ev("sessionStart", body)


def prompt_start(
    prompt_name: str,
    voice_id: str,
    output_sample_rate: int = 24000,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``tools``: ``toolSpec`` entries (:meth:`sonic_fsm.tools.Tools.specs`); none, no tools."""
    body: dict[str, Any] = {
        "promptName": prompt_name,
        "textOutputConfiguration": {"mediaType": "text/plain"},
        "audioOutputConfiguration": {
            "mediaType": "audio/lpcm",
            "sampleRateHertz": output_sample_rate,
            "sampleSizeBits": 16,
            "channelCount": 1,
            "voiceId": voice_id,
            "encoding": "base64",
            "audioType": "SPEECH",
        },
    }
    if tools:
        body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
        body["toolConfiguration"] = {"tools": tools}
    return _ev("promptStart", body)


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4")
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for ch in text:
        n = len(ch.encode())
        if size + n > max_bytes:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    if current or not pieces:
        pieces.append("".join(current))
    return pieces


def text_block(
    prompt_name: str, content_name: str, role: str, text: str, max_text_bytes: int
) -> list[dict[str, Any]]:
    """A non-interactive TEXT content block; a long text becomes several textInput events."""
    events = [
        _ev(
            "contentStart",
            {
                "promptName": prompt_name,
                "contentName": content_name,
                "type": "TEXT",
                "interactive": False,
                "role": role,
                "textInputConfiguration": {"mediaType": "text/plain"},
            },
        )
    ]
    for piece in split_utf8(text, max_text_bytes):
        events.append(
            _ev(
                "textInput",
                {"promptName": prompt_name, "contentName": content_name, "content": piece},
            )
        )
    events.append(content_end(prompt_name, content_name))
    return events


def audio_content_start(
    prompt_name: str, content_name: str, sample_rate: int = 16000
) -> dict[str, Any]:
    return _ev(
        "contentStart",
        {
            "promptName": prompt_name,
            "contentName": content_name,
            "type": "AUDIO",
            "interactive": True,
            "role": "USER",
            "audioInputConfiguration": {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": sample_rate,
                "sampleSizeBits": 16,
                "channelCount": 1,
                "audioType": "SPEECH",
                "encoding": "base64",
            },
        },
    )


def audio_input(prompt_name: str, content_name: str, pcm: bytes) -> dict[str, Any]:
    return _ev(
        "audioInput",
        {
            "promptName": prompt_name,
            "contentName": content_name,
            "content": base64.b64encode(pcm).decode("ascii"),
        },
    )


def tool_result_block(
    prompt_name: str, content_name: str, tool_use_id: str, result: Any
) -> list[dict[str, Any]]:
    return [
        _ev(
            "contentStart",
            {
                "promptName": prompt_name,
                "contentName": content_name,
                "interactive": False,
                "type": "TOOL",
                "role": "TOOL",
                "toolResultInputConfiguration": {
                    "toolUseId": tool_use_id,
                    "type": "TEXT",
                    "textInputConfiguration": {"mediaType": "text/plain"},
                },
            },
        ),
        _ev(
            "toolResult",
            {
                "promptName": prompt_name,
                "contentName": content_name,
                "content": json.dumps(result),
            },
        ),
        content_end(prompt_name, content_name),
    ]


def content_end(prompt_name: str, content_name: str) -> dict[str, Any]:
    return _ev("contentEnd", {"promptName": prompt_name, "contentName": content_name})


def prompt_end(prompt_name: str) -> dict[str, Any]:
    return _ev("promptEnd", {"promptName": prompt_name})


def session_end() -> dict[str, Any]:
    return _ev("sessionEnd", {})


def event_name(event: dict[str, Any]) -> str:
    """The NAME of ``{"event": {NAME: ...}}``; ProtocolError when the shape is wrong."""
    inner = event.get("event") if isinstance(event, dict) else None
    if not isinstance(inner, dict) or len(inner) != 1:
        raise ProtocolError("event: expected {'event': {NAME: {...}}}")
    name = next(iter(inner))
    if not isinstance(inner[name], dict):
        raise ProtocolError(f"event {name}: body must be an object")
    return name


# ---- output (model to client) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompletionStart:
    completion_id: str


@dataclass(frozen=True, slots=True)
class ContentStart:
    content_id: str
    type: str
    role: str
    stage: str | None


@dataclass(frozen=True, slots=True)
class TextOutput:
    content_id: str
    role: str
    text: str

    @property
    def interrupted(self) -> bool:
        return _is_interrupted(self.text)


@dataclass(frozen=True, slots=True)
class AudioOutput:
    content_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class ToolUse:
    content_id: str
    tool_name: str
    tool_use_id: str
    content: str


@dataclass(frozen=True, slots=True)
class ContentEnd:
    content_id: str
    type: str
    stop_reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    total_input_tokens: int
    total_output_tokens: int


@dataclass(frozen=True, slots=True)
class CompletionEnd:
    stop_reason: str


OutputEvent = (
    CompletionStart
    | ContentStart
    | TextOutput
    | AudioOutput
    | ToolUse
    | ContentEnd
    | Usage
    | CompletionEnd
)


def _is_interrupted(text: str) -> bool:
    if "interrupted" not in text:
        return False
    try:
        return json.loads(text) == {"interrupted": True}
    except ValueError:
        return False


def _field(name: str, body: dict[str, Any], key: str, default: Any = ...) -> Any:
    if key in body:
        return body[key]
    if default is ...:
        raise ProtocolError(f"event {name}: missing field {key}")
    return default


def _stage(body: dict[str, Any]) -> str | None:
    raw = body.get("additionalModelFields")
    if not raw:
        return None
    try:
        fields = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ProtocolError("event contentStart: additionalModelFields is not JSON") from None
    return fields.get("generationStage") if isinstance(fields, dict) else None


def parse_output(event: dict[str, Any]) -> OutputEvent | None:
    """Parse one output event; ``None`` for an event type this client does not use."""
    name = event_name(event)
    body = event["event"][name]
    match name:
        case "completionStart":
            return CompletionStart(str(body.get("completionId", "")))
        case "contentStart":
            return ContentStart(
                str(_field(name, body, "contentId")),
                str(_field(name, body, "type")),
                str(_field(name, body, "role", "")),
                _stage(body),
            )
        case "textOutput":
            return TextOutput(
                str(_field(name, body, "contentId")),
                str(_field(name, body, "role", "")),
                str(_field(name, body, "content")),
            )
        case "audioOutput":
            content = _field(name, body, "content")
            try:
                pcm = base64.b64decode(content, validate=True)
            except (binascii.Error, TypeError):
                raise ProtocolError("event audioOutput: content is not base64") from None
            return AudioOutput(str(_field(name, body, "contentId")), pcm)
        case "toolUse":
            return ToolUse(
                str(_field(name, body, "contentId")),
                str(_field(name, body, "toolName")),
                str(_field(name, body, "toolUseId")),
                str(_field(name, body, "content", "{}")),
            )
        case "contentEnd":
            return ContentEnd(
                str(_field(name, body, "contentId")),
                str(_field(name, body, "type", "")),
                str(_field(name, body, "stopReason", "")),
            )
        case "usageEvent":
            return Usage(
                int(body.get("totalInputTokens", 0)), int(body.get("totalOutputTokens", 0))
            )
        case "completionEnd":
            return CompletionEnd(str(body.get("stopReason", "")))
    return None

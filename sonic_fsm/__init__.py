"""sonic-fsm: a Nova Sonic conversation that outlives the session limit.

The public API (see the README's "Embedding"): :class:`Conversation`, its events, and
:class:`Settings`. Loaded on first use, so ``import sonic_fsm.settings`` and the command line
stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonic_fsm.api import (
        AssistantAudio,
        AudioFormatError,
        Conversation,
        ConversationClosed,
        Ended,
        Error,
        Event,
        HandoffBegun,
        HandoffDone,
        StateChanged,
        StopPlayback,
        ToolCall,
        ToolResult,
        Transcript,
    )
    from sonic_fsm.core.snapshot import Snapshot
    from sonic_fsm.settings import Settings, load

_FROM = {
    "AssistantAudio": "sonic_fsm.api",
    "AudioFormatError": "sonic_fsm.api",
    "Conversation": "sonic_fsm.api",
    "ConversationClosed": "sonic_fsm.api",
    "Ended": "sonic_fsm.api",
    "Error": "sonic_fsm.api",
    "Event": "sonic_fsm.api",
    "HandoffBegun": "sonic_fsm.api",
    "HandoffDone": "sonic_fsm.api",
    "StateChanged": "sonic_fsm.api",
    "StopPlayback": "sonic_fsm.api",
    "ToolCall": "sonic_fsm.api",
    "ToolResult": "sonic_fsm.api",
    "Transcript": "sonic_fsm.api",
    "Settings": "sonic_fsm.settings",
    "load": "sonic_fsm.settings",
    "Snapshot": "sonic_fsm.core.snapshot",
}

__all__ = [
    "AssistantAudio",
    "AudioFormatError",
    "Conversation",
    "ConversationClosed",
    "Ended",
    "Error",
    "Event",
    "HandoffBegun",
    "HandoffDone",
    "Settings",
    "Snapshot",
    "StateChanged",
    "StopPlayback",
    "ToolCall",
    "ToolResult",
    "Transcript",
    "load",
]


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module 'sonic_fsm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

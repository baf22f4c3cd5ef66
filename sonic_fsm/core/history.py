"""The conversation's history and the rules for sending it to a new session.

Documented rules: the first message is USER, messages keep conversation order, texts go as
non-interactive blocks, the total and per-text sizes are bounded (a long message is split
into several text inputs inside one content block, see :func:`sonic_fsm.core.protocol.text_block`).
"""

from __future__ import annotations

from dataclasses import dataclass

USER = "USER"
ASSISTANT = "ASSISTANT"


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    text: str


def merge_neighbours(messages: list[Message]) -> list[Message]:
    """Same-role neighbours become one message (texts joined by a space)."""
    out: list[Message] = []
    for m in messages:
        if not m.text.strip():
            continue
        if out and out[-1].role == m.role:
            out[-1] = Message(m.role, f"{out[-1].text} {m.text}")
        else:
            out.append(m)
    return out


def _drop_leading_assistant(messages: list[Message]) -> list[Message]:
    i = 0
    while i < len(messages) and messages[i].role != USER:
        i += 1
    return messages[i:]


def size(messages: list[Message]) -> int:
    return sum(len(m.text.encode()) for m in messages)


def for_new_session(
    messages: list[Message], max_messages: int, max_total_bytes: int
) -> list[Message]:
    """The most recent history that obeys the rules: USER first, within count and bytes."""
    out = _drop_leading_assistant(merge_neighbours(messages))
    if len(out) > max_messages:
        out = _drop_leading_assistant(out[-max_messages:])
    while out and size(out) > max_total_bytes:
        if len(out) == 1:
            data = out[0].text.encode()[-max_total_bytes:]
            out = [Message(out[0].role, data.decode(errors="ignore"))]
            break
        out = _drop_leading_assistant(out[1:])
    return out

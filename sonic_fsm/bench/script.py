"""Test conversations made of the test signal: who says what, when."""

from __future__ import annotations

from dataclasses import dataclass

from sonic_fsm import testsignal

RATE = 16000


@dataclass(frozen=True, kw_only=True)
class Line:
    number: int
    at: float  # seconds from the start


def evenly(count: int, spacing: float, first: float = 1.0, start_number: int = 1) -> list[Line]:
    return [Line(number=start_number + i, at=first + i * spacing) for i in range(count)]


def render(lines: list[Line], tail_seconds: float = 2.0) -> bytes:
    """16 kHz 16-bit mono PCM with each line's utterance at its time, silence elsewhere."""
    parts = sorted(lines, key=lambda line: line.at)
    out = bytearray()
    for line in parts:
        at = int(line.at * RATE) * 2
        if at < len(out):
            raise ValueError(f"utterance {line.number} at {line.at}s overlaps the one before")
        out.extend(bytes(at - len(out)))
        out += testsignal.utterance(line.number, RATE)
    out.extend(bytes(int(tail_seconds * RATE) * 2))
    return bytes(out)

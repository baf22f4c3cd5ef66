"""Test conversations made of the test signal: who says what, when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sonic_fsm import testsignal

RATE = 16000


@dataclass(frozen=True, kw_only=True)
class Line:
    number: int
    at: float  # seconds from the start
    tool: bool = False  # a tool question (``*CN#``) rather than an utterance (``*N#``)

    def pcm(self) -> bytes:
        if self.tool:
            return testsignal.tool_question(self.number, RATE)
        return testsignal.utterance(self.number, RATE)


def evenly(
    count: int, spacing: float, first: float = 1.0, start_number: int = 1, tool_every: int = 0
) -> list[Line]:
    """``count`` lines ``spacing`` s apart; with ``tool_every=k``, every k-th is a tool question."""
    return [
        Line(
            number=start_number + i,
            at=first + i * spacing,
            tool=tool_every > 0 and (i + 1) % tool_every == 0,
        )
        for i in range(count)
    ]


def render(lines: list[Line], tail_seconds: float = 2.0) -> bytes:
    """16 kHz 16-bit mono PCM with each line's utterance at its time, silence elsewhere."""
    parts = sorted(lines, key=lambda line: line.at)
    out = bytearray()
    for line in parts:
        at = int(line.at * RATE) * 2
        if at < len(out):
            raise ValueError(f"utterance {line.number} at {line.at}s overlaps the one before")
        out.extend(bytes(at - len(out)))
        out += line.pcm()
    out.extend(bytes(int(tail_seconds * RATE) * 2))
    return bytes(out)


class ReactiveSource:
    """Speaks lines at their times, and reacts to the machine like a person who cannot
    know a hand-off is under way: when BUFFERING starts it says something more once the
    answer being played has ended (after ``late_at[n]`` seconds at the n-th hand-off, to
    straddle the moment the next session becomes ready), and at the hand-offs listed in
    ``barge_in_at`` it talks over the answer instead; with ``react_with_tool`` what it says
    then is a tool question. Everything it says is kept in ``recorded`` for the oracle.
    """

    def __init__(
        self,
        lines: list[Line],
        state: Callable[[], str],
        speaker_busy: Callable[[], bool],
        chunk_frames: int = 1024,
        barge_in_at: tuple[int, ...] = (2,),
        late_at: dict[int, float] | None = None,
        extra_start: int = 1001,
        tail_seconds: float = 3.0,
        react_with_tool: bool = False,
    ) -> None:
        self.react_with_tool = react_with_tool
        self.lines = sorted(lines, key=lambda line: line.at)
        self.state = state
        self.speaker_busy = speaker_busy
        self.chunk_bytes = chunk_frames * 2
        self.chunk_seconds = chunk_frames / RATE
        self.barge_in_at = barge_in_at
        self.late_at = late_at or {}
        self.next_extra = extra_start
        self.tail_seconds = tail_seconds
        self.recorded = bytearray()
        self.extras: list[int] = []
        self.handoffs_seen = 0

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pending = bytearray()
        queue = list(self.lines)
        last_state = self.state()
        react_at: float | None = None
        react_waits_for_quiet = False
        end = (self.lines[-1].at if self.lines else 0.0) + 8.0 + self.tail_seconds
        i = 0
        while True:
            now = t0 + i * self.chunk_seconds
            delay = now - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t = now - t0
            state = self.state()
            if state == "BUFFERING" and last_state != "BUFFERING":
                self.handoffs_seen += 1
                n = self.handoffs_seen
                barge = n in self.barge_in_at
                delay = 0.5 if barge else self.late_at.get(n, 0.3)
                react_at, react_waits_for_quiet = t + delay, not barge
            last_state = state
            due = react_at is not None and t >= react_at and not pending
            if due and not (react_waits_for_quiet and self.speaker_busy()):
                pending += Line(number=self.next_extra, at=t, tool=self.react_with_tool).pcm()
                self.extras.append(self.next_extra)
                self.next_extra += 1
                react_at = None
            while queue and queue[0].at <= t and not pending:
                pending += queue.pop(0).pcm()
                end = max(end, t + 8.0 + self.tail_seconds)
            chunk = bytes(pending[: self.chunk_bytes]).ljust(self.chunk_bytes, b"\x00")
            del pending[: self.chunk_bytes]
            self.recorded += chunk
            yield chunk
            i += 1
            if not queue and not pending and react_at is None and t >= end:
                return

    async def aclose(self) -> None:
        pass

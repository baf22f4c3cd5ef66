"""Test conversations made of the test signal: who says what, when.

A :class:`Line` is one utterance: its number, when it is said, the pauses between its keys
(a person drawing breath mid-sentence) and, for a quick follow-up, how long after the answer
to the line before began. :func:`render` writes lines into a fixed WAV (a follow-up at the
time its answer is expected); :class:`ReactiveSource` says them live and reacts to what the
speaker actually does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sonic_fsm import testsignal

RATE = 16000
# Where an answer begins after its utterance ends, on an ordinary turn of the emulator at its
# default endpointing: MEDIUM's 1.75 s pause, then its 150 ms before the first audio.
ANSWER_BEGINS_S = 1.9
FOLLOW_UP_GIVE_UP_S = 10.0  # a follow-up whose answer never began is said this late anyway


@dataclass(frozen=True, kw_only=True)
class Line:
    number: int
    at: float  # seconds from the start (a follow-up: where it lands on an ordinary turn)
    pauses: tuple[float, ...] = ()  # the silence between its keys, see testsignal.tones
    follow_up: float | None = None  # said this long after the answer to the one before began
    tool: bool = False  # a tool question (``*CN#``, no pauses) rather than an utterance

    def pcm(self) -> bytes:
        if self.tool:
            return testsignal.tool_question(self.number, RATE)
        return testsignal.utterance(self.number, RATE, self.pauses)

    @property
    def seconds(self) -> float:
        return len(self.pcm()) / (2 * RATE)


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


def random_pauses(n: int, low: float, high: float, rng: random.Random) -> tuple[float, ...]:
    """Pauses between the keys of utterance ``n``, each drawn from [low, high] seconds (none
    shorter than the 40 ms gap between keys)."""
    if high <= testsignal.GAP_S:
        return ()
    gaps = len(testsignal.keys_of(n)) - 1
    return tuple(max(testsignal.GAP_S, rng.uniform(low, high)) for _ in range(gaps))


def conversation(
    count: int,
    spacing: float,
    first: float = 1.0,
    pause_inside: tuple[float, float] = (0.0, 0.0),
    follow_ups: float = 0.0,
    follow_up_after: tuple[float, float] = (0.2, 3.0),
    answer_begins: float = ANSWER_BEGINS_S,
    seed: int = 0,
) -> list[Line]:
    """``count`` utterances ``spacing`` s apart, numbered from 1, with pauses inside drawn
    from ``pause_inside``; after a share ``follow_ups`` of them the user says one more (the
    next number) ``follow_up_after`` s after the answer began (``answer_begins`` s after the
    utterance ended, in a fixed WAV)."""
    rng = random.Random(seed)
    lines: list[Line] = []
    number = 1
    for i in range(count):
        line = Line(
            number=number, at=first + i * spacing, pauses=random_pauses(number, *pause_inside, rng)
        )
        lines.append(line)
        number += 1
        if rng.random() < follow_ups:
            delay = rng.uniform(*follow_up_after)
            at = line.at + line.seconds + answer_begins + delay
            pauses = random_pauses(number, *pause_inside, rng)
            lines.append(Line(number=number, at=at, pauses=pauses, follow_up=delay))
            number += 1
    return lines


def render(lines: list[Line], tail_seconds: float = 2.0) -> bytes:
    """16 kHz 16-bit mono PCM with each line's utterance at its time, silence elsewhere."""
    parts = sorted(lines, key=lambda line: line.at)
    out = bytearray()
    for line in parts:
        at = int(line.at * RATE) * 2
        if at < len(out):
            raise ValueError(f"utterance {line.number} at {line.at:g}s overlaps the one before")
        out.extend(bytes(at - len(out)))
        out += line.pcm()
    out.extend(bytes(int(tail_seconds * RATE) * 2))
    return bytes(out)


class ReactiveSource:
    """Speaks lines at their times, and reacts to the machine like a person who cannot
    know a hand-off is under way: when BUFFERING starts it says something more once the
    answer being played has ended (after ``late_at[n]`` seconds at the n-th hand-off, to
    straddle the moment the next session becomes ready), and at the hand-offs listed in
    ``barge_in_at`` it talks over the answer instead (``barge_in_delay[n]`` s after BUFFERING
    began, 0.5 by default); with ``react_with_tool`` what it says then is a tool question. A
    follow-up line is said its ``follow_up`` seconds after the speaker began the answer to the
    line before. What it says in reaction has pauses inside drawn from ``pause_inside``.
    Nothing is begun less than ``min_gap`` seconds after the last utterance ended (longer
    than the service's endpointing, two utterances are never heard as one turn). Everything
    it says is kept for the oracle: in ``recorded``, or handed to ``record`` (to write it to
    disk as it goes); and each state it saw, with the time, in ``states``.
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
        barge_in_delay: dict[int, float] | None = None,
        pause_inside: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        min_gap: float = 0.0,
        record: Callable[[bytes], None] | None = None,
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
        self.record = record or self.recorded.extend
        self.extras: list[int] = []
        self.handoffs_seen = 0
        self.barge_in_delay = barge_in_delay or {}
        self.pause_inside = pause_inside
        self.rng = random.Random(seed)
        self.min_gap = min_gap
        self.states: list[tuple[float, str]] = []

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pending = bytearray()
        queue = list(self.lines)
        last_state = self.state()
        react_at: float | None = None
        react_waits_for_quiet = False
        end = (self.lines[-1].at if self.lines else 0.0) + 8.0 + self.tail_seconds
        busy = False
        answer_began: float | None = None  # since the last line was said
        said_until = float("-inf")  # when the last utterance ended
        i = 0
        while True:
            now = t0 + i * self.chunk_seconds
            delay = now - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t = now - t0
            state = self.state()
            if state != last_state or not self.states:
                self.states.append((t, state))
            if state == "BUFFERING" and last_state != "BUFFERING":
                self.handoffs_seen += 1
                n = self.handoffs_seen
                barge = n in self.barge_in_at
                delay = self.barge_in_delay.get(n, 0.5) if barge else self.late_at.get(n, 0.3)
                react_at, react_waits_for_quiet = t + delay, not barge
            last_state = state
            was_busy, busy = busy, self.speaker_busy()
            if busy and not was_busy and not pending and answer_began is None:
                answer_began = t
            if pending:
                said_until = t + self.chunk_seconds
            free = not pending and t >= said_until + self.min_gap
            due = react_at is not None and t >= react_at and free
            if due and not (react_waits_for_quiet and busy):
                n = self.next_extra
                tool = self.react_with_tool
                pauses = () if tool else random_pauses(n, *self.pause_inside, self.rng)
                pending += Line(number=n, at=t, pauses=pauses, tool=tool).pcm()
                self.extras.append(n)
                self.next_extra += 1
                react_at = None
            free = not pending and t >= said_until + self.min_gap
            if queue and free and self._due(queue[0], t, answer_began):
                pending += queue.pop(0).pcm()
                answer_began = None
                end = max(end, t + 8.0 + self.tail_seconds)
            chunk = bytes(pending[: self.chunk_bytes]).ljust(self.chunk_bytes, b"\x00")
            del pending[: self.chunk_bytes]
            self.record(chunk)
            yield chunk
            i += 1
            if not queue and not pending and react_at is None and t >= end:
                return

    @staticmethod
    def _due(line: Line, t: float, answer_began: float | None) -> bool:
        if line.follow_up is None:
            return line.at <= t
        if answer_began is not None:
            return t >= answer_began + line.follow_up
        return t >= line.at + FOLLOW_UP_GIVE_UP_S

    async def aclose(self) -> None:
        pass

"""A user who talks like a person, for whole conversations on the emulator, and the scoring
of what a listener would complain about.

The user says test-signal utterances (``*N#``) with pauses between the keys (a breath in the
middle of a sentence), and starts each one relative to something they could notice (the
previous answer starting or ending) or, to aim at the moments a hand-off is fragile, relative
to the machine entering a state, at any moment of the answer (even as it begins, before a
word of it was heard). They never speak before some answer has begun (or they gave up
waiting), nor sooner after their last utterance than the service's endpointing pause (the
service would hear the two as one turn). What they said and when is recorded for the oracle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from sonic_fsm import testsignal
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.bench import oracle

RATE = 16000
# Speaking this soon after an answer began, the user did not wait to hear it: it waits for
# them (or is cut), and what they said meanwhile is answered after it.
SPOKE_OVER_S = 0.35


@dataclass(frozen=True, kw_only=True)
class Say:
    number: int
    key_pauses: tuple[float, ...]  # extra silence after each key but the last
    after: str  # "answer_start", "answer_end", or a state name: BUFFERING, HANDOFF, PROMOTED
    offset: float


def utterance_pcm(say: Say) -> bytes:
    keys = f"*{say.number}#"
    out = bytearray()
    for i, key in enumerate(keys):
        out += (np.clip(testsignal.tones(key, RATE), -1, 1) * 32767).astype("<i2").tobytes()
        if i < len(keys) - 1 and i < len(say.key_pauses):
            out += bytes(int(say.key_pauses[i] * RATE) * 2)
    return bytes(out)


@dataclass
class Spoken:
    number: int
    start: float  # seconds from the start of the conversation
    end: float


@dataclass
class Person:
    """An audio source that speaks ``plan`` and reacts to the speaker and the machine."""

    plan: list[Say]
    sink: TimelineSink
    transitions: Callable[[], list[tuple[float, str]]]  # (loop time, state entered)
    chunk_frames: int = 1024
    wait_limit: float = 8.0  # a reaction that never comes: speak anyway after this long
    turn_pause: float = 0.0  # the service's endpointing pause: a shorter gap merges two turns
    recorded: bytearray = field(default_factory=bytearray)
    spoken: list[Spoken] = field(default_factory=list)
    gave_up: set[int] = field(default_factory=set)  # spoke again when no answer had begun
    t0: float = 0.0  # loop time of the first frame

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        t0 = self.t0 = loop.time()
        chunk = self.chunk_frames * 2
        period = self.chunk_frames / RATE
        pending = bytearray()
        queue = list(self.plan)
        said_end: float | None = None  # loop time the last utterance ended
        answer_started: float | None = None
        answer_ended: float | None = None
        i = 0
        while True:
            now = t0 + i * period
            delay = now - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sounding = self.sink.queued_seconds(now) > 0
            if said_end is not None and now >= said_end and answer_started is None and sounding:
                answer_started = now
            if answer_started is not None and answer_ended is None and not sounding:
                answer_ended = now
            if queue and not pending and self._due(queue[0], said_end, answer_started,
                                                   answer_ended, now):  # fmt: skip
                say = queue.pop(0)
                if self.spoken and answer_started is None:
                    self.gave_up.add(self.spoken[-1].number)
                pcm = utterance_pcm(say)
                pending += pcm
                start = now - t0
                self.spoken.append(Spoken(say.number, start, start + len(pcm) / (2 * RATE)))
                said_end = now + len(pcm) / (2 * RATE)
                answer_started = answer_ended = None
            out = bytes(pending[:chunk]).ljust(chunk, b"\x00")
            del pending[:chunk]
            self.recorded += out
            yield out
            i += 1
            if not queue and not pending and said_end is not None and now - said_end >= 10:
                return

    def _due(
        self,
        say: Say,
        said_end: float | None,
        answer_started: float | None,
        answer_ended: float | None,
        now: float,
    ) -> bool:
        if said_end is None:
            return now >= say.offset  # the first utterance: at its offset from the start
        if now < said_end + self.turn_pause:
            return False
        if answer_started is None:
            return now - said_end >= self.wait_limit  # never answered: speak anyway
        if say.after == "answer_start":
            return now >= answer_started + say.offset
        if say.after == "answer_end":
            return answer_ended is not None and now >= answer_ended + say.offset
        entered = [t for t, state in self.transitions() if state == say.after and t >= said_end]
        if entered:
            return now >= entered[0] + say.offset
        ended = answer_ended if answer_ended is not None else now
        return now - ended >= self.wait_limit / 2  # no hand-off came: speak anyway

    async def aclose(self) -> None:
        pass


@dataclass
class Verdict:
    score: oracle.Score
    delays: dict[int, float]  # reply delay in seconds per utterance

    def not_waited_for(self, person: Person) -> set[int]:
        """Utterances whose reply the user did not wait for: they spoke again before it
        began (having heard another answer begin) or as it began, before they could hear
        it (:data:`SPOKE_OVER_S`), so it waited for them or was cut, as it must;
        and those they spoke before its last beginning (their replies come after it)."""
        said = {sp.number: sp for sp in person.spoken}
        last: dict[int, float] = {}
        for m in testsignal.decode_marks(bytes(person.sink.timeline), oracle.OUTPUT_RATE):
            if m.kind == "A":
                last[m.number] = m.start / oracle.OUTPUT_RATE
        out: set[int] = set()
        for n, ms in sorted(self.score.reply_delay_ms.items()):
            began = said[n].end + ms / 1000
            if n in person.gave_up or not any(
                m > n and sp.start < began + SPOKE_OVER_S for m, sp in said.items()
            ):
                continue
            until = max(began + SPOKE_OVER_S, last.get(n, began))
            out |= {n} | {m for m, sp in said.items() if m > n and sp.start < until}
        return out

    def problems(
        self, added_limit: float, ordinary: float, exempt: set[int], talk_over_slack_ms: float = 0
    ) -> list[str]:
        """What a listener would complain about. ``talk_over_slack_ms``: how much assistant
        audio past the oracle's grace is forgiven (real time: the barge-in's round trip)."""
        s = self.score
        out = []
        if s.lost:
            out.append(f"lost {s.lost}")
        if s.answered_twice:
            out.append(f"answered twice {s.answered_twice}")
        if s.cut_without_barge_in:
            out.append(f"truncated without a barge-in {s.cut_without_barge_in}")
        if s.unexpected:
            out.append(f"answers to nothing said {s.unexpected}")
        if any(ms > talk_over_slack_ms for ms in s.talk_over_ms.values()):
            out.append(f"talked over {s.talk_over_ms}")
        late = {
            n: round(d - ordinary, 3)
            for n, d in self.delays.items()
            if d - ordinary > added_limit and n not in exempt
        }
        if late:
            out.append(f"replies late by (s) {late}")
        return out


def judge(person: Person, sink: TimelineSink) -> Verdict:
    score = oracle.score(bytes(person.recorded), bytes(sink.timeline))
    delays = {n: ms / 1000 for n, ms in score.reply_delay_ms.items()}
    return Verdict(score, delays)

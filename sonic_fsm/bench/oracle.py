"""The oracle: what was spoken against what was heard, counted.

Utterances are decoded from the input (``*N#``), answers from the speaker's timeline
(``A N #`` … ``B N #``). An answer is whole when both its marks were heard, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sonic_fsm.testsignal import Mark, answer, decode_marks

INPUT_RATE = 16000
OUTPUT_RATE = 24000


@dataclass
class Score:
    spoken: int = 0
    answered_once: int = 0
    lost: list[int] = field(default_factory=list)
    answered_twice: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)  # began but never ended
    restarted: list[int] = field(default_factory=list)  # began more than once
    cut_without_barge_in: list[int] = field(default_factory=list)  # truncated, nobody spoke
    reply_delay_ms: dict[int, float] = field(default_factory=dict)
    unexpected: list[int] = field(default_factory=list)  # answers to nothing spoken

    def as_dict(self) -> dict[str, object]:
        return {
            "utterances_spoken": self.spoken,
            "answered_once": self.answered_once,
            "utterances_lost": len(self.lost),
            "answered_twice": len(self.answered_twice),
            "answers_truncated": len(self.truncated),
            "lost_ids": self.lost,
            "twice_ids": self.answered_twice,
            "truncated_ids": self.truncated,
            "answers_restarted": len(self.restarted),
            "cut_without_barge_in": len(self.cut_without_barge_in),
            "restarted_ids": self.restarted,
            "unexpected_ids": self.unexpected,
        }


def score_marks(spoken: list[Mark], heard: list[Mark]) -> Score:
    s = Score(spoken=len(spoken))
    ends = {m.number: m.end / INPUT_RATE for m in spoken}
    starts: dict[int, list[Mark]] = {}
    whole: dict[int, int] = {}
    open_answers: dict[int, Mark] = {}
    for m in heard:
        if m.kind == "A":
            starts.setdefault(m.number, []).append(m)
            open_answers[m.number] = m
        elif m.kind == "B" and m.number in open_answers:
            del open_answers[m.number]
            whole[m.number] = whole.get(m.number, 0) + 1
    for n in ends:
        began = starts.get(n, [])
        if not began:
            s.lost.append(n)
            continue
        s.reply_delay_ms[n] = 1000 * (began[0].start / OUTPUT_RATE - ends[n])
        if whole.get(n, 0) >= 2:
            s.answered_twice.append(n)
        else:
            s.answered_once += 1
        if whole.get(n, 0) == 0:
            s.truncated.append(n)
        if len(began) > 1:
            s.restarted.append(n)
    spoken_at = [m.start / INPUT_RATE for m in spoken]
    for n in s.truncated:
        if not any(_talked_over(n, a.start / OUTPUT_RATE, spoken_at) for a in starts[n]):
            s.cut_without_barge_in.append(n)
    s.unexpected = sorted(n for n in starts if n not in ends)
    return s


def _talked_over(n: int, began: float, spoken_at: list[float]) -> bool:
    """Did the user start speaking while answer ``n``, begun at ``began``, was still due?"""
    length = len(answer(n, OUTPUT_RATE)) / (2 * OUTPUT_RATE)
    return any(began <= t <= began + length for t in spoken_at)


def score(input_pcm: bytes, output_pcm: bytes) -> Score:
    """Score a run from its input (16 kHz) and its speaker timeline (24 kHz)."""
    spoken = [m for m in decode_marks(input_pcm, INPUT_RATE) if m.kind == "*"]
    heard = [m for m in decode_marks(output_pcm, OUTPUT_RATE) if m.kind in "AB"]
    return score_marks(spoken, heard)

"""The oracle: what was spoken against what was heard, counted as a listener would complain.

Utterances are decoded from the input (``*N#``, and tool questions ``*CN#``), answers from the
speaker's timeline (``A N #`` … ``B N #``). An answer is whole when both its marks were heard,
in order; one cut in its start mark (a barge-in in its first 0.6 s) still began.
Besides lost / twice / truncated / restarted it counts:

- **talk-over**: assistant audio sounding from :data:`TALK_OVER_GRACE_SECONDS` after the start
  of a user utterance until that utterance ends (a barge-in nobody honoured), read from the
  speaker timeline itself, whichever answer the audio belonged to;
- **reply delay** of every answered utterance (its end to its answer's first audio), and the
  delay added to those spoken during a hand-off (windows given by the caller, e.g. from the
  run's transition log, see :func:`handoff_windows`) against the ordinary ones;
- **unmarked answers**: answer audio that carries no mark, such as the emulator's answer to a
  fragment of an utterance its endpointing split ("I heard the keys *1, ...").

:func:`score_tools` also judges each tool question's answer by the result it carries
(``D R #``: R must be 7 × N).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sonic_fsm.core.metrics import percentile
from sonic_fsm.testsignal import DtmfDecoder, Mark, MarkParser, answer, decode_marks

INPUT_RATE = 16000
OUTPUT_RATE = 24000
TALK_OVER_GRACE_SECONDS = 0.35  # a barge-in honoured within this is not a talk-over
BLOCK_SECONDS = 0.01
SOUNDING_DB = -45.0  # a 10 ms block louder than this (RMS, dBFS) is sounding
BRIDGE_SECONDS = 0.15  # quiet shorter than this inside sound (between syllables) is sound
UNMARKED_MIN_SECONDS = 0.2  # unmarked sound shorter than this is not an answer
CALM_STATES = ("NORMAL", "MONITORING", "STOPPED")  # outside these a hand-off is under way

Window = tuple[float, float]


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
    talk_over_ms: dict[int, float] = field(default_factory=dict)  # talked over, and how long
    during_handoff: list[int] = field(default_factory=list)  # spoken while a hand-off ran
    unmarked_at: list[float] = field(default_factory=list)  # s: answers with no mark began

    @property
    def talk_over(self) -> list[int]:
        return sorted(self.talk_over_ms)

    def delays(self, handoff: bool | None = None) -> list[float]:
        """Reply delays (ms), sorted: all, or only those spoken during (or outside) hand-offs."""
        inside = set(self.during_handoff)
        return sorted(
            d for n, d in self.reply_delay_ms.items() if handoff is None or (n in inside) == handoff
        )

    def added_delays(self) -> list[float]:
        """Delay of each utterance spoken during a hand-off minus the ordinary p50 (ms)."""
        base = percentile(self.delays(handoff=False), 50) or 0.0
        return [d - base for d in self.delays(handoff=True)]

    def as_dict(self) -> dict[str, object]:
        delays, added = self.delays(), sorted(self.added_delays())
        ordinary = self.delays(handoff=False)
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
            "unmarked_answers": len(self.unmarked_at),
            "unmarked_answers_at": [round(t, 2) for t in self.unmarked_at],
            "talk_over": len(self.talk_over_ms),
            "talk_over_ids": self.talk_over,
            "talk_over_ms": round(sum(self.talk_over_ms.values())),
            "reply_delay_ms_p50": percentile(delays, 50),
            "reply_delay_ms_p99": percentile(delays, 99),
            "reply_delay_ms_max": percentile(delays, 100),
            "utterances_during_handoff": len(self.during_handoff),
            "ordinary_reply_delay_ms_p50": percentile(ordinary, 50),
            "handoff_added_delay_ms_p50": percentile(added, 50),
            "handoff_added_delay_ms_p99": percentile(added, 99),
            "handoff_added_delay_ms_max": percentile(added, 100),
        }


def score_marks(
    spoken: list[Mark],
    heard: list[Mark],
    sounding: np.ndarray | None = None,
    handoffs: Sequence[Window] = (),
) -> Score:
    """Count from the marks; ``sounding`` (see :func:`sounding_blocks`) adds talk-over and
    unmarked answers, ``handoffs`` (seconds) splits the reply delays."""
    s = Score(spoken=len(spoken))
    ends = {m.number: m.end / INPUT_RATE for m in spoken}
    starts: dict[int, list[Mark]] = {}
    whole: dict[int, int] = {}
    open_answers: dict[int, Mark] = {}
    for m in heard:
        if m.kind == "A" and not m.whole:
            m = _cut_start(m, spoken, starts)  # the mark it must have been
        if m.kind == "A" and m.whole:
            starts.setdefault(m.number, []).append(m)
            open_answers[m.number] = m
        elif m.kind == "B" and m.whole and m.number in open_answers:
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
        if not any(_spoken_while_due(n, a.start / OUTPUT_RATE, spoken_at) for a in starts[n]):
            s.cut_without_barge_in.append(n)
    s.unexpected = sorted(n for n in starts if n not in ends)
    s.during_handoff = [
        m.number
        for m in spoken
        if any(a <= m.end / INPUT_RATE and m.start / INPUT_RATE <= b for a, b in handoffs)
    ]
    if sounding is not None:
        for m in spoken:
            ms = _sounding_ms(
                sounding, m.start / INPUT_RATE + TALK_OVER_GRACE_SECONDS, m.end / INPUT_RATE
            )
            if ms > 0:
                s.talk_over_ms[m.number] = ms
        s.unmarked_at = _unmarked(sounding, [a for marks in starts.values() for a in marks])
    return s


def _cut_start(m: Mark, spoken: list[Mark], starts: dict[int, list[Mark]]) -> Mark:
    """An answer cut in its start mark (``A 1`` then silence: a barge-in in its first
    0.6 s) began all the same: it answers the latest utterance spoken before it whose number
    begins with the digits heard and that has no answer yet."""
    at = m.start / OUTPUT_RATE
    for u in sorted(spoken, key=lambda u: -u.end):
        if u.end / INPUT_RATE <= at and u.digits.startswith(m.digits) and u.number not in starts:
            return Mark("A", u.number, m.start, m.end)
    return m


def _spoken_while_due(n: int, began: float, spoken_at: list[float]) -> bool:
    """Did the user start speaking while answer ``n``, begun at ``began``, was still due?"""
    length = len(answer(n, OUTPUT_RATE)) / (2 * OUTPUT_RATE)
    return any(began <= t <= began + length for t in spoken_at)


def sounding_blocks(pcm: bytes, rate: int = OUTPUT_RATE) -> np.ndarray:
    """Per 10 ms block of a timeline: is something sounding? Short quiet inside sound (between
    syllables, between tones) counts as sound."""
    return _bridged(_loud(pcm, rate))


def _loud(pcm: bytes, rate: int) -> np.ndarray:
    """Per whole 10 ms block of ``pcm``: louder than :data:`SOUNDING_DB`?"""
    block = int(rate * BLOCK_SECONDS)
    n = len(pcm) // (2 * block)
    x = np.frombuffer(pcm, dtype="<i2", count=n * block).astype(np.float64)
    power = (x.reshape(n, block) ** 2).mean(axis=1) if n else np.zeros(0)
    return np.asarray(power > (10 ** (SOUNDING_DB / 20) * 32768) ** 2)


def _bridged(loud: np.ndarray) -> np.ndarray:
    bridge = round(BRIDGE_SECONDS / BLOCK_SECONDS)
    idx = np.flatnonzero(loud)
    step = np.diff(idx)
    for g in np.flatnonzero((step > 1) & (step <= bridge)).tolist():
        loud[idx[g] : idx[g + 1]] = True
    return loud


def _sounding_ms(sounding: np.ndarray, start: float, end: float) -> float:
    """Milliseconds of sound in [start, end] seconds."""
    a, b = max(0, int(start / BLOCK_SECONDS)), max(0, int(np.ceil(end / BLOCK_SECONDS)))
    return float(sounding[a:b].sum()) * BLOCK_SECONDS * 1000 if b > a else 0.0


def _unmarked(sounding: np.ndarray, answer_starts: list[Mark]) -> list[float]:
    """Where sound began that no marked answer accounts for (an answer with no mark)."""
    rest = sounding.copy()
    for a in answer_starts:
        length = len(answer(a.number, OUTPUT_RATE)) / (2 * OUTPUT_RATE)
        t = a.start / OUTPUT_RATE
        rest[int(t / BLOCK_SECONDS) : int(np.ceil((t + length) / BLOCK_SECONDS)) + 1] = False
    edges = np.diff(np.concatenate([[0], rest.astype(np.int8), [0]]))
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    least = round(UNMARKED_MIN_SECONDS / BLOCK_SECONDS)
    return [
        round(float(b) * BLOCK_SECONDS, 2)
        for b, e in zip(begins.tolist(), ends.tolist(), strict=True)
        if e - b >= least
    ]


TRANSITION = re.compile(r"^\s*([\d.]+) \[TRANSITION\] (\w+) -> (\w+)")


def handoff_windows(log_lines: Iterable[str]) -> list[Window]:
    """From a run's log (its stamped ``[TRANSITION]`` lines): when a hand-off or a recovery
    was under way, from leaving NORMAL/MONITORING until the machine is back there."""
    windows: list[Window] = []
    opened: float | None = None
    for line in log_lines:
        m = TRANSITION.match(line)
        if not m:
            continue
        at, dest = float(m.group(1)), m.group(3)
        if dest not in CALM_STATES and opened is None:
            opened = at
        elif dest in CALM_STATES and opened is not None:
            windows.append((opened, at))
            opened = None
    if opened is not None:
        windows.append((opened, float("inf")))
    return windows


def score(input_pcm: bytes, output_pcm: bytes, handoffs: Sequence[Window] = ()) -> Score:
    """Score a run from its input (16 kHz) and its speaker timeline (24 kHz)."""
    return score_stream([input_pcm], [output_pcm], handoffs)


def score_stream(
    input_blocks: Iterable[bytes], output_blocks: Iterable[bytes], handoffs: Sequence[Window] = ()
) -> Score:
    """:func:`score` in one streaming pass over each side, a block at a time (e.g. from
    :func:`sonic_fsm.audio.wav.iter_wav`): memory holds the marks and one bit per 10 ms of
    output, not the audio, so hours of conversation score in a few MB."""
    spoken, _ = decode_stream(input_blocks, INPUT_RATE)
    heard, loud = decode_stream(output_blocks, OUTPUT_RATE, partials=True, sounding=True)
    return score_marks(
        [m for m in spoken if m.kind in "*C"],
        [m for m in heard if m.kind in "AB"],
        _bridged(loud),
        handoffs,
    )


def decode_stream(
    blocks: Iterable[bytes], rate: int, partials: bool = False, sounding: bool = False
) -> tuple[list[Mark], np.ndarray]:
    """The marks in a stream of PCM blocks (as :func:`decode_marks` finds in the whole) and,
    with ``sounding``, which of its 10 ms blocks are loud."""
    decoder, parser = DtmfDecoder(rate), MarkParser(partials)
    marks: list[Mark] = []
    loud: list[np.ndarray] = []
    step = 2 * int(rate * BLOCK_SECONDS)
    pending = b""
    for pcm in blocks:
        marks += parser.feed(decoder.feed(pcm))
        if sounding:
            data = pending + pcm
            whole = len(data) - len(data) % step
            loud.append(_loud(data[:whole], rate))
            pending = data[whole:]
    marks += parser.feed(decoder.feed(b"\x00\x00" * decoder.block * 2))  # the last key
    marks += parser.flush()
    return marks, np.concatenate(loud) if loud else np.zeros(0, dtype=bool)


@dataclass
class ToolScore:
    """Tool questions (``*CN#``) by how they were answered."""

    asked: int = 0
    once_with_result: int = 0  # one whole answer, carrying the right result
    lost: list[int] = field(default_factory=list)  # no whole answer
    twice: list[int] = field(default_factory=list)  # more than one whole answer
    without_result: list[int] = field(default_factory=list)  # one answer, no result in it
    wrong_result: list[int] = field(default_factory=list)  # one answer, a wrong result
    reply_delay_ms: dict[int, float] = field(default_factory=dict)  # question end -> answer

    def as_dict(self) -> dict[str, object]:
        return {
            "tool_questions": self.asked,
            "tool_answered_once_with_result": self.once_with_result,
            "tool_lost": len(self.lost),
            "tool_answered_twice": len(self.twice),
            "tool_without_result": len(self.without_result),
            "tool_wrong_result": len(self.wrong_result),
            "tool_lost_ids": self.lost,
            "tool_twice_ids": self.twice,
            "tool_without_result_ids": self.without_result,
            "tool_wrong_result_ids": self.wrong_result,
        }


def tool_value(n: int) -> int:
    """What the test signal's tool answers for question ``n``."""
    return 7 * n


def score_tool_marks(spoken: list[Mark], heard: list[Mark]) -> ToolScore:
    questions = {m.number: m.end / INPUT_RATE for m in spoken if m.kind == "C"}
    s = ToolScore(asked=len(questions))
    whole: dict[int, list[int | None]] = {}
    began: dict[int, float] = {}
    open_n: int | None = None
    value: int | None = None
    for m in heard:
        if m.kind == "A":
            open_n, value = m.number, None
            began.setdefault(m.number, m.start / OUTPUT_RATE)
        elif m.kind == "D" and open_n is not None:
            value = m.number
        elif m.kind == "B" and m.number == open_n:
            whole.setdefault(m.number, []).append(value)
            open_n = None
    for n, end in questions.items():
        if n in began:
            s.reply_delay_ms[n] = 1000 * (began[n] - end)
        answers = whole.get(n, [])
        if not answers:
            s.lost.append(n)
        elif len(answers) > 1:
            s.twice.append(n)
        elif answers[0] is None:
            s.without_result.append(n)
        elif answers[0] != tool_value(n):
            s.wrong_result.append(n)
        else:
            s.once_with_result += 1
    return s


def score_tools(input_pcm: bytes, output_pcm: bytes) -> ToolScore:
    """Score a run's tool questions from its input (16 kHz) and speaker timeline (24 kHz)."""
    spoken = decode_marks(input_pcm, INPUT_RATE)
    heard = [m for m in decode_marks(output_pcm, OUTPUT_RATE) if m.kind in "ABD"]
    return score_tool_marks(spoken, heard)

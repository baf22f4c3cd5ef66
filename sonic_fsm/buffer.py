"""The transition buffer, and the client-side view of where the user's utterances are.

:class:`ReplayBuffer` keeps user frames that some session may still need: everything a
session has not yet answered, and during a hand-off everything the next session has not
yet received. :class:`SpeechTracker` finds utterances in the frames (an energy detector),
so the engine can tell which frames a session has already accounted for.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    seq: int
    pcm: bytes
    sent: bool  # queued to at least one session


class ReplayBuffer:
    """User frames in capture order, never more than ``cap_bytes``."""

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.frames: deque[Frame] = deque()
        self.bytes = 0
        self.peak_bytes = 0
        self.lost_frames = 0
        self.lost_seqs: list[int] = []

    def append(self, seq: int, pcm: bytes, sent: bool) -> None:
        self.frames.append(Frame(seq, pcm, sent))
        self.bytes += len(pcm)
        while self.bytes > self.cap_bytes and self.frames:
            self._pop()
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def _pop(self) -> Frame:
        f = self.frames.popleft()
        self.bytes -= len(f.pcm)
        if not f.sent:
            self.lost_frames += 1
            self.lost_seqs.append(f.seq)
        return f

    def trim_before(self, seq: int) -> None:
        """Forget frames older than ``seq`` (they reached a session that accounted for them)."""
        while self.frames and self.frames[0].seq < seq and self.frames[0].sent:
            self._pop()

    def first_seq(self) -> int | None:
        return self.frames[0].seq if self.frames else None

    def since(self, seq: int) -> list[Frame]:
        return [f for f in self.frames if f.seq >= seq]

    def mark_sent(self, from_seq: int) -> None:
        for f in self.frames:
            if f.seq >= from_seq:
                f.sent = True


@dataclass(slots=True)
class Utterance:
    """A stretch of user speech, in frame numbers; what each session made of it."""

    start: int
    end: int | None = None  # one past the last speech frame; None while still open
    transcript: str | None = None
    transcribed_by: str | None = None
    answer_started: bool = False
    answer_done: bool = False


def level_db(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (-96 for silence)."""
    if not pcm:
        return -96.0
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = math.sqrt(float(np.mean(x * x))) / 32768.0
    return 20 * math.log10(rms) if rms > 1.6e-5 else -96.0


class SpeechTracker:
    """Energy-based utterance finder over whole frames: speech above ``threshold_db``,
    an utterance ends after ``end_frames`` quiet frames."""

    def __init__(self, threshold_db: float, end_frames: int) -> None:
        self.threshold_db = threshold_db
        self.end_frames = end_frames
        self.utterances: list[Utterance] = []
        self._quiet = 0
        self.last_level_db = -96.0

    @property
    def open(self) -> Utterance | None:
        u = self.utterances[-1] if self.utterances else None
        return u if u is not None and u.end is None else None

    def feed(self, seq: int, pcm: bytes) -> None:
        self.last_level_db = level_db(pcm)
        speech = self.last_level_db > self.threshold_db
        u = self.open
        if speech:
            self._quiet = 0
            if u is None:
                self.utterances.append(Utterance(start=seq))
        elif u is not None:
            self._quiet += 1
            if self._quiet >= self.end_frames:
                u.end = seq - self._quiet + 1

    def prune(self, keep_from: int) -> None:
        """Forget settled utterances that ended before ``keep_from``."""
        while (
            len(self.utterances) > 1
            and self.utterances[0].end is not None
            and self.utterances[0].end < keep_from
            and (self.utterances[0].answer_done or self.utterances[0].transcript is None)
        ):
            self.utterances.pop(0)

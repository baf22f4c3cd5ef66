"""The transition buffer: user frames that some session may still need.

Everything the current session has not yet answered (which frames that is, the ledger in
:mod:`sonic_fsm.core.ledger` decides), and during a hand-off everything the next session has
not yet received.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


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

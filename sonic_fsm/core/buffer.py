"""The transition buffer: user frames that some session may still need.

Everything the current session has not yet answered (which frames that is, the ledger in
:mod:`sonic_fsm.core.ledger` decides), and during a hand-off everything the next session has
not yet received.

At its cap the oldest frame goes. One no session was sent is lost at once; one that was sent
is lost only if it is asked for again (the session that had it failed, or hands over, before
answering it): either way it is counted, never silently missing from a replay.
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
        self.unreported: list[int] = []  # lost since :meth:`take_losses` was last called
        self._evicted: deque[int] = deque()  # sent frames the cap dropped, oldest first

    def append(self, seq: int, pcm: bytes, sent: bool) -> None:
        self.frames.append(Frame(seq, pcm, sent))
        self.bytes += len(pcm)
        while self.bytes > self.cap_bytes and self.frames:
            f = self._pop()
            if f.sent:
                self._evicted.append(f.seq)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def _pop(self) -> Frame:
        f = self.frames.popleft()
        self.bytes -= len(f.pcm)
        if not f.sent:
            self._lose([f.seq])
        return f

    def _lose(self, seqs: list[int]) -> None:
        self.lost_frames += len(seqs)
        self.lost_seqs += seqs
        self.unreported += seqs

    def trim_before(self, seq: int) -> None:
        """Forget frames older than ``seq`` (they reached a session that accounted for them)."""
        while self.frames and self.frames[0].seq < seq and self.frames[0].sent:
            self._pop()
        while self._evicted and self._evicted[0] < seq:
            self._evicted.popleft()

    def first_seq(self) -> int | None:
        return self.frames[0].seq if self.frames else None

    def since(self, seq: int) -> list[Frame]:
        """The frames from ``seq`` on, to send again; those the cap dropped are lost."""
        gone = [s for s in self._evicted if s >= seq]
        if gone:
            self._lose(gone)
            self._evicted = deque(s for s in self._evicted if s < seq)
        return [f for f in self.frames if f.seq >= seq]

    def take_losses(self) -> list[int]:
        """Frames lost since the last call (for the log)."""
        out, self.unreported = self.unreported, []
        return out

    def mark_sent(self, from_seq: int) -> None:
        for f in self.frames:
            if f.seq >= from_seq:
                f.sent = True

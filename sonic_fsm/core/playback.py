"""What the speaker is playing, computed from what the engine sent it and when.

The speaker plays in order, in real time: audio queued at ``now`` starts when everything
before it has played. So the engine, which knows every ``Play`` it emitted and when, knows
what sounds at any instant, and what the listener heard of an answer that was cut. A front
end whose speaker runs ahead or behind (device latency, a browser's jitter buffer) reports
how much it still has queued (:class:`sonic_fsm.core.events.PlaybackProgress`), and the model
follows it.

Each session's service also believes something about playback: that its audio plays as it
arrives. :meth:`Playback.unaware` names the sessions whose audio sounds later than their
service believes, or that no longer hear the user: a barge-in over their audio is the
client's to honour, since their service cannot.

Sans-IO: times are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LATE_SECONDS = 0.2  # audio sounding this much later than its service believes


@dataclass(slots=True)
class Piece:
    session_id: str
    content_id: str
    start: float
    end: float


@dataclass
class Playback:
    rate: int  # samples a second of the assistant audio
    pieces: list[Piece] = field(default_factory=list)  # queued or playing, in order
    end: float = 0.0  # when everything queued will have played
    believed_end: dict[str, float] = field(default_factory=dict)  # per session, its service's
    heard: dict[str, float] = field(default_factory=dict)  # per content: seconds played

    def seconds(self, nbytes: int) -> float:
        return nbytes / (2 * self.rate)

    def arrived(self, session_id: str, nbytes: int, now: float) -> None:
        """Audio arrived from a session: its service believes it plays from now on."""
        prev = self.believed_end.get(session_id, now)
        self.believed_end[session_id] = max(prev, now) + self.seconds(nbytes)

    def play(self, session_id: str, content_id: str, nbytes: int, now: float) -> None:
        """Audio was queued on the speaker at ``now``."""
        self._settle(now)
        start = max(now, self.end)
        self.end = start + self.seconds(nbytes)
        self.pieces.append(Piece(session_id, content_id, start, self.end))

    def flush(self, now: float) -> None:
        """The speaker dropped everything not yet played."""
        self._settle(now)
        for p in self.pieces:
            self._count(p, now)
        self.pieces = []
        self.end = now

    def progress(self, queued_seconds: float, now: float) -> None:
        """The front end says it still has ``queued_seconds`` to play: follow it."""
        self._settle(now)
        shift = (now + max(0.0, queued_seconds)) - max(self.end, now)
        if not self.pieces or abs(shift) < 1e-6:
            return
        for p in self.pieces:
            p.start = max(now, p.start + shift) if p.start > now else p.start
            p.end = max(p.start, p.end + shift)
        self.end = self.pieces[-1].end

    def sounding(self, now: float) -> set[str]:
        """Sessions whose audio is playing or queued at ``now``."""
        self._settle(now)
        return {p.session_id for p in self.pieces if p.end > now}

    def unaware(self, now: float, listening: str | None) -> set[str]:
        """Sessions sounding now whose service cannot honour a barge-in: they do not hear
        the user (not ``listening``), or their audio plays later than they believe."""
        out = set()
        for sid in self.sounding(now):
            late = self.last_end(sid) - self.believed_end.get(sid, 0.0) > LATE_SECONDS
            if sid != listening or late:
                out.add(sid)
        return out

    def last_end(self, session_id: str) -> float:
        return max((p.end for p in self.pieces if p.session_id == session_id), default=0.0)

    def heard_seconds(self, content_id: str, now: float) -> float:
        """How much of one content the listener has heard by ``now``."""
        self._settle(now)
        playing = sum(
            min(p.end, now) - p.start
            for p in self.pieces
            if p.content_id == content_id and p.start < now
        )
        return self.heard.get(content_id, 0.0) + playing

    def _count(self, p: Piece, now: float) -> None:
        if p.start < now:
            self.heard[p.content_id] = self.heard.get(p.content_id, 0.0) + min(p.end, now) - p.start

    def _settle(self, now: float) -> None:
        """Pieces played in full are counted and forgotten."""
        while self.pieces and self.pieces[0].end <= now:
            self._count(self.pieces.pop(0), now)
        if len(self.heard) > 64:  # only recent contents are ever asked about
            for key in list(self.heard)[:32]:
                del self.heard[key]

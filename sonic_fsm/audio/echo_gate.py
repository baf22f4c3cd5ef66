"""Half duplex: keep the model from hearing itself through open speakers.

While the assistant is speaking (and for a short hold after, the room's echo tail), a
microphone chunk is replaced by silence of the same length unless it is clearly louder than
what the speaker is playing: ``margin_db`` above the loudest playback level of the last
``hold_seconds``. A person talking close to the microphone clears that bar (barge-in still
works); the speaker's own sound arriving through the air does not. Frames are replaced, never
dropped, so the stream stays continuous and the engine's frame accounting is untouched.

Pure: the caller passes ``now``, whether the assistant is speaking and the playback level.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sonic_fsm.core.ledger import level_db


class EchoGate:
    def __init__(self, *, margin_db: float = 12.0, hold_seconds: float = 0.3) -> None:
        self.margin_db = margin_db
        self.hold_seconds = hold_seconds
        self.gated_chunks = 0
        self.passed_chunks = 0
        self._levels: deque[tuple[float, float]] = deque()  # (when, playback level dB)
        self._speaking_until = float("-inf")

    def reference_db(self, now: float) -> float:
        """The loudest playback level heard within the hold window (-96 when none)."""
        while self._levels and self._levels[0][0] < now - self.hold_seconds:
            self._levels.popleft()
        return max((db for _, db in self._levels), default=-96.0)

    def is_closed(self, now: float) -> bool:
        """Whether the assistant counts as speaking at ``now`` (its hold included)."""
        return now <= self._speaking_until

    def process(self, pcm: bytes, now: float, *, speaking: bool, playback_db: float) -> bytes:
        """The chunk to send: ``pcm`` itself, or silence of its length while the gate is shut."""
        if speaking:
            self._speaking_until = now + self.hold_seconds
            self._levels.append((now, playback_db))
        if not self.is_closed(now):
            self._levels.clear()
            self.passed_chunks += 1
            return pcm
        if level_db(pcm) >= self.reference_db(now) + self.margin_db:
            self.passed_chunks += 1
            return pcm
        self.gated_chunks += 1
        return bytes(len(pcm))


class HalfDuplexSource:
    """A source whose chunks pass through an :class:`EchoGate` keyed to a sink's playback.

    The thin adapter for ``audio.half_duplex``: the assistant counts as speaking while the
    sink has audio queued; the playback level is the sink's ``level_db`` when it has one (a
    real speaker). A sink without one (a file, null) makes no sound in the room, so nothing
    is gated.
    """

    def __init__(self, source: Any, sink: Any, *, margin_db: float = 12.0) -> None:
        self.source = source
        self.sink = sink
        self.gate = EchoGate(margin_db=margin_db)

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        async for pcm in self.source.frames():
            level = getattr(self.sink, "level_db", None)
            if level is None:
                yield pcm
                continue
            now = loop.time()
            speaking = self.sink.queued_seconds(now) > 0
            yield self.gate.process(pcm, now, speaking=speaking, playback_db=level)

    async def aclose(self) -> None:
        await self.source.aclose()

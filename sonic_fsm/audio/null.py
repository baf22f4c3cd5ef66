"""The null source and sink: silence in, nothing out, both keeping time like real devices.

The source yields silent chunks at the capture rate of the loop's clock, so the engine sees
a live but silent microphone (timers, hand-offs with an idle user). The sink plays nothing but
drains its queue at the playback rate of ``now``, so "is the assistant still speaking" and
barge-in flushes behave as with a speaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class NullSource:
    """Silent 16 kHz 16-bit mono chunks, paced by the running loop's clock."""

    def __init__(
        self, *, chunk_frames: int = 1024, rate: int = 16000, duration: float | None = None
    ) -> None:
        self.chunk_frames = chunk_frames
        self.rate = rate
        self.duration = duration
        self._closed = False

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunk = bytes(2 * self.chunk_frames)
        period = self.chunk_frames / self.rate
        start = loop.time()
        n = 0
        while not self._closed:
            if self.duration is not None and n * period >= self.duration:
                return
            n += 1
            # a chunk is handed over once it has been "captured": at the end of its period
            delay = start + n * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._closed:
                return
            yield chunk

    async def aclose(self) -> None:
        self._closed = True


class NullSink:
    """Discards audio, but plays it out in time: ``queued_seconds`` falls as ``now`` advances."""

    def __init__(self, *, rate: int = 24000) -> None:
        self.rate = rate
        self._end = 0.0  # when everything queued so far will have been played

    def _bytes(self, seconds: float) -> int:
        return round(seconds * self.rate) * 2

    def play(self, pcm: bytes, now: float) -> None:
        self._end = max(self._end, now) + len(pcm) / (2 * self.rate)

    def flush(self, now: float) -> int:
        dropped = self._bytes(self.queued_seconds(now))
        self._end = now
        return dropped

    def queued_seconds(self, now: float) -> float:
        return max(0.0, self._end - now)

    async def aclose(self) -> None:
        pass

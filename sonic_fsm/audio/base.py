"""What the runner needs from an audio source and an audio sink.

A source yields 16 kHz 16-bit mono chunks in capture order, paced by the loop's clock
(real time, or virtual time in ``--fast`` runs). A sink is the speaker: it queues 24 kHz
16-bit mono PCM and plays it in order; ``flush`` drops what is still queued (barge-in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class AudioSource(Protocol):
    def frames(self) -> AsyncIterator[bytes]:
        """Chunks of ``chunk_frames`` samples each, until the source ends."""
        ...

    async def aclose(self) -> None: ...


class AudioSink(Protocol):
    def play(self, pcm: bytes, now: float) -> None:
        """Queue ``pcm`` after whatever is queued."""

    def flush(self, now: float) -> int:
        """Drop everything not yet played; returns the number of bytes dropped."""
        ...

    def queued_seconds(self, now: float) -> float:
        """How much audio is queued and not yet played."""
        ...

    async def aclose(self) -> None: ...


class AudioDeviceError(RuntimeError):
    """No usable audio device: the message is one line naming the alternatives."""

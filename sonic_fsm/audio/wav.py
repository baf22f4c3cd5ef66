"""WAV files: a microphone that reads a file, and a speaker that writes its timeline.

:class:`WavSource` yields 16 kHz 16-bit mono chunks paced by the loop's clock (so a file
plays in real time, or instantly in virtual time). :class:`TimelineSink` is the speaker of
a headless run: the output WAV holds what a listener would have heard, sample-exact in
time, silence where nothing played.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

INPUT_RATE = 16000


class WavFormatError(ValueError):
    """The WAV file cannot be used; the message is one line."""


def read_wav(path: str | Path, rate: int = INPUT_RATE) -> bytes:
    """16-bit mono PCM at ``rate`` from a WAV file; other rates and channel counts are converted."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, src_rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise WavFormatError(f"{p}: no such file") from None
    except (wave.Error, EOFError) as e:
        raise WavFormatError(
            f"{p}: not a PCM WAV file ({e}); expected {rate} Hz 16-bit mono"
        ) from None
    if width != 2:
        raise WavFormatError(
            f"{p}: {8 * width}-bit samples; expected 16-bit PCM (convert with: "
            f"sox {p} -r {rate} -c 1 -b 16 -e signed-integer out.wav)"
        )
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if src_rate != rate and samples.size:
        n_out = round(samples.size * rate / src_rate)
        samples = np.interp(np.arange(n_out) * src_rate / rate, np.arange(samples.size), samples)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


class WavSource:
    """A WAV file played into the engine as if spoken into a microphone."""

    def __init__(self, path: str | Path, chunk_frames: int = 1024) -> None:
        self.pcm = read_wav(path)
        self.chunk_bytes = chunk_frames * 2
        self.chunk_seconds = chunk_frames / INPUT_RATE

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, start in enumerate(range(0, len(self.pcm), self.chunk_bytes)):
            delay = t0 + i * self.chunk_seconds - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = self.pcm[start : start + self.chunk_bytes]
            yield chunk.ljust(self.chunk_bytes, b"\x00")

    async def aclose(self) -> None:
        pass


class TimelineSink:
    """A speaker that plays in order, in real or virtual time, and keeps the timeline."""

    def __init__(self, path: str | Path | None, rate: int = 24000, t0: float = 0.0) -> None:
        self.path = Path(path) if path else None
        self.rate = rate
        self.t0 = t0
        self.timeline = bytearray()
        self.end = t0  # when everything queued will have played
        self.flushed_bytes = 0

    def start(self, t0: float) -> None:
        self.t0 = self.end = t0

    def _offset(self, t: float) -> int:
        return round((t - self.t0) * self.rate) * 2

    def play(self, pcm: bytes, now: float) -> None:
        start = max(now, self.end)
        at = self._offset(start)
        if len(self.timeline) < at:
            self.timeline.extend(bytes(at - len(self.timeline)))
        del self.timeline[at:]
        self.timeline += pcm
        self.end = self.t0 + len(self.timeline) / (2 * self.rate)

    def flush(self, now: float) -> int:
        at = max(self._offset(now), 0)
        dropped = max(0, len(self.timeline) - at)
        del self.timeline[at:]
        self.flushed_bytes += dropped
        self.end = min(self.end, max(now, self.t0))
        return dropped

    def queued_seconds(self, now: float) -> float:
        return max(0.0, self.end - now)

    async def aclose(self) -> None:
        if self.path is not None:
            write_wav(self.path, bytes(self.timeline), self.rate)

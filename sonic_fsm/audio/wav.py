"""WAV files: a microphone that reads a file, and a speaker that writes its timeline.

:class:`WavSource` yields 16 kHz 16-bit mono chunks paced by the loop's clock (so a file
plays in real time, or instantly in virtual time). :class:`TimelineSink` is the speaker of
a headless run: the output WAV holds what a listener would have heard, sample-exact in
time, silence where nothing played.

Both stream: a file is read, converted and played a block at a time, and the speaker's
timeline is written to disk as it becomes final (what has played can no longer change),
with the WAV header patched each time, so memory stays flat over hours and a run that is
killed leaves a valid file holding everything up to its last second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

INPUT_RATE = 16000
BLOCK_FRAMES = 1 << 16  # frames read (and converted) at a time
COMMIT_SECONDS = 1.0  # the speaker's file is at most this far behind what has played


class WavFormatError(ValueError):
    """The WAV file cannot be used (or written); the message is one line."""


def _os_error(p: Path, e: OSError, doing: str) -> WavFormatError:
    if isinstance(e, IsADirectoryError):
        return WavFormatError(f"{p}: is a folder, not a WAV file")
    if isinstance(e, FileNotFoundError):
        what = "no such file" if doing == "read" else "its folder does not exist"
        return WavFormatError(f"{p}: {what}")
    return WavFormatError(f"{p}: cannot {doing} it ({e.strerror or e})")


def _open_reader(p: Path, rate: int) -> wave.Wave_read:
    """Open and check a WAV file for reading: 16-bit PCM, a positive rate, some channels."""
    try:
        w = wave.open(str(p), "rb")  # noqa: SIM115 (the caller closes it)
    except OSError as e:
        raise _os_error(p, e, "read") from None
    except (wave.Error, EOFError) as e:
        raise WavFormatError(
            f"{p}: not a PCM WAV file ({e}); expected {rate} Hz 16-bit mono"
        ) from None
    width, src_rate, channels = w.getsampwidth(), w.getframerate(), w.getnchannels()
    problem = ""
    if width != 2:
        problem = (
            f"{8 * width}-bit samples; expected 16-bit PCM (convert with: "
            f"sox {p} -r {rate} -c 1 -b 16 -e signed-integer out.wav)"
        )
    elif src_rate <= 0:
        problem = f"its header says {src_rate} samples a second; expected {rate} Hz"
    elif channels <= 0:
        problem = "its header says it has no channels"
    if problem:
        w.close()
        raise WavFormatError(f"{p}: {problem}")
    return w


def check_wav(path: str | Path, rate: int = INPUT_RATE) -> None:
    """Raise :class:`WavFormatError` now if ``path`` cannot be read as audio."""
    _open_reader(Path(path), rate).close()


def iter_wav(
    path: str | Path, rate: int = INPUT_RATE, block_frames: int = BLOCK_FRAMES
) -> Iterator[bytes]:
    """16-bit mono PCM at ``rate`` from a WAV file, a block at a time; other rates and
    channel counts are converted (linear interpolation, continuous across blocks)."""
    p = Path(path)
    w = _open_reader(p, rate)
    with contextlib.closing(w):
        channels, src_rate, n_in = w.getnchannels(), w.getframerate(), w.getnframes()
        step = src_rate / rate  # source samples per output sample
        n_out = round(n_in * rate / src_rate)
        k = 0  # the next output sample
        base = 0  # the source index of carry[0]
        carry = np.empty(0)
        while raw := w.readframes(block_frames):
            x = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2")
            if channels == 1 and src_rate == rate:
                yield x.tobytes()
                continue
            samples = x.astype(np.float64)
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1)
            if src_rate == rate:
                yield _pcm(samples)
                continue
            buf = np.concatenate([carry, samples])
            last = base + buf.size - 1  # the last source index at hand
            k_end = min(n_out, math.floor(last / step) + 1)
            if k_end > k:
                where = np.arange(k, k_end) * step - base
                yield _pcm(np.interp(where, np.arange(buf.size), buf))
                k = k_end
            keep = min(max(0, math.floor(k * step) - base), buf.size - 1)
            carry, base = buf[keep:], base + keep
        if src_rate != rate and k < n_out and carry.size:
            # Past the last source sample np.interp holds the last value, as before.
            where = np.arange(k, n_out) * step - base
            yield _pcm(np.interp(where, np.arange(carry.size), carry))


def _pcm(samples: np.ndarray[Any, Any]) -> bytes:
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


def read_wav(path: str | Path, rate: int = INPUT_RATE) -> bytes:
    """16-bit mono PCM at ``rate`` from a WAV file; other rates and channel counts are converted."""
    return b"".join(iter_wav(path, rate))


def write_wav(path: str | Path, pcm: bytes, rate: int) -> None:
    p = Path(path)
    try:
        with open(p, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
    except OSError as e:
        raise _os_error(p, e, "write") from None


class WavWriter:
    """16-bit mono WAV appended chunk by chunk, its header rewritten after each chunk, so the
    file on disk is always a valid WAV of what was appended (even after a kill).

    ``private`` files (recordings) are created 0600 whatever the umask, never through a
    symlink. Errors are the OS's (``OSError``).
    """

    def __init__(self, path: Path, rate: int, *, private: bool = False) -> None:
        self.path, self.rate = path, rate
        self.data_bytes = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_NOFOLLOW if private else 0)
        self._fd = os.open(path, flags, 0o600 if private else 0o666)
        if private:
            os.fchmod(self._fd, 0o600)
        header = struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF", 36, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", 0,
        )  # fmt: skip
        os.write(self._fd, header)

    def write(self, pcm: bytes) -> None:
        if self._fd < 0 or not pcm:
            return
        os.write(self._fd, pcm)
        self.data_bytes += len(pcm)
        os.pwrite(self._fd, struct.pack("<I", 36 + self.data_bytes), 4)
        os.pwrite(self._fd, struct.pack("<I", self.data_bytes), 40)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class WavSource:
    """A WAV file played into the engine as if spoken into a microphone."""

    def __init__(self, path: str | Path, chunk_frames: int = 1024) -> None:
        self.path = Path(path)
        check_wav(self.path)  # a bad file is one line before the conversation starts
        self.chunk_bytes = chunk_frames * 2
        self.chunk_seconds = chunk_frames / INPUT_RATE

    def _chunks(self) -> Iterator[bytes]:
        pending = bytearray()
        for block in iter_wav(self.path):
            pending += block
            whole = len(pending) - len(pending) % self.chunk_bytes
            for start in range(0, whole, self.chunk_bytes):
                yield bytes(pending[start : start + self.chunk_bytes])
            del pending[:whole]
        if pending:
            yield bytes(pending).ljust(self.chunk_bytes, b"\x00")

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, chunk in enumerate(self._chunks()):
            delay = t0 + i * self.chunk_seconds - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield chunk

    async def aclose(self) -> None:
        pass


class TimelineSink:
    """A speaker that plays in order, in real or virtual time, and keeps the timeline.

    With a ``path`` the timeline goes to that WAV as it becomes final (at least every
    ``COMMIT_SECONDS``) and only the part that may still change stays in memory; without
    one, ``timeline`` keeps all of it (the bench and the tests read it).
    """

    def __init__(self, path: str | Path | None, rate: int = 24000, t0: float = 0.0) -> None:
        self.path = Path(path) if path else None
        self.rate = rate
        self.t0 = t0
        self.timeline = bytearray()  # the timeline from byte ``committed`` on
        self.committed = 0  # bytes already written to the file
        self.end = t0  # when everything queued will have played
        self.flushed_bytes = 0
        self._writer: WavWriter | None = None
        if self.path is not None:
            try:
                self._writer = WavWriter(self.path, rate)
            except OSError as e:
                raise _os_error(self.path, e, "write") from None
        self._committer: asyncio.Task[None] | None = None

    def start(self, t0: float) -> None:
        self.t0 = self.end = t0
        if self._writer is not None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_every_second())

    def _offset(self, t: float) -> int:
        return round((t - self.t0) * self.rate) * 2

    def play(self, pcm: bytes, now: float) -> None:
        start = max(now, self.end)
        at = max(self._offset(start) - self.committed, 0)
        if len(self.timeline) < at:
            self.timeline.extend(bytes(at - len(self.timeline)))
        del self.timeline[at:]
        self.timeline += pcm
        self.end = self.t0 + (self.committed + len(self.timeline)) / (2 * self.rate)

    def flush(self, now: float) -> int:
        at = max(self._offset(now) - self.committed, 0)
        dropped = max(0, len(self.timeline) - at)
        del self.timeline[at:]
        self.flushed_bytes += dropped
        self.end = min(self.end, max(now, self.t0))
        return dropped

    def queued_seconds(self, now: float) -> float:
        return max(0.0, self.end - now)

    def commit(self, now: float) -> None:
        """Write what has played by ``now`` (it can no longer change) to the file."""
        if self._writer is None:
            return
        final = min(len(self.timeline), max(self._offset(now) - self.committed, 0))
        if final:
            self._writer.write(bytes(self.timeline[:final]))
            del self.timeline[:final]
            self.committed += final

    async def _commit_every_second(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(COMMIT_SECONDS)
            self.commit(loop.time())

    async def aclose(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
        if self._writer is not None:
            self._writer.write(bytes(self.timeline))
            self.committed += len(self.timeline)
            self.timeline.clear()
            self._writer.close()
            self._writer = None

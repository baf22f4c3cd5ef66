"""Microphone and speaker through PyAudio, both in callback mode.

PortAudio calls our callbacks on its own thread. The microphone callback hands each chunk to
the event loop with ``call_soon_threadsafe`` into an unbounded :class:`asyncio.Queue`: it never
blocks the audio thread and never drops a chunk; input overflows PortAudio reports are counted.
The speaker callback takes what it needs from a byte queue under a lock, so the engine always
knows how much is still queued and barge-in can drop it all at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from sonic_fsm.audio.base import AudioDeviceError
from sonic_fsm.audio.devices import (
    MIC_ALTERNATIVES,
    SPEAKER_ALTERNATIVES,
    PyAudioFactory,
    default_factory,
    pick_device,
    quiet_stderr,
)
from sonic_fsm.core.ledger import level_db

PA_INT16 = 8  # pyaudio.paInt16
PA_CONTINUE = 0  # pyaudio.paContinue
PA_COMPLETE = 1  # pyaudio.paComplete
PA_INPUT_OVERFLOW = 2  # pyaudio.paInputOverflow
PA_OUTPUT_UNDERFLOW = 4  # pyaudio.paOutputUnderflow


def _open_pa(factory: PyAudioFactory | None, alternatives: str) -> Any:
    try:
        return (factory or default_factory)()
    except ImportError as e:
        raise AudioDeviceError(f"PyAudio is not installed ({e}); {alternatives}") from None
    except OSError as e:
        raise AudioDeviceError(f"PortAudio failed to start ({e}); {alternatives}") from None


def _open_stream(
    pa: Any, spec: str, kind: str, rate: int, frames: int, callback: Any, start: bool
) -> tuple[Any, Any]:
    """Open a 16-bit mono ``kind`` ("input" or "output") stream on the device ``spec`` names."""
    device = pick_device(pa, spec, kind)
    try:
        with quiet_stderr():
            stream = pa.open(
                format=PA_INT16,
                channels=1,
                rate=rate,
                frames_per_buffer=frames,
                stream_callback=callback,
                start=start,
                **{kind: True, f"{kind}_device_index": device.index},
            )
    except OSError as e:
        what, alternatives = (
            ("microphone", MIC_ALTERNATIVES)
            if kind == "input"
            else ("speaker", SPEAKER_ALTERNATIVES)
        )
        raise AudioDeviceError(
            f"cannot open {what} {device.name!r} at {rate} Hz mono ({e}); {alternatives}"
        ) from None
    return device, stream


def _open(
    factory: PyAudioFactory | None,
    spec: str,
    kind: str,
    rate: int,
    frames: int,
    callback: Any,
    start: bool,
) -> tuple[Any, Any, Any]:
    """PortAudio and one stream on it: ``(pa, device, stream)``; PortAudio is let go if the
    stream cannot be opened."""
    pa = _open_pa(factory, MIC_ALTERNATIVES if kind == "input" else SPEAKER_ALTERNATIVES)
    try:
        device, stream = _open_stream(pa, spec, kind, rate, frames, callback, start)
    except AudioDeviceError:
        _terminate(pa)
        raise
    return pa, device, stream


def _close(pa: Any, stream: Any) -> None:
    """Stop and close the stream, then let PortAudio go."""
    try:
        stream.stop_stream()
    finally:
        stream.close()
    _terminate(pa)


def _terminate(pa: Any) -> None:
    with quiet_stderr():
        pa.terminate()


class PyAudioSource:
    """The microphone: 16 kHz 16-bit mono chunks of ``chunk_frames`` samples.

    The device is opened (stopped) in the constructor so a missing microphone is reported
    before anything else starts; capture starts when :meth:`frames` is first iterated.
    """

    def __init__(
        self,
        *,
        chunk_frames: int = 1024,
        device: str = "",
        rate: int = 16000,
        pa_factory: PyAudioFactory | None = None,
    ) -> None:
        self.chunk_frames = chunk_frames
        self.rate = rate
        self.overruns = 0  # callbacks that reported an input overflow
        self.chunks = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self._pa, self.device, self._stream = _open(
            pa_factory, device, "input", rate, chunk_frames, self._callback, start=False
        )

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[None, int]:
        """PortAudio's thread: count overflows, hand the chunk to the loop, never block."""
        if status & PA_INPUT_OVERFLOW:
            self.overruns += 1
        loop = self._loop
        if loop is None or self._closed:
            return None, PA_COMPLETE
        if in_data:
            self.chunks += 1
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, bytes(in_data))
            except RuntimeError:  # the loop is closed: nothing will read any more
                return None, PA_COMPLETE
        return None, PA_CONTINUE

    async def frames(self) -> AsyncIterator[bytes]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._stream.start_stream()  # no fd 2 redirect here: the dashboard may be drawing
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk

    def queued_chunks(self) -> int:
        """Chunks captured and not yet taken by the consumer."""
        return self._queue.qsize()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        _close(self._pa, self._stream)
        self._queue.put_nowait(None)


class PyAudioSink:
    """The speaker: plays 24 kHz 16-bit mono from a queue whose depth the engine can read."""

    def __init__(
        self,
        *,
        device: str = "",
        rate: int = 24000,
        frames_per_buffer: int = 1024,
        pa_factory: PyAudioFactory | None = None,
    ) -> None:
        self.rate = rate
        self.underruns = 0  # callbacks that found less queued audio than PortAudio asked for
        self.played_bytes = 0
        self.level_db = -96.0  # level of the chunk most recently handed to the device
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        self._pa, self.device, self._stream = _open(
            pa_factory, device, "output", rate, frames_per_buffer, self._callback, start=True
        )

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Any, status: int
    ) -> tuple[bytes, int]:
        """PortAudio's thread: take ``frame_count`` samples from the queue, pad with silence."""
        want = frame_count * 2
        with self._lock:
            chunk = bytes(self._buf[:want])
            del self._buf[:want]
        self.played_bytes += len(chunk)
        if chunk:
            self.level_db = level_db(chunk)
            if len(chunk) < want:
                self.underruns += 1
        else:
            self.level_db = -96.0
        return chunk + bytes(want - len(chunk)), PA_CONTINUE

    def play(self, pcm: bytes, now: float) -> None:
        with self._lock:
            self._buf += pcm

    def flush(self, now: float) -> int:
        with self._lock:
            dropped = len(self._buf)
            self._buf.clear()
        return dropped

    def queued_seconds(self, now: float) -> float:
        with self._lock:
            return len(self._buf) / (2 * self.rate)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        _close(self._pa, self._stream)

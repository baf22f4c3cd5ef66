"""``sonic-fsm bench --scenario audio``: the audio adapters' own costs, on a fake device.

The real PyAudio microphone and speaker (:mod:`sonic_fsm.audio.pyaudio_io`) on
:class:`~sonic_fsm.audio.fake_pyaudio.FakePyAudio`, whose callbacks a thread drives as
PortAudio would, and the real recorder:

- capture to consumer: from the device callback to the frame reaching the event loop's
  consumer, with the loop idle and with it busy (2 ms slices of engine-like work, each
  followed by a 0.5 ms wait for IO);
- barge-in flush: the time to drop 1, 10 or 60 s of queued answer audio;
- recording: the recorder's cost per 64 ms chunk sent and received.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from typing import Any

from sonic_fsm.audio.fake_pyaudio import LAPTOP, FakePyAudio, FakeStream
from sonic_fsm.audio.pyaudio_io import PyAudioSink, PyAudioSource
from sonic_fsm.core import protocol
from sonic_fsm.core.metrics import percentile
from sonic_fsm.recording import SessionRecorder

CHUNK = 1024  # frames: 64 ms of microphone audio at 16 kHz
OUTPUT_RATE = 24000


def _us(seconds: list[float]) -> list[float]:
    return sorted(s * 1e6 for s in seconds)


def capture(chunks: int = 400, busy: bool = False) -> dict[str, Any]:
    """``chunks`` microphone chunks at the device's pace, each timed from its callback to
    the consumer; ``busy``: another coroutine holds the loop in 2 ms slices meanwhile."""
    period = CHUNK / 16000
    pa = FakePyAudio(LAPTOP, default_in=0)
    mic = PyAudioSource(chunk_frames=CHUNK, pa_factory=lambda: pa)
    sent: list[float] = []
    callback_cost: list[float] = []

    def portaudio(stream: FakeStream) -> None:
        due = time.perf_counter()
        for i in range(chunks):
            due += period
            while time.perf_counter() < due:
                time.sleep(max(0.0, due - time.perf_counter() - 0.001))
            t0 = time.perf_counter()
            sent.append(t0)
            stream.callback(i.to_bytes(4, "little") * (CHUNK // 2), CHUNK, {}, 0)
            callback_cost.append(time.perf_counter() - t0)

    async def hog() -> None:
        # 2 ms of work, then the loop waits for IO for a moment, as an engine's loop does. A
        # loop that never waits (sleep(0)) only drops the GIL for an instant each time; the
        # device thread, which needs the GIL for its callback, can then miss it for seconds.
        while True:
            t = time.perf_counter()
            while time.perf_counter() - t < 0.002:
                pass
            await asyncio.sleep(0.0005)

    async def consume() -> list[float]:
        got: list[float] = []
        frames = mic.frames()
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        thread = threading.Thread(target=portaudio, args=(pa.streams[0],), daemon=True)
        thread.start()
        hogging = asyncio.ensure_future(hog()) if busy else None
        await asyncio.wait_for(first, timeout=10.0)
        got.append(time.perf_counter())
        async with asyncio.timeout(10.0 + 2 * chunks * period):
            async for _ in frames:
                got.append(time.perf_counter())
                if len(got) == chunks:
                    break
        if hogging:
            hogging.cancel()
        await mic.aclose()
        thread.join(timeout=10.0)
        return got

    got = asyncio.run(consume())
    latency = _us([g - s for s, g in zip(sent, got, strict=True)])
    cost = _us(callback_cost)
    return {
        "chunks": chunks,
        "latency_us_p50": percentile(latency, 50),
        "latency_us_p99": percentile(latency, 99),
        "latency_us_max": round(latency[-1], 3),
        "callback_us_p50": percentile(cost, 50),
        "callback_us_p99": percentile(cost, 99),
    }


def flush(repeats: int = 50, seconds: tuple[int, ...] = (1, 10, 60)) -> dict[str, Any]:
    """A barge-in's flush of ``seconds`` of queued answer audio (40 ms audioOutput chunks),
    ``repeats`` times each."""
    pa = FakePyAudio(LAPTOP, default_out=0)
    speaker = PyAudioSink(pa_factory=lambda: pa)
    stream = pa.streams[0]
    figures: dict[str, Any] = {"silence_within_ms": round(CHUNK / OUTPUT_RATE * 1000, 1)}
    for queued in seconds:
        times, dropped = [], 0
        for _ in range(repeats):
            for _ in range(queued * 25):
                speaker.play(bytes(1920), 0.0)
            stream.callback(None, CHUNK, {}, 0)
            t = time.perf_counter()
            dropped = speaker.flush(0.0)
            times.append(time.perf_counter() - t)
        us = _us(times)
        figures[f"{queued}s"] = {
            "bytes_dropped": dropped,
            "flush_us_p50": percentile(us, 50),
            "flush_us_max": round(us[-1], 3),
        }
    return figures


def recording(chunks: int = 5000) -> dict[str, Any]:
    """The recorder's cost for ``chunks`` 1024-frame audioInput events sent and as many
    audioOutput events received."""
    with tempfile.TemporaryDirectory(prefix="sonic-bench-audio-") as tmp:
        recorder = SessionRecorder(tmp, secrets=["FAKESECRETFAKESECRET"], conversation="c")
        recorder.session_opened("s1", 0.0, [])
        sent_event = protocol.audio_input("p", "a", bytes(range(256)) * 8)
        content = sent_event["event"]["audioInput"]["content"]
        received_event = {"event": {"audioOutput": {"contentId": "c", "content": content}}}
        sent, received = [], []
        for i in range(chunks):
            t = time.perf_counter()
            recorder.event_sent("s1", i * 0.064, sent_event)
            sent.append(time.perf_counter() - t)
            t = time.perf_counter()
            recorder.event_received("s1", i * 0.064, received_event)
            received.append(time.perf_counter() - t)
        recorder.close()
    sent_us, received_us = _us(sent), _us(received)
    return {
        "chunks": chunks,
        "sent_us_p50": percentile(sent_us, 50),
        "sent_us_p99": percentile(sent_us, 99),
        "received_us_p50": percentile(received_us, 50),
        "received_us_p99": percentile(received_us, 99),
    }


def run(chunks: int = 400, repeats: int = 50, recorded: int = 5000) -> dict[str, Any]:
    """All of the above; the arguments make it small (the test runs it tiny)."""
    return {
        "capture_idle": capture(chunks),
        "capture_busy": capture(chunks, busy=True),
        "flush": flush(repeats),
        "recording": recording(recorded),
    }

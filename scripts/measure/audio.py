"""Measure the audio adapters: capture-to-engine latency, barge-in flush time, recording cost.

Run: .venv/bin/python scripts/measure/audio.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, "tests")
from test_pyaudio_io import LAPTOP, FakePyAudio

from sonic_fsm.audio.pyaudio_io import PyAudioSink, PyAudioSource
from sonic_fsm.core import protocol
from sonic_fsm.recording import SessionRecorder

CHUNK = 1024


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def capture_latency(n: int = 400, period: float = CHUNK / 16000, load: bool = False) -> None:
    pa = FakePyAudio(LAPTOP, default_in=0)
    mic = PyAudioSource(chunk_frames=CHUNK, pa_factory=lambda: pa)
    sent: list[float] = []
    cb_cost: list[float] = []

    def portaudio(stream) -> None:
        nxt = time.perf_counter()
        for i in range(n):
            nxt += period
            while time.perf_counter() < nxt:
                time.sleep(max(0.0, nxt - time.perf_counter() - 0.001))
            t0 = time.perf_counter()
            sent.append(t0)
            stream.callback(i.to_bytes(4, "little") * (CHUNK // 2), CHUNK, {}, 0)
            cb_cost.append(time.perf_counter() - t0)

    async def busy() -> None:  # other coroutines doing engine-like work, 2 ms slices
        while True:
            t = time.perf_counter()
            while time.perf_counter() - t < 0.002:
                pass
            await asyncio.sleep(0)

    async def main() -> list[float]:
        got: list[float] = []
        frames = mic.frames()
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        th = threading.Thread(target=portaudio, args=(pa.streams[0],), daemon=True)
        th.start()
        hog = asyncio.ensure_future(busy()) if load else None
        await first
        got.append(time.perf_counter())
        async for _ in frames:
            got.append(time.perf_counter())
            if len(got) == n:
                break
        if hog:
            hog.cancel()
        await mic.aclose()
        return got

    got = asyncio.run(main())
    lat = [(g - s) * 1e6 for s, g in zip(sent, got, strict=True)]
    cb = [c * 1e6 for c in cb_cost]
    label = "with 2 ms busy coroutines" if load else "idle loop"
    print(
        f"capture->consumer latency ({label}, {n} chunks of {CHUNK}): "
        f"p50 {pct(lat, 50):.0f} us, p99 {pct(lat, 99):.0f} us, max {max(lat):.0f} us; "
        f"callback cost p50 {pct(cb, 50):.1f} us, p99 {pct(cb, 99):.1f} us"
    )


def flush_time() -> None:
    pa = FakePyAudio(LAPTOP, default_out=0)
    spk = PyAudioSink(pa_factory=lambda: pa)
    stream = pa.streams[0]
    for seconds in (1, 10, 60):
        times = []
        for _ in range(50):
            for _ in range(seconds * 25):  # answers arrive as 40 ms audioOutput chunks
                spk.play(bytes(1920), 0.0)
            stream.callback(None, CHUNK, {}, 0)
            t = time.perf_counter()
            dropped = spk.flush(0.0)
            times.append((time.perf_counter() - t) * 1e6)
        print(
            f"barge-in flush of {seconds:>2} s queued ({dropped} bytes dropped): "
            f"p50 {pct(times, 50):.1f} us, max {max(times):.1f} us; silence from the next "
            f"callback, at most {CHUNK / 24000 * 1000:.0f} ms later (frames_per_buffer={CHUNK})"
        )


def recording_overhead(n: int = 5000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rec = SessionRecorder(tmp, secrets=["FAKESECRETFAKESECRET"], conversation="c")
        rec.session_opened("s1", 0.0, [])
        chunk = bytes(range(256)) * 8
        ev_in = protocol.audio_input("p", "a", chunk)
        ev_out = {
            "event": {
                "audioOutput": {
                    "contentId": "c",
                    "content": ev_in["event"]["audioInput"]["content"],
                }
            }
        }
        sent, recv = [], []
        for i in range(n):
            t = time.perf_counter()
            rec.event_sent("s1", i * 0.064, ev_in)
            sent.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            rec.event_received("s1", i * 0.064, ev_out)
            recv.append((time.perf_counter() - t) * 1e6)
        rec.close()
    print(
        f"recording overhead per 1024-frame chunk: sent audioInput p50 {pct(sent, 50):.1f} us, "
        f"p99 {pct(sent, 99):.1f} us; received audioOutput p50 {pct(recv, 50):.1f} us, "
        f"p99 {pct(recv, 99):.1f} us "
        f"(mean {statistics.mean(sent):.1f} / {statistics.mean(recv):.1f})"
    )


if __name__ == "__main__":
    capture_latency()
    capture_latency(load=True)
    flush_time()
    recording_overhead()

"""Measure the emulated model alone: wall time to hear and answer 30 virtual minutes.

    .venv/bin/python scripts/measure/emulator.py

Feeds one EmulatorSession 64 ms audioInput chunks (an utterance of the test signal every
12 s, silence between), polling its output as the engine would, and reports the wall time
and the simulated speed.
"""

from __future__ import annotations

import time

from nova_emulator import voice
from nova_emulator.model import EmulatorSession
from sonic_fsm import testsignal
from sonic_fsm.core import protocol as pr
from sonic_fsm.settings import load

MINUTES = 30
CHUNK = 2048  # bytes: 1024 frames, 64 ms


def run() -> tuple[float, int, int]:
    s = load(
        None,
        [
            "session_limit_seconds=4000",
            "transition_threshold_seconds=3000",
            "hard_deadline_margin_seconds=10",
        ],
    )
    m = EmulatorSession(s, "m", 0.0, speaker=voice.synthetic, recogniser=None)
    for e in [
        pr.session_start(),
        pr.prompt_start("p", "matthew"),
        *pr.text_block("p", "sys", "SYSTEM", "hi", 1024),
        pr.audio_content_start("p", "a"),
    ]:
        m.receive(e, 0.0)
    pcm = bytearray()
    n = 0
    while len(pcm) < MINUTES * 60 * 32000:
        n += 1
        pcm += testsignal.utterance(n) + bytes(12 * 32000 - len(testsignal.utterance(n)))
    t, out = 0.0, 0
    start = time.perf_counter()
    for i in range(0, len(pcm), CHUNK):
        m.receive(pr.audio_input("p", "a", bytes(pcm[i : i + CHUNK])), t)
        t += CHUNK / 32000
        out += len(m.poll(t))
    return time.perf_counter() - start, n, len(m.answered)


if __name__ == "__main__":
    wall, spoken, answered = run()
    print(
        f"{MINUTES} virtual min in {wall:.2f} s wall "
        f"({MINUTES * 60 / wall:.0f}x real time), {answered}/{spoken} answered"
    )

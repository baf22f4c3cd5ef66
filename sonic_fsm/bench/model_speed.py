"""``sonic-fsm bench --scenario emulator``: the emulated model alone, how fast it runs.

One :class:`~nova_emulator.model.EmulatorSession` (sans-IO) is fed ``--minutes`` of
64 ms audioInput chunks, an utterance of the test signal every 12 s with silence between,
and polled after each chunk as the engine would; reported: the wall time, the simulated
speed and how many utterances it answered.
"""

from __future__ import annotations

import time
from typing import Any

from nova_emulator import voice
from nova_emulator.model import EmulatorSession
from sonic_fsm import testsignal
from sonic_fsm.core import protocol as pr
from sonic_fsm.settings import Settings, replace

CHUNK = 2048  # bytes: 1024 frames, 64 ms
BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit
SPACING_SECONDS = 12
MAX_MINUTES = 1400  # within one session of LONG_SESSION
LONG_SESSION = {  # one session for the whole run (up to a day): no limit reached
    "session_limit_seconds": 86400.0,
    "transition_threshold_seconds": 86000.0,
    "hard_deadline_margin_seconds": 10.0,
}


def run(settings: Settings, minutes: float = 30.0) -> dict[str, Any]:
    model = EmulatorSession(
        replace(settings, **LONG_SESSION), "m", 0.0, speaker=voice.synthetic, recogniser=None
    )
    for event in [
        pr.session_start(),
        pr.prompt_start("p", "matthew"),
        *pr.text_block("p", "sys", "SYSTEM", "hi", 1024),
        pr.audio_content_start("p", "a"),
    ]:
        model.receive(event, 0.0)
    pcm = bytearray()
    spoken = 0
    while len(pcm) < minutes * 60 * BYTES_PER_SECOND:
        spoken += 1
        said = testsignal.utterance(spoken)
        pcm += said + bytes(SPACING_SECONDS * BYTES_PER_SECOND - len(said))
    now = 0.0
    start = time.perf_counter()
    for i in range(0, len(pcm), CHUNK):
        model.receive(pr.audio_input("p", "a", bytes(pcm[i : i + CHUNK])), now)
        now += CHUNK / BYTES_PER_SECOND
        model.poll(now)
    wall = time.perf_counter() - start
    return {
        "virtual_seconds": round(now, 1),
        "wall_seconds": round(wall, 3),
        "sim_speed": round(now / wall, 1),
        "spoken": spoken,
        "answered": len(model.answered),
    }

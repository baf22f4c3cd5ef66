"""``sonic-fsm bench --scenario load``: the emulator's endpoint under load.

Starts ``sonic-fsm emulator serve`` as its own process (so its CPU time is its own), then runs
``--streams`` sessions at once, each one test-signal turn, with the light wire client
(``--client wire``, ``--per-connection`` streams on each HTTP/2 connection) or the real AWS
SDK through :class:`~sonic_fsm.backends.bedrock.BedrockBackend` (``--client sdk``):

    sonic-fsm bench --scenario load --streams 50 --per-connection 10
    sonic-fsm bench --scenario load --streams 10 --client sdk

Latencies are measured from the moment the end of the utterance was sent to the USER
transcript, to the first answer audio, and to the end of the FINAL text; they include the
emulator's end-of-turn pause (the session's endpointing: 1.75 s at the default MEDIUM, or
``emulator.end_of_speech_ms`` when set) when the audio is paced in real time (``--realtime``),
and its generation speed (``emulator.speed``, 4 unless ``--set`` says otherwise) for the FINAL
text. CPU is the server process's user+system time during the run (from /proc), divided by
the number of streams; the client's own CPU is given too (a saturated client inflates the
latencies).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from nova_emulator.tls import TlsFiles, client_context
from nova_emulator.wire_client import WireClient
from sonic_fsm import testsignal
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.backend import Session
from sonic_fsm.core.metrics import percentile
from sonic_fsm.local_endpoint import ProcessEndpoint, as_process
from sonic_fsm.settings import Settings, load

PROMPT = "p"
TRAILING_SILENCE_SECONDS = 2.5  # longer than the longest endpointing pause (LOW, 2 s)
MIC = "mic"
OVERRIDES = ("emulator.speed=4.0",)
"""The emulator's settings for this scenario, before the command line's ``--set``."""
CLIENTS = ("wire", "sdk")
TURN_TIMEOUT_SECONDS = {"wire": 10.0, "sdk": 30.0}
"""How long a turn may wait for its next output event."""
RUN_LIMIT_SECONDS = 300.0
"""How long the whole run may take, beyond the spread of its starts."""


async def one_turn(
    s: Any,
    n: int,
    marks: dict[str, float] | None = None,
    *,
    timeout: float = 10.0,
    realtime: bool = False,
) -> list[dict[str, Any]]:
    """Opening events, then test-signal utterance ``n`` and :data:`TRAILING_SILENCE_SECONDS`
    of silence (the turn ends within it); returns the
    output events up to the end of the FINAL text.

    The output is read while the audio is still being sent, so the times are when events
    arrived. ``marks`` (when given) receives ``perf_counter`` times: ``spoken`` (the chunk
    holding the utterance's end was sent), ``transcript``, ``audio``, ``final``. With
    ``realtime`` the audio is paced as a microphone sends it (64 ms every 64 ms), otherwise
    it goes as fast as the stream takes it.
    """
    marks = marks if marks is not None else {}
    opening = [
        pr.session_start(),
        pr.prompt_start(PROMPT, "matthew"),
        *pr.text_block(PROMPT, "system", "SYSTEM", "Be brief.", 1024),
        pr.audio_content_start(PROMPT, MIC),
    ]
    for event in opening:
        await s.send(event)
    reader = asyncio.create_task(_read_turn(s, marks, timeout))
    try:
        speech = testsignal.utterance(n)
        pcm = speech + b"\0\0" * int(TRAILING_SILENCE_SECONDS * 16000)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k, i in enumerate(range(0, len(pcm), 2048)):
            if realtime:
                await asyncio.sleep(max(0.0, start + k * 0.064 - loop.time()))
            if reader.done():
                break
            await s.send(pr.audio_input(PROMPT, MIC, pcm[i : i + 2048]))
            if i < len(speech) <= i + 2048:
                marks["spoken"] = time.perf_counter()
        return await reader
    finally:
        reader.cancel()


async def _read_turn(s: Any, marks: dict[str, float], timeout: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    final_id = None
    while True:
        event = await asyncio.wait_for(s.receive(), timeout)
        if event is None:
            raise RuntimeError(f"output ended mid-turn after {len(events)} events")
        events.append(event)
        p = pr.parse_output(event)
        now = time.perf_counter()
        if isinstance(p, pr.TextOutput) and p.role == "USER":
            marks.setdefault("transcript", now)
        elif isinstance(p, pr.AudioOutput):
            marks.setdefault("audio", now)
        elif isinstance(p, pr.ContentStart) and (p.role, p.stage) == ("ASSISTANT", pr.FINAL):
            final_id = p.content_id
        elif isinstance(p, pr.ContentEnd) and p.content_id == final_id:
            marks["final"] = now
            return events


async def end_session(s: Any) -> None:
    """The closing events of the conversation (the caller then closes the input)."""
    for event in (pr.content_end(PROMPT, MIC), pr.prompt_end(PROMPT), pr.session_end()):
        await s.send(event)


async def _wire_sessions(
    served: ProcessEndpoint, streams: int, per_conn: int, stagger: float, turn: Any
) -> list[dict[str, float]]:
    files = TlsFiles(ca_cert=served.ca_file, server_cert=Path(), server_key=Path())
    clients = []
    try:
        for _ in range(-(-streams // per_conn)):
            c = WireClient(credentials=served.key, region=served.region)
            clients.append(c)
            await c.connect("127.0.0.1", served.port, client_context(files))

        async def session(i: int) -> dict[str, float]:
            await asyncio.sleep(stagger * i / streams)
            s = await clients[i // per_conn].open()
            marks = await turn(s, i)
            await s.close()
            return marks

        return list(await asyncio.gather(*(session(i) for i in range(streams))))
    finally:
        for c in clients:
            await c.aclose()


async def _sdk_sessions(
    served: ProcessEndpoint, settings: Settings, streams: int, stagger: float, turn: Any
) -> list[dict[str, float]]:
    _, backend = served.bedrock(settings)

    async def session(i: int) -> dict[str, float]:
        await asyncio.sleep(stagger * i / streams)
        s: Session = await backend.open(f"load-{i}")
        try:
            return await turn(s, i)
        finally:
            await s.close()

    try:
        return list(await asyncio.gather(*(session(i) for i in range(streams))))
    finally:
        await backend.aclose()


def run(
    settings_file: Path | None,
    overrides: list[str],
    *,
    streams: int = 50,
    per_connection: int = 10,
    client: str = "wire",
    realtime: bool = False,
    stagger: float = 0.0,
) -> dict[str, Any]:
    """``streams`` one-turn sessions at once against a ``serve`` process with the settings
    ``settings_file`` and ``overrides`` (the SDK client's too); returns the figures."""
    settings = load(settings_file, overrides)
    timeout = TURN_TIMEOUT_SECONDS[client]

    async def turn(s: Any, i: int) -> dict[str, float]:
        marks: dict[str, float] = {}
        await one_turn(s, 100 + i, marks, timeout=timeout, realtime=realtime)
        await end_session(s)
        return marks

    async def sessions(served: ProcessEndpoint) -> list[dict[str, float]]:
        async with asyncio.timeout(RUN_LIMIT_SECONDS + stagger):
            if client == "wire":
                return await _wire_sessions(served, streams, per_connection, stagger, turn)
            return await _sdk_sessions(served, settings, streams, stagger, turn)

    with as_process(overrides, settings_file) as served:
        cpu0, client0, t0 = served.cpu_seconds(), time.process_time(), time.perf_counter()
        marks = asyncio.run(sessions(served))
        wall = time.perf_counter() - t0
        cpu = served.cpu_seconds() - cpu0
        client_cpu = time.process_time() - client0
    figures: dict[str, Any] = {
        "client": client,
        "streams": streams,
        **({"per_connection": per_connection} if client == "wire" else {}),
        "speed": settings.emulator.speed,
        "realtime_audio": realtime,
        "stagger_seconds": stagger,
        "server_exit": served.proc.returncode,
        "turns_completed": len(marks),
        "wall_seconds": round(wall, 2),
    }
    for name in ("transcript", "audio", "final"):
        ms = sorted(1000 * (m[name] - m["spoken"]) for m in marks)
        figures[f"utterance_end_to_{name}_ms_p50"] = percentile(ms, 50)
        figures[f"utterance_end_to_{name}_ms_p90"] = percentile(ms, 90)
        figures[f"utterance_end_to_{name}_ms_max"] = round(ms[-1], 3)
    figures |= {
        "server_cpu_seconds": round(cpu, 2),
        "server_cpu_ms_per_turn": round(1000 * cpu / len(marks), 1),
        "server_cpu_pct_of_a_core": round(100 * cpu / wall, 1),
        # a saturated client inflates the latencies above
        "client_cpu_seconds": round(client_cpu, 2),
        "client_cpu_pct_of_a_core": round(100 * client_cpu / wall, 1),
    }
    return figures

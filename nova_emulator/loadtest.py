"""Measure the endpoint: turn latency over the wire, concurrent streams, CPU per stream.

Starts ``sonic-fsm emulator serve`` as its own process (so its CPU time is its own), reads
the environment it prints, then runs N sessions at once, each one test-signal turn, with
the light wire client (``--client wire``) or the real AWS SDK (``--client sdk``):

    python -m nova_emulator.loadtest --streams 50 --per-connection 10
    python -m nova_emulator.loadtest --streams 10 --client sdk

Latencies are measured from the moment the end of the utterance was sent to the USER
transcript, to the first answer audio, and to the end of the FINAL text; they include the
emulator's end-of-turn pause (the session's endpointing: 1.75 s at the default MEDIUM, or
``emulator.end_of_speech_ms`` when set) when the audio is paced in real time, and its
generation speed (``emulator.speed``) for the FINAL text.
CPU is the server process's user+system time during the run (from /proc), divided by the
number of streams; the client's own CPU is shown too (a saturated client inflates latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonic_fsm import testsignal
from sonic_fsm.core import protocol as pr

from .sigv4 import Credentials
from .tls import TlsFiles, client_context
from .wire_client import WireClient

PROMPT = "p"
TRAILING_SILENCE_SECONDS = 2.5  # longer than the longest endpointing pause (LOW, 2 s)
MIC = "mic"


async def one_turn(
    s: Any,
    n: int,
    marks: dict[str, float] | None = None,
    *,
    timeout: float = 10.0,
    realtime: bool = False,
) -> list[dict[str, Any]]:
    """Opening events, then test-signal utterance ``n`` and 1 s of silence; returns the
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


@dataclass(frozen=True, kw_only=True)
class Served:
    """A ``serve`` process and the environment it printed."""

    proc: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"].rsplit(":", 1)[1])

    @property
    def credentials(self) -> Credentials:
        return Credentials(
            access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(state_dir: Path, overrides: list[str]) -> Served:
    cmd = [sys.executable, "-m", "sonic_fsm.local_endpoint", "serve", "--port", "0"]
    cmd += ["--state-dir", str(state_dir)]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    env: dict[str, str] = {}
    for _ in range(6):
        line = proc.stdout.readline()
        if line.startswith("export "):
            name, value = line.removeprefix("export ").strip().split("=", 1)
            env[name] = value.strip("'")
    if len(env) != 5:
        proc.kill()
        raise RuntimeError("the serve command did not print its environment")
    return Served(proc=proc, env=env)


async def _wire_run(
    served: Served, streams: int, per_conn: int, realtime: bool, stagger: float
) -> list[dict[str, float]]:
    files = TlsFiles(
        ca_cert=Path(served.env["SSL_CERT_FILE"]), server_cert=Path(), server_key=Path()
    )
    n_conns = -(-streams // per_conn)
    clients = []
    for _ in range(n_conns):
        c = WireClient(credentials=served.credentials, region=served.env["AWS_REGION"])
        await c.connect("127.0.0.1", served.port, client_context(files))
        clients.append(c)

    async def session(i: int) -> dict[str, float]:
        await asyncio.sleep(stagger * i / streams)
        marks: dict[str, float] = {}
        s = await clients[i // per_conn].open()
        await one_turn(s, 100 + i, marks, realtime=realtime)
        await end_session(s)
        await s.close()
        return marks

    try:
        return list(await asyncio.gather(*(session(i) for i in range(streams))))
    finally:
        for c in clients:
            await c.aclose()


async def _sdk_run(
    served: Served, streams: int, realtime: bool, stagger: float
) -> list[dict[str, float]]:
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
    from aws_sdk_bedrock_runtime.models import (
        BidirectionalInputPayloadPart,
        InvokeModelWithBidirectionalStreamInputChunk,
        InvokeModelWithBidirectionalStreamOperationInput,
    )
    from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

    os.environ.update(served.env)  # before the CRT client exists: SSL_CERT_FILE and all
    config = await AsyncBedrockRuntimeConfig.resolve(
        transport=AWSCRTHTTPClient(client_config=AWSCRTHTTPClientConfig(force_http_2=True)),
        config_file_path="/nonexistent",
        credentials_file_path="/nonexistent",
    )
    client = AsyncBedrockRuntimeClient(config=config)

    class Stream:
        def __init__(self, stream: Any) -> None:
            self.stream = stream
            self.receiver: Any = None

        async def send(self, event: dict[str, Any]) -> None:
            part = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
            chunk = InvokeModelWithBidirectionalStreamInputChunk(value=part)
            await self.stream.input_stream.send(chunk)

        async def receive(self) -> dict[str, Any] | None:
            if self.receiver is None:
                _, self.receiver = await self.stream.await_output()
            chunk = await self.receiver.receive()
            return None if chunk is None else json.loads(chunk.value.bytes_)

    async def session(i: int) -> dict[str, float]:
        await asyncio.sleep(stagger * i / streams)
        marks: dict[str, float] = {}
        op = InvokeModelWithBidirectionalStreamOperationInput(model_id="amazon.nova-sonic-v1:0")
        s = Stream(await client.invoke_model_with_bidirectional_stream(op))
        await one_turn(s, 100 + i, marks, timeout=30, realtime=realtime)
        await end_session(s)
        await s.stream.input_stream.close()
        while await asyncio.wait_for(s.receive(), 30) is not None:
            pass
        await s.stream.close()
        return marks

    return list(await asyncio.gather(*(session(i) for i in range(streams))))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nova_emulator.loadtest")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--per-connection", type=int, default=10, help="wire client only")
    ap.add_argument("--client", choices=("wire", "sdk"), default="wire")
    ap.add_argument("--speed", type=float, default=4.0, help="emulator.speed (default 4)")
    ap.add_argument("--realtime", action="store_true", help="pace the audio as a microphone")
    ap.add_argument(
        "--stagger", type=float, default=0.0, help="spread the streams' starts over S seconds"
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        served = start_server(Path(tmp), [f"emulator.speed={args.speed}"])
        try:
            cpu0 = served.cpu_seconds()
            client0 = time.process_time()
            t0 = time.perf_counter()
            if args.client == "wire":
                marks = asyncio.run(
                    _wire_run(
                        served, args.streams, args.per_connection, args.realtime, args.stagger
                    )
                )
            else:
                marks = asyncio.run(_sdk_run(served, args.streams, args.realtime, args.stagger))
            wall = time.perf_counter() - t0
            cpu = served.cpu_seconds() - cpu0
            client_cpu = time.process_time() - client0
        finally:
            served.proc.terminate()
            code = served.proc.wait(10)
    pace = "real-time audio" if args.realtime else "audio as fast as possible"
    pace += f", starts spread over {args.stagger:g} s" if args.stagger else ", all at once"
    print(f"client={args.client} streams={args.streams} speed={args.speed} {pace} exit={code}")
    print(f"all {len(marks)} turns completed in {wall:.2f} s wall")
    for name in ("transcript", "audio", "final"):
        ms = [1000 * (m[name] - m["spoken"]) for m in marks]
        print(
            f"  utterance end -> {name:10s}: p50 {statistics.median(ms):7.1f} ms"
            f"  p90 {_pct(ms, 0.9):7.1f} ms  max {max(ms):7.1f} ms"
        )
    print(
        f"server CPU: {cpu:.2f} s total, {1000 * cpu / len(marks):.1f} ms per stream-turn, "
        f"{100 * cpu / wall:.0f}% of one core during the run"
    )
    print(
        f"client CPU: {client_cpu:.2f} s, {100 * client_cpu / wall:.0f}% of one core "
        "(a saturated client inflates the latencies above)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

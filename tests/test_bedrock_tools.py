"""Tool calls over the real SDK against the emulator's endpoint, across several hand-offs.

Real time (the CRT does real I/O), sessions of 7 s: the simulated talker speaks the test
signal, every second line a tool question (``*CN#``), and waits for each answer. Every tool
question is answered once, with its result, and its tool runs once, whatever hand-off it met.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from typing import Any

import pytest

from sonic_fsm import credentials, testsignal
from sonic_fsm.audio.talker import Talker, TalkerConfig
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.bedrock import BedrockBackend
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle
from sonic_fsm.emulator.server import Endpoint, EndpointThread
from sonic_fsm.emulator.sigv4 import Credentials as EndpointCredentials
from sonic_fsm.emulator.tls import TlsFiles, ensure_certificates, server_context
from sonic_fsm.runner import Conversation, RunResult
from sonic_fsm.settings import load
from sonic_fsm.tools import signal_tool
from sonic_fsm.wiring import assistant_busy

KEY_ID = "AKIDSONICFSMTOOLS001"
SECRET = "emulator-secret-for-tool-tests"
SHORT_SESSIONS = [
    "transition_threshold_seconds=3",
    "session_limit_seconds=7",
    "hard_deadline_margin_seconds=1.5",
    "emulator.speed=8.0",
    "emulator.end_of_speech_ms=300",
]
LINES = 8
LATENCY = {2: 0.5, 4: 1.5, 6: 0.3, 8: 2.5}  # the tool questions and how long each tool takes


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_certificates(tmp_path_factory.mktemp("tls"))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_tool_calls_across_handoffs_over_the_sdk(tls: TlsFiles) -> None:
    server_settings = load(None, SHORT_SESSIONS)

    def make() -> Endpoint:
        return Endpoint(
            backend=LocalBackend(server_settings),
            credentials=EndpointCredentials(access_key_id=KEY_ID, secret_access_key=SECRET),
            tls=server_context(tls),
        )

    calls: list[int] = []
    with EndpointThread(make) as endpoint:
        settings = load(
            None,
            [
                *SHORT_SESSIONS,
                "backend.kind=bedrock",
                f"backend.endpoint_uri='{endpoint.url}'",
                "backend.open_timeout_seconds=5",
                "backend.close_timeout_seconds=2",
                "tools.builtin=[]",
            ],
        )
        backend = BedrockBackend(
            settings, credentials=credentials.static(KEY_ID, SECRET), ca_file=str(tls.ca_cert)
        )
        sink = TimelineSink(None)
        holder: list[Conversation] = []
        script = tuple(f"line {i}" for i in range(LINES))
        config = TalkerConfig(
            script=script, voice="tones", lead_in_seconds=0.5, think_seconds=0.3, tool_every=2
        )
        talker = Talker(config, assistant_busy=lambda: assistant_busy(holder))
        tool = signal_tool(lambda n: LATENCY[n], calls=calls)
        conv = Conversation(settings, backend, talker, sink, tools=[tool])
        holder.append(conv)
        stray: list[dict[str, Any]] = []

        async def main() -> RunResult:
            asyncio.get_running_loop().set_exception_handler(lambda _l, c: stray.append(c))
            return await asyncio.wait_for(conv.run(), timeout=120)

        result = asyncio.run(main())
        gc.collect()
        stats = endpoint.stats
    assert stray == [], stray
    assert result.reason == "the input ended"
    m = result.metrics
    assert m["handoffs"] + m["recoveries"] >= 2, m
    heard = Counter(
        (x.kind, x.number) for x in testsignal.decode_marks(bytes(sink.timeline), 24000)
    )
    assert {k: heard[k] for k in heard if k[0] in "AB"} == {
        (k, n): 1 for n in range(1, LINES + 1) for k in "AB"
    }
    tools = oracle.score_tool_marks(
        [testsignal.Mark("C", n, 0, 0) for n in LATENCY],
        testsignal.decode_marks(bytes(sink.timeline), 24000),
    )
    assert tools.once_with_result == len(LATENCY), tools.as_dict()
    assert Counter(calls) == {n: 1 for n in LATENCY}
    assert stats.streams_failed == 0

"""Tool calls over the real SDK against the emulator's endpoint, across several hand-offs.

Real time (the CRT does real I/O), sessions of 7 s: the simulated talker speaks the test
signal, every second line a tool question (``*CN#``), and waits for each answer. Every tool
question is answered once, with its result, and its tool runs once, whatever hand-off it met.
"""

from __future__ import annotations

from collections import Counter

import pytest
from test_bedrock_engine import converse, tls  # noqa: F401  (tls: the module's fixture)

from nova_emulator.tls import TlsFiles
from sonic_fsm import testsignal
from sonic_fsm.bench import oracle
from sonic_fsm.tools import signal_tool

LINES = 8
LATENCY = {2: 0.5, 4: 1.5, 6: 0.3, 8: 2.5}  # the tool questions and how long each tool takes


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tool_calls_across_handoffs_over_the_sdk(tls: TlsFiles) -> None:  # noqa: F811
    calls: list[int] = []
    tool = signal_tool(lambda n: LATENCY[n], calls=calls)
    result, _talker, sink, stats = converse(
        tls, LINES, extra=("tools.builtin=[]",), tools=(tool,), tool_every=2
    )
    assert result.reason == "the input ended"
    m = result.metrics
    assert m["handoffs"] + m["recoveries"] >= 2, m
    heard = testsignal.decode_marks(bytes(sink.timeline), 24000)
    ends = Counter((x.kind, x.number) for x in heard if x.kind in "AB")
    assert dict(ends) == {(k, n): 1 for n in range(1, LINES + 1) for k in "AB"}
    tools = oracle.score_tool_marks([testsignal.Mark("C", n, 0, 0) for n in LATENCY], heard)
    assert tools.once_with_result == len(LATENCY), tools.as_dict()
    assert Counter(calls) == {n: 1 for n in LATENCY}
    assert stats.streams_failed == 0

"""``sonic-fsm bench --scenario tools``: tool questions across hand-offs, measured.

A conversation in virtual time on the in-process emulator with short sessions, so hand-offs
come often: an utterance every 9 s, every third a tool question (``*CN#``), each tool taking
a latency drawn from 0.1 to 8 s (seeded; the user waits that much longer before speaking
on), so planned hand-offs wait for tools and hard deadlines land while tools run.

Reported: tool answers once with the right result / lost / twice / without the result /
wrong; tools run more than once for one question; and the reply delay a hand-off adds to a
tool turn (reply delay minus the tool's own latency, for tool turns that met a hand-off,
against those that did not).
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import Any

from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle
from sonic_fsm.bench.run import scored_run
from sonic_fsm.bench.script import Line
from sonic_fsm.core.metrics import percentile
from sonic_fsm.settings import Settings, replace
from sonic_fsm.tools import signal_tool

OVERRIDES: dict[str, Any] = {
    "session_limit_seconds": 60.0,
    "transition_threshold_seconds": 30.0,
    "hard_deadline_margin_seconds": 8.0,
    "audio_start_timeout_seconds": 5.0,  # a forced switch soon after the threshold: mid-call
    "emulator.end_of_speech_ms": 500,
    "tools.builtin": [],
    "tools.timeout_seconds": 10.0,
}
SPACING_SECONDS = 9.0
TOOL_EVERY = 3
LATENCY_SECONDS = (0.1, 8.0)


def scenario(settings: Settings, minutes: float = 20.0, seed: int = 0) -> dict[str, Any]:
    s = replace(settings, **{k.replace(".", "__"): v for k, v in OVERRIDES.items()})
    rng = random.Random(seed)
    lines: list[Line] = []
    latency: dict[int, float] = {}
    at = 1.0
    while at < minutes * 60 or len(lines) < TOOL_EVERY:
        n = len(lines) + 1
        tool = n % TOOL_EVERY == 0
        lines.append(Line(number=n, at=at, tool=tool))
        if tool:  # the user waits for the answer, however long the tool takes
            latency[n] = round(rng.uniform(*LATENCY_SECONDS), 2)
        at += SPACING_SECONDS + latency.get(n, 0.0)
    calls: list[int] = []
    signal = signal_tool(lambda n: latency.get(n, 0.5), calls=calls)
    run = scored_run(s, lines, LocalBackend(s), True, barge_in_at=(), tools=[signal])
    ts = oracle.score_tools(bytes(run.source.recorded), bytes(run.sink.timeline))
    windows = oracle.handoff_windows(run.log)
    ends = {line.number: line.at + len(line.pcm()) / 32000 for line in lines if line.tool}

    def met_handoff(n: int) -> bool:
        asked, answered = ends[n], ends[n] + ts.reply_delay_ms.get(n, 0.0) / 1000
        return any(a <= answered and asked <= b for a, b in windows)

    added: dict[bool, list[float]] = {True: [], False: []}
    for n, delay in ts.reply_delay_ms.items():
        if n in latency:
            added[met_handoff(n)].append(delay - 1000 * latency[n])
    base = statistics.median(added[False]) if added[False] else 0.0
    across = sorted(d - base for d in added[True])
    ran = Counter(calls)
    m = run.result.metrics
    return {
        "simulated_seconds": round(run.result.seconds, 1),
        "wall_seconds": round(run.wall_seconds, 2),
        "handoffs": m["handoffs"],
        "recoveries": m["recoveries"],
        **{k: v for k, v in ts.as_dict().items()},
        "tool_ran_twice": sorted(n for n, c in ran.items() if c > 1),
        "tool_turns_across_handoffs": len(added[True]),
        "tool_calls_left_behind": sum(1 for x in run.log if "left behind" in x),
        "tool_latency_ms_p50": percentile(sorted(1000 * v for v in latency.values()), 50),
        "tool_turn_delay_beyond_tool_ms_p50": round(base, 1),
        "tool_added_reply_delay_ms_p50": percentile(across, 50),
        "tool_added_reply_delay_ms_p99": percentile(across, 99),
        "tool_added_reply_delay_ms_max": round(across[-1], 1) if across else None,
        "utterances_lost": len(run.score.lost),
        "answered_twice": len(run.score.answered_twice),
        "lost_ids": run.score.lost,
        "twice_ids": run.score.answered_twice,
    }


def broken(f: dict[str, Any]) -> bool:
    """A tool question lost, answered twice or wrongly, or a tool run twice for one."""
    return bool(
        f["tool_lost"] or f["tool_answered_twice"] or f["tool_wrong_result"] or f["tool_ran_twice"]
    )

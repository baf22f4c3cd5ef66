"""Tool questions across hand-offs, in virtual time, scored by the oracle: every tool question
answered once, with its result (7 × n), nothing lost or twice, and the tool run once per
question, whatever the hand-off, the failure or the tool's speed."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nova_emulator.faults import FaultPlan, Faults, no_faults
from sonic_fsm import cli, testsignal
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle
from sonic_fsm.bench.run import ScoredRun, scored_run
from sonic_fsm.bench.script import Line
from sonic_fsm.settings import load
from sonic_fsm.tools import signal_tool

# Sessions of 60 s: the threshold at 30 s, the hard deadline at 52 s.
SHORT = [
    "session_limit_seconds=60",
    "transition_threshold_seconds=30",
    "hard_deadline_margin_seconds=8",
    "emulator.end_of_speech_ms=500",
    "tools.builtin=[]",
    "tools.timeout_seconds=30",
]


@dataclass
class ToolRun:
    run: ScoredRun
    tools: oracle.ToolScore
    calls: Counter[int]  # n -> how many times the tool ran for it

    def tool_spans(self) -> list[tuple[float, float]]:
        """(asked, answered) of every tool run, from the engine's log."""
        asked: dict[str, float] = {}
        spans = []
        for line in self.run.log:
            if m := re.match(r"^\s*([\d.]+) \[TOOL\] \w+: running \w+ (\S+)", line):
                asked[m.group(2)] = float(m.group(1))
            elif m := re.match(r"^\s*([\d.]+) \[TOOL\] \w+ (\S+) (answered|failed)", line):
                spans.append((asked[m.group(2)], float(m.group(1))))
        return spans

    def transitions(self, dest: str) -> list[float]:
        pattern = re.compile(rf"^\s*([\d.]+) \[TRANSITION\] \w+ -> {dest} ")
        return [float(m.group(1)) for line in self.run.log if (m := pattern.match(line))]


def talk(
    lines: list[Line],
    seconds: float | dict[int, float] = 0.5,
    faults: FaultPlan = no_faults,
    fail: tuple[int, ...] = (),
    hang: tuple[int, ...] = (),
    extra: tuple[str, ...] = (),
    react_with_tool: bool = False,
    late_at: dict[int, float] | None = None,
) -> ToolRun:
    settings = load(None, [*SHORT, *extra])
    calls: list[int] = []
    delay = seconds if isinstance(seconds, float) else (lambda n: seconds.get(n, 0.5))
    tool = signal_tool(delay, fail=fail, hang=hang, calls=calls)
    run = scored_run(
        settings,
        lines,
        LocalBackend(settings, faults),
        True,
        (),
        late_at,
        tools=[tool],
        react_with_tool=react_with_tool,
    )
    tools = oracle.score_tools(bytes(run.source.recorded), bytes(run.sink.timeline))
    return ToolRun(run, tools, Counter(calls))


def everything_once(t: ToolRun, without_result: tuple[int, ...] = ()) -> None:
    s, ts = t.run.score, t.tools
    assert s.lost == [] and s.answered_twice == [] and s.unexpected == [], s.as_dict()
    assert ts.lost == [] and ts.twice == [] and ts.wrong_result == [], ts.as_dict()
    assert ts.without_result == sorted(without_result), ts.as_dict()
    assert ts.once_with_result == ts.asked - len(without_result)
    assert all(c == 1 for c in t.calls.values()), t.calls  # each question ran its tool once
    assert not any("Traceback" in line for line in t.run.log)


def tool_lines(*items: tuple[float, int, bool]) -> list[Line]:
    return [Line(number=n, at=at, tool=tool) for at, n, tool in items]


def cases(names: str, every: Iterable[tuple[Any, ...]], quick: list[tuple[Any, ...]]) -> Any:
    """``parametrize`` over ``every`` case: the ``quick`` ones in every run, the others only in
    the whole suite (each case is a whole conversation; ``make quick`` plays a few)."""
    params = [c if c in quick else pytest.param(*c, marks=pytest.mark.slow) for c in every]
    return pytest.mark.parametrize(names, params)


def slow_next(seconds: float) -> FaultPlan:
    return lambda n: Faults(start_delay_seconds=seconds) if n > 1 else Faults()


@cases("latency, next_opens_in", [(0.5, 4.3), (5.0, 4.5), (5.0, 6.0), (5.0, 8.0)], [(5.0, 6.0)])
def test_a_tool_outstanding_at_the_handoff_point_holds_the_handoff(
    latency: float, next_opens_in: float
) -> None:
    """Past the threshold an answer starts BUFFERING; when it ends the user asks a tool
    question, and the next session is ready while the tool runs: the hand-off waits until
    the answer after the result."""
    lines = tool_lines((31.0, 1, False), (50.0, 2, False))
    t = talk(lines, latency, slow_next(next_opens_in), react_with_tool=True)
    everything_once(t)
    assert t.tools.asked == 1 and t.run.result.metrics["handoffs"] >= 1
    spans = t.tool_spans()
    assert len(spans) == 1
    ready = [float(x.split()[0]) for x in t.run.log if "[READY]" in x]
    assert any(spans[0][0] < r < spans[0][1] for r in ready)  # ready while the tool ran
    assert not any(a < h <= b for a, b in spans for h in t.transitions("HANDOFF"))
    assert not any("left behind" in x or "was handed over" in x for x in t.run.log)


@cases("latency, asked_at", product([0.5, 5.0, 15.0], [47.0, 49.5, 51.0]), [(15.0, 49.5)])
def test_a_tool_outstanding_at_the_hard_deadline_is_answered_once_by_the_next_session(
    latency: float, asked_at: float
) -> None:
    """The deadline (52 s) forces the switch while the tool runs (15 s: longer than the
    session's remaining life): the new session asks again, joins the call, answers once."""
    lines = tool_lines((5.0, 1, False), (asked_at, 2, True), (75.0, 3, False))
    t = talk(lines, latency)
    everything_once(t)
    assert t.run.result.metrics["recoveries"] == 0


@cases("latency, dies_at", product([0.5, 5.0], [10.5, 12.0, 14.0]), [(5.0, 12.0)])
def test_a_tool_outstanding_when_the_current_session_dies(latency: float, dies_at: float) -> None:
    lines = tool_lines((5.0, 1, False), (9.0, 2, True), (25.0, 3, False))

    def dies(n: int) -> Faults:
        return Faults(die_at_seconds=dies_at) if n == 1 else Faults()

    t = talk(lines, latency, dies)
    everything_once(t)
    assert t.run.result.metrics["recoveries"] == 1


@cases(
    "latency, fault",
    product([0.5, 5.0], ["refuse_start", "never_ready", "die_at_seconds"]),
    [(5.0, "refuse_start"), (5.0, "never_ready"), (5.0, "die_at_seconds")],
)
def test_a_tool_outstanding_when_the_next_session_fails(latency: float, fault: str) -> None:
    """The next session fails about 5 s after it began opening: during the 5 s tool (asked
    about 4 s in), after the 0.5 s one."""
    lines = tool_lines((31.0, 1, False), (50.5, 2, True), (70.0, 3, False))
    bad = {
        "refuse_start": Faults(start_delay_seconds=5.0, refuse_start=True),
        "never_ready": Faults(never_ready=True),
        "die_at_seconds": Faults(start_delay_seconds=5.0, die_at_seconds=0.5),
    }[fault]

    def second_fails(n: int) -> Faults:
        return bad if n == 2 else Faults()

    t = talk(
        lines,
        latency,
        second_fails,
        extra=("next_session_ready_timeout_seconds=6",),
        react_with_tool=True,
    )
    everything_once(t)
    assert t.tools.asked >= 2
    assert t.run.result.metrics["failures"] >= 1
    failed_at = next(float(x.split()[0]) for x in t.run.log if "s2 (next) failed" in x)
    (first_tool, *_) = t.tool_spans()
    assert (first_tool[0] < failed_at < first_tool[1]) == (latency == 5.0)


def test_a_tool_that_raises_or_times_out_is_answered_once_without_a_result() -> None:
    lines = tool_lines((5.0, 1, True), (15.0, 2, True), (25.0, 3, True), (48.0, 4, True))
    t = talk(lines, 0.5, fail=(2,), hang=(4,), extra=("tools.timeout_seconds=6",))
    everything_once(t, without_result=(2, 4))
    failures = [x for x in t.run.log if "[TOOL]" in x and "failed" in x]
    assert len(failures) == 2 and "asked to fail for 2" in failures[0]
    assert "timed out after 6 s" in failures[1]


def test_a_repeated_tool_use_id_runs_once() -> None:
    lines = tool_lines((5.0, 1, True), (15.0, 2, True))
    t = talk(lines, 0.5, lambda n: Faults(repeat_tool_use=True))
    everything_once(t)
    assert sum(1 for x in t.run.log if "asked again: ignored" in x) == 2


def test_the_tools_bench_scenario_reports_every_count(tmp_path: Path) -> None:
    out = tmp_path / "tools.json"
    assert cli.main(["bench", "--scenario", "tools", "--minutes", "4", "--json", str(out)]) == 0
    f = json.loads(out.read_text())["tools"]
    assert f["tool_questions"] >= 5 and f["handoffs"] >= 3
    assert f["tool_answered_once_with_result"] == f["tool_questions"]
    assert f["tool_lost"] == f["tool_answered_twice"] == f["tool_wrong_result"] == 0
    assert f["tool_ran_twice"] == [] and "tool_added_reply_delay_ms_p99" in f


@pytest.mark.slow  # hypothesis plays 40 whole conversations
@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    asked_at=st.floats(24.0, 58.0),
    latency=st.floats(0.1, 12.0),
    next_opens_in=st.floats(0.0, 8.0),
    dies_at=st.one_of(st.none(), st.floats(25.0, 59.0)),
)
def test_any_timing_of_a_tool_call_against_a_handoff(
    asked_at: float, latency: float, next_opens_in: float, dies_at: float | None
) -> None:
    """Hypothesis picks when the tool question comes (around the threshold and the deadline),
    how long the tool takes, how slowly the next session opens, and whether the first session
    dies: every question is still answered once with its result and its tool runs once.
    The user waits for the answer: what they say at a hand-off comes after it. (Speaking while
    the result is awaited, just as the answer begins, makes the engine hold that answer back
    as talked over, by the ledger's no-talk-over rule; the question then counts as lost.)"""
    lines = tool_lines((20.0, 1, False), (asked_at, 2, True), (asked_at + latency + 12, 3, False))

    def faults(n: int) -> Faults:
        if n == 1:
            return Faults(die_at_seconds=dies_at)
        return Faults(start_delay_seconds=next_opens_in)

    after_answer = {n: latency + 45.0 for n in range(1, 5)}  # after line 3 and its answer
    everything_once(talk(lines, latency, faults, late_at=after_answer))


@pytest.mark.parametrize("before", [0.6, 0.3, 0.1, 0.0])
def test_speaking_as_a_tool_answer_begins_does_not_lose_it(before: float) -> None:
    """The user asks a tool question and, while its result is awaited, starts saying the
    next line ``before`` s before the answer would begin. The answer must not be lost: held
    back until they stop and then played, or asked for again (0.0: the answer begins a frame
    before the user does and the service stops it before a word of it sounds: a replacement
    hears the question again and joins the call); the next line is answered too."""
    alone = talk(tool_lines((5.0, 1, True)), 2.0)
    heard = testsignal.decode_marks(bytes(alone.run.sink.timeline), oracle.OUTPUT_RATE)
    begins = next(m for m in heard if m.kind == "A" and m.number == 1).start
    lines = [
        Line(number=1, at=5.0, tool=True),
        Line(number=2, at=begins / oracle.OUTPUT_RATE - before),
    ]
    t = talk(lines, 2.0)
    assert t.calls == {1: 1}
    assert t.tools.lost == [] and t.tools.once_with_result == 1, t.tools.as_dict()
    assert t.run.score.lost == [] and t.run.score.talk_over == [], t.run.score.as_dict()

"""``sonic-fsm bench``: the figures of architecture.md, measured.

Three runs, all on the test signal so the oracle can count:
1. a long conversation in virtual time on the in-process emulator (correctness, engine CPU
   per chunk, simulated speed, memory growth), with utterances spoken during hand-offs and a
   barge-in;
2. a short conversation in real time on the in-process emulator (hand-off duration and the
   reply delay a hand-off adds, as a person would feel them);
3. the same over the real AWS SDK against the emulator's HTTP/2 endpoint (``--sdk``);

and the turn-taking scenario (:mod:`sonic_fsm.bench.turn_taking`). ``--scenario`` picks one.
"""

from __future__ import annotations

import array
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nova_emulator.faults import Faults
from sonic_fsm import clock
from sonic_fsm.audio.wav import INPUT_RATE, TimelineSink, WavWriter, iter_wav
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle
from sonic_fsm.bench.script import Line, ReactiveSource, evenly
from sonic_fsm.core.backend import Backend
from sonic_fsm.core.metrics import percentile
from sonic_fsm.runner import Runner, RunResult
from sonic_fsm.settings import Settings, replace
from sonic_fsm.tools import Tool

REALTIME_OVERRIDES = {
    "session_limit_seconds": 40.0,
    "transition_threshold_seconds": 15.0,
    "hard_deadline_margin_seconds": 6.0,
}


def _rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _slow_next(n: int) -> Faults:
    """Next sessions take 3 s to open, so the user speaks during hand-offs."""
    return Faults(start_delay_seconds=3.0) if n > 1 else Faults()


@dataclass
class ScoredRun:
    """A finished conversation with everything needed to judge it."""

    result: RunResult
    score: oracle.Score
    conv: Runner
    source: ReactiveSource
    sink: TimelineSink
    log: list[str]
    wall_seconds: float
    rss: list[tuple[float, float]]


def scored_run(
    settings: Settings,
    lines: list[Line],
    backend: Backend | None = None,
    virtual: bool = True,
    barge_in_at: tuple[int, ...] = (2,),
    late_at: dict[int, float] | None = None,
    tools: Iterable[Tool] = (),
    react_with_tool: bool = False,
    spool: Path | None = None,
    **source_options: Any,
) -> ScoredRun:
    """Speak ``lines`` (and react at hand-offs), then score what the speaker played, with
    the hand-off windows of the run's log. ``tools``: offered besides the settings' (e.g. a
    test-signal tool with its own timing); ``source_options`` go to :class:`ReactiveSource`.

    With ``spool`` (a folder), what was said and heard (and the log) goes to files there as
    the conversation runs and is scored in a streaming pass: memory then holds the
    conversation alone, however long it is (the memory scenario)."""
    holder: list[Runner] = []
    rate = settings.audio.output_sample_rate
    sink = TimelineSink(spool / "heard.wav" if spool else None, rate)
    said = WavWriter(spool / "said.wav", INPUT_RATE) if spool else None
    # Reactions are numbered after the script's lines, so no two utterances share an id.
    source_options.setdefault("extra_start", max([1000, *(line.number for line in lines)]) + 1)

    def state() -> str:
        return holder[0].conversation.state if holder else "NORMAL"

    def speaker_busy() -> bool:
        return sink.queued_seconds(asyncio.get_running_loop().time()) > 0

    source = ReactiveSource(
        lines,
        state,
        speaker_busy,
        settings.audio.chunk_frames,
        barge_in_at=barge_in_at,
        late_at=late_at,
        react_with_tool=react_with_tool,
        record=said.write if said else None,
        **source_options,
    )
    log: list[str] = []
    log_file = open(spool / "log.txt", "w") if spool else None  # noqa: SIM115 (closed below)

    def log_line(line: str) -> None:
        if log_file is not None:
            log_file.write(line + "\n")  # spooled too: the log is the bench's own record
        else:
            log.append(line)

    conv = Runner(
        settings, backend or LocalBackend(settings), source, sink, log=log_line, tools=tools
    )
    conv.conversation.chunk_cpu_ns = array.array("q")  # 8 bytes a chunk, not a Python int each
    holder.append(conv)
    rss: list[tuple[float, float]] = []

    async def sample_memory() -> None:
        # The bench's own recordings (what was said and heard, kept for the oracle, and the
        # engine's time per chunk) grow by design; they are taken out so the figure is the
        # conversation's own growth.
        loop = asyncio.get_running_loop()
        cpu = conv.conversation.chunk_cpu_ns
        while True:
            own = len(sink.timeline) + len(source.recorded) + 8 * len(cpu or ())
            kept = own / 1e6
            rss.append((loop.time(), _rss_mb() - kept))
            await asyncio.sleep(60.0)

    async def main() -> RunResult:
        sampler = asyncio.create_task(sample_memory())
        try:
            return await conv.run()
        finally:
            sampler.cancel()

    wall = time.perf_counter()
    result = clock.run(main(), virtual=virtual)
    wall = time.perf_counter() - wall
    if spool is not None and said is not None and log_file is not None:
        said.close()
        log_file.close()
        log = (spool / "log.txt").read_text().splitlines()
        score = oracle.score_stream(
            iter_wav(spool / "said.wav", INPUT_RATE),
            iter_wav(spool / "heard.wav", rate),
            oracle.handoff_windows(log),
        )
    else:
        windows = oracle.handoff_windows(log)
        score = oracle.score(bytes(source.recorded), bytes(sink.timeline), windows)
    return ScoredRun(result, score, conv, source, sink, log, wall, rss)


def conversation(
    settings: Settings,
    minutes: float,
    backend: Backend | None = None,
    virtual: bool = True,
    spacing: float = 15.0,
    spool: Path | None = None,
) -> dict[str, Any]:
    """One scored conversation of ``minutes``; returns the figures."""
    count = max(1, int(minutes * 60 / spacing))
    run = scored_run(
        settings,
        evenly(count, spacing),
        backend or LocalBackend(settings, _slow_next),
        virtual,
        barge_in_at=(2,),
        late_at={3: 2.6, 4: 2.9},
        spool=spool,
    )
    score, result, rss = run.score, run.result, run.rss
    m = result.metrics
    us = sorted(ns / 1000 for ns in run.conv.conversation.chunk_cpu_ns or [])
    extras = set(run.source.extras)
    ordinary = [d for n, d in score.reply_delay_ms.items() if n not in extras]
    across = sorted(d for n, d in score.reply_delay_ms.items() if n in extras)
    base = statistics.median(ordinary) if ordinary else 0.0
    added = [d - base for d in across]
    growth = None
    if len(rss) >= 3:
        (t1, r1), (t2, r2) = rss[len(rss) // 3], rss[-1]
        growth = round((r2 - r1) / max(t2 - t1, 1e-9) * 3600, 2)
    return {
        "simulated_seconds": round(result.seconds, 1),
        "wall_seconds": round(run.wall_seconds, 2),
        "sim_speed": round(result.seconds / run.wall_seconds, 1),
        **score.as_dict(),
        "handoffs": m["handoffs"],
        "recoveries": m["recoveries"],
        "barge_ins": m["barge_ins"],
        "assistant_truncated_ms": m["assistant_truncated_ms"],
        "handoff_ms_p50": m["handoff_ms_p50"],
        "handoff_ms_p99": m["handoff_ms_p99"],
        "ordinary_reply_delay_ms_p50": round(base, 1),
        "added_reply_delay_ms_p50": percentile(added, 50),
        "added_reply_delay_ms_p99": percentile(added, 99),
        "productive_pct": m["productive_pct"],
        "peak_buffer_bytes": m["peak_buffer_bytes"],
        "frames_lost": m["frames_lost"],
        "engine_us_per_chunk_p50": percentile(us, 50),
        "engine_us_per_chunk_p99": percentile(us, 99),
        "rss_mb": round(_rss_mb(), 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "rss_mb_per_hour": growth,
    }


def memory(settings: Settings, hours: float) -> dict[str, Any]:
    """A long conversation in virtual time with what was said and heard spooled to disk,
    so the process holds only the conversation: its peak RSS and growth per simulated hour.
    Run alone (``--scenario memory``), so the peak is this conversation's and no other's."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sonic-bench-memory-") as spool:
        return conversation(settings, hours * 60, spool=Path(spool))


def over_sdk(settings: Settings, minutes: float) -> dict[str, Any]:
    """The real-time conversation through the real SDK against the local endpoint."""
    from sonic_fsm.local_endpoint import on_thread

    with on_thread(lambda: LocalBackend(settings, _slow_next)) as endpoint:
        client, backend = endpoint.bedrock(settings)
        return conversation(client, minutes, backend=backend, virtual=False)


def main(
    settings: Settings,
    minutes: float = 30.0,
    json_path: str | None = None,
    realtime_minutes: float = 1.5,
    sdk: bool = False,
    out: Callable[[str], None] = print,
    scenario: str = "all",
    turn_minutes: float = 10.0,
    seeds: int = 2,
    hours: float = 8.0,
) -> int:
    """``scenario``: ``hand-off`` (the three runs above), ``turn-taking``
    (:mod:`sonic_fsm.bench.turn_taking`), ``tools`` (:mod:`sonic_fsm.bench.tools`), ``all``,
    or ``memory`` (:func:`memory`, not in ``all``)."""
    figures: dict[str, Any] = {}
    if scenario == "memory":
        out(f"bench: {hours:g}-hour conversation in virtual time, spooled, for memory ...")
        figures["memory"] = memory(settings, hours)
    if scenario in ("all", "hand-off"):
        out(f"bench: {minutes:g}-minute conversation in virtual time ...")
        figures["virtual"] = conversation(settings, minutes)
        if realtime_minutes > 0:
            short = replace(settings, **REALTIME_OVERRIDES)
            out(f"bench: {realtime_minutes:g}-minute conversation in real time (in-process) ...")
            figures["realtime"] = conversation(short, realtime_minutes, virtual=False)
            if sdk:
                out(f"bench: {realtime_minutes:g}-minute conversation over the real SDK ...")
                figures["sdk"] = over_sdk(short, realtime_minutes)
    bad = any(f["utterances_lost"] or f["answered_twice"] for f in figures.values())
    if scenario in ("all", "turn-taking"):
        from sonic_fsm.bench import turn_taking  # it runs its conversations with scored_run

        figures["turn_taking"] = turn_taking.run(settings, turn_minutes, seeds, out)
        bad = bad or turn_taking.broken(figures["turn_taking"])
    if scenario in ("all", "tools"):
        from sonic_fsm.bench import tools  # it runs its conversation with scored_run

        out(f"bench: {minutes:g}-minute conversation with tool questions in virtual time ...")
        figures["tools"] = tools.scenario(settings, minutes)
        bad = bad or tools.broken(figures["tools"])
    text = json.dumps(figures, indent=2)
    out(text)
    if json_path:
        Path(json_path).write_text(text + "\n")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Settings()))

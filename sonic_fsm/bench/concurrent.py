"""``sonic-fsm bench --concurrent N``: N conversations at once in one process, in real time,
each through the real AWS SDK to the emulator's endpoint, each scored by the oracle.

The emulator runs as its own process (``sonic-fsm emulator serve``), so the CPU and memory
measured here are the conversations' own: what a deployment against Bedrock would pay.
Figures: conversations that stayed clean (nothing lost, nothing answered twice, no answer cut
that the user did not talk over), CPU and memory per conversation, and audio lateness: for
each captured chunk, how long after its capture time the engine handled it (the event loop's
backlog; p99 and max over every chunk of every conversation). A run *fits* when every
conversation stayed clean and the lateness p99 is under :data:`LATENESS_GOAL_MS`; its
conversations per core are N over the cores its CPU figure used. Several N in one call
(:func:`sweep`) report the largest N that fits.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.bench import oracle
from sonic_fsm.bench.run import REALTIME_OVERRIDES, _rss_mb
from sonic_fsm.bench.script import ReactiveSource, evenly
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
from sonic_fsm.core.metrics import percentile
from sonic_fsm.runner import Runner
from sonic_fsm.settings import Settings, replace

SPACING_SECONDS = 12.0  # between utterances: the endpointing pause, an answer, a reaction
STAGGER_SECONDS = 5.0  # the conversations' starts are spread over this
LATENESS_GOAL_MS = 20.0  # a run fits when its lateness p99 is under this and all are clean


class _Timed:
    """Wraps a source: the capture time of chunk ``i`` is the first chunk's plus i periods."""

    def __init__(self, source: ReactiveSource, period: float) -> None:
        self.source = source
        self.period = period
        self.t0: float | None = None

    async def frames(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        async for chunk in self.source.frames():
            if self.t0 is None:
                self.t0 = loop.time()
            yield chunk

    def due(self, seq: int) -> float:
        assert self.t0 is not None
        return self.t0 + seq * self.period

    async def aclose(self) -> None:
        await self.source.aclose()


class _One:
    """One conversation of the bench, with what is needed to judge it."""

    def __init__(self, settings: Settings, backend: Any, seconds: float, lateness: list[float]):
        self.sink = TimelineSink(None, settings.audio.output_sample_rate)
        holder: list[Runner] = []

        def state() -> str:
            return holder[0].conversation.state if holder else "NORMAL"

        def busy() -> bool:
            return self.sink.queued_seconds(asyncio.get_running_loop().time()) > 0

        count = max(1, int((seconds - 10.0) / SPACING_SECONDS))
        self.source = ReactiveSource(
            evenly(count, SPACING_SECONDS),
            state,
            busy,
            settings.audio.chunk_frames,
            barge_in_at=(2,),
        )
        period = settings.audio.chunk_frames / settings.audio.input_sample_rate
        self.timed = _Timed(self.source, period)

        def handled(event: ev.WorkerEvent | None, effects: list[fx.Effect]) -> None:
            if isinstance(event, ev.MicFrame) and self.timed.t0 is not None:
                lateness.append(self.conv.now() - self.timed.due(event.seq))

        self.conv = Runner(settings, backend, self.timed, self.sink, on_handled=handled)
        holder.append(self.conv)

    def score(self) -> oracle.Score:
        return oracle.score(bytes(self.source.recorded), bytes(self.sink.timeline))

    def kept_mb(self) -> float:
        return (len(self.sink.timeline) + len(self.source.recorded)) / 1e6


def run(
    settings: Settings, n: int, seconds: float = 75.0, stagger: float = STAGGER_SECONDS
) -> dict[str, Any]:
    """N scored conversations of about ``seconds`` each, at once (their starts spread over
    ``stagger`` seconds); returns the figures."""
    from sonic_fsm.local_endpoint import as_process

    short = replace(settings, **REALTIME_OVERRIDES)
    with as_process([f"{k}={v}" for k, v in REALTIME_OVERRIDES.items()]) as served:
        os.environ["SSL_CERT_FILE"] = str(served.ca_file)
        lateness: list[float] = []

        async def main() -> tuple[list[_One], dict[str, float]]:
            base_rss = _rss_mb()
            ones = [_One(*served.bedrock(short), seconds, lateness) for _ in range(n)]
            peak = {"rss": 0.0}

            async def start(i: int, one: _One) -> None:
                await asyncio.sleep(stagger * i / max(1, n))
                await one.conv.run()

            async def sample() -> None:
                while True:
                    await asyncio.sleep(5.0)
                    kept = sum(o.kept_mb() for o in ones)
                    peak["rss"] = max(peak["rss"], _rss_mb() - kept - base_rss)

            sampler = asyncio.create_task(sample())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            try:
                await asyncio.gather(*(start(i, o) for i, o in enumerate(ones)))
            finally:
                sampler.cancel()
            return ones, {
                "cpu": time.process_time() - cpu0,
                "wall": time.perf_counter() - wall0,
                "rss": peak["rss"],
            }

        ones, used = asyncio.run(main())
        server_cpu = served.cpu_seconds()
    scores = [o.score() for o in ones]
    clean = [
        s
        for s in scores
        if s.spoken and not s.lost and not s.answered_twice and not s.cut_without_barge_in
    ]
    late_ms = sorted(1000 * x for x in lateness)
    handoffs = [o.conv.metrics().get("handoffs", 0) for o in ones]
    cores_used = used["cpu"] / used["wall"]
    p99 = percentile(late_ms, 99)
    return {
        "conversations": n,
        "stagger_seconds": stagger,
        "clean": len(clean),
        "utterances_spoken": sum(s.spoken for s in scores),
        "utterances_lost": sum(len(s.lost) for s in scores),
        "lost_ids": sorted({n for s in scores for n in s.lost}),
        "answered_twice": sum(len(s.answered_twice) for s in scores),
        "cut_without_barge_in": sum(len(s.cut_without_barge_in) for s in scores),
        "handoffs_min": min(handoffs, default=0),
        "wall_seconds": round(used["wall"], 1),
        "cpu_cores_used": round(cores_used, 3),
        "cpu_pct_of_a_core_per_conversation": round(100 * cores_used / n, 3),
        "conversations_per_core": round(n / cores_used, 1) if cores_used else None,
        "fits": len(clean) == n and p99 is not None and p99 < LATENESS_GOAL_MS,
        "memory_mb_per_conversation": round(used["rss"] / n, 2),
        "lateness_ms_p50": percentile(late_ms, 50),
        "lateness_ms_p99": p99,
        "lateness_ms_max": round(late_ms[-1], 3) if late_ms else None,
        "emulator_cpu_seconds": round(server_cpu, 2),
    }


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest N whose run fits (every conversation clean, lateness p99 under the goal),
    its conversations per core, and one line saying so."""
    fitting = [r for r in runs if r["fits"]]
    if not fitting:
        line = (
            f"no N fits (all clean, lateness p99 under {LATENESS_GOAL_MS:g} ms) among "
            + ", ".join(str(r["conversations"]) for r in runs)
        )
        return {"largest_clean_n": None, "conversations_per_core": None, "line": line}
    best = max(fitting, key=lambda r: r["conversations"])
    line = (
        f"largest clean N: {best['conversations']} at once in one process "
        f"(lateness p99 {best['lateness_ms_p99']} ms), "
        f"{best['cpu_pct_of_a_core_per_conversation']} % of a core each: "
        f"{best['conversations_per_core']} conversations per core"
    )
    return {
        "largest_clean_n": best["conversations"],
        "conversations_per_core": best["conversations_per_core"],
        "line": line,
    }


def sweep(
    settings: Settings, ns: list[int], seconds: float = 75.0, stagger: float = STAGGER_SECONDS
) -> dict[str, Any]:
    """:func:`run` for each N in turn, and the :func:`verdict` over them."""
    runs = [run(settings, n, seconds, stagger) for n in ns]
    return {**verdict(runs), "runs": runs}

"""Measure what the dashboard costs: screen updates a second, engine events a second, CPU.

Runs the demo conversation (in-process emulator, the simulated talker, a silent speaker)
for ``--seconds`` of real time twice: once without the dashboard (the baseline) and once
with it, headless, and prints both. The dashboard's own CPU is the difference.
``--terminal`` instead runs the dashboard on the real terminal (so drawing to it counts)
and writes the figures to ``--out`` when it quits by itself.

    .venv/bin/python -m tui.measure --seconds 20
    .venv/bin/python -m tui.measure --seconds 10 --burst   # the engine flooded with events
    script -qc ".venv/bin/python -m tui.measure --terminal --seconds 20 --out /tmp/m.json" /dev/null
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sonic_fsm import settings as settings_mod
from sonic_fsm.core.events import Operator, Tick
from sonic_fsm.runner import Runner
from sonic_fsm.settings import Settings
from sonic_fsm.wiring import build_conversation
from tui.app import DEMO_OVERRIDES, Dashboard


@dataclass(frozen=True, kw_only=True)
class Figures:
    mode: str
    seconds: float
    cpu_seconds: float
    engine_events: int
    handoffs: float
    polls: int = 0
    renders: int = 0

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds

    def line(self) -> str:
        out = (
            f"{self.mode:<14} {self.seconds:6.1f} s  cpu {self.cpu_pct:5.1f} %  "
            f"engine {self.engine_events / self.seconds:7.1f} events/s  "
            f"hand-offs {self.handoffs:.0f}"
        )
        if self.polls:
            out += (
                f"  polls {self.polls / self.seconds:5.1f}/s"
                f"  screen updates {self.renders / self.seconds:5.1f}/s"
            )
        return out


def demo_conversation(s: Settings) -> Runner:
    """What ``make run`` gives a user without a microphone: the emulator, the simulated talker
    (who sometimes talks over an answer), no speaker; it never ends by itself."""
    return build_conversation(s, mic="talker", speaker="null", finish_when_input_ends=False)


async def flood(conv: Runner, seconds: float, batch: int = 500) -> None:
    """Keep the engine busy: ``batch`` Tick events at a time, as fast as it takes them."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    inner = conv.conversation
    while conv.snapshot() is None:
        await asyncio.sleep(0.01)
    while loop.time() < end:
        for _ in range(batch):
            inner.post(Tick())
        while inner.queue.qsize() > batch // 2:
            await asyncio.sleep(0)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(
    seconds: float, body: Callable[[Runner], Awaitable[Dashboard | None]], s: Settings
) -> tuple[float, float, Runner, Dashboard | None]:
    conv = demo_conversation(s)
    cpu0, wall0 = _cpu(), time.monotonic()
    app = await body(conv)
    return time.monotonic() - wall0, _cpu() - cpu0, conv, app


async def baseline(s: Settings, seconds: float, burst: bool = False) -> Figures:
    async def body(conv: Runner) -> None:
        task = asyncio.create_task(conv.run())
        if burst:
            await flood(conv, seconds)
        else:
            await asyncio.sleep(seconds)
        conv.submit(Operator(command="stop"))
        await task
        return None

    wall, cpu, conv, _ = await _timed(seconds, body, s)
    return _figures("engine only", wall, cpu, conv, None)


async def with_dashboard(s: Settings, seconds: float, burst: bool = False) -> Figures:
    async def body(conv: Runner) -> Dashboard:
        app = Dashboard(conv, settings=s)
        async with app.run_test(size=(120, 40)) as pilot:
            if burst:
                await flood(conv, seconds)
            else:
                await pilot.pause(seconds)
            await app.action_quit()
            while app.engine is not None and not app.engine.is_finished:
                await pilot.pause(0.05)
        return app

    wall, cpu, conv, app = await _timed(seconds, body, s)
    return _figures("with dashboard", wall, cpu, conv, app)


def _figures(mode: str, wall: float, cpu: float, conv: Runner, app: Dashboard | None) -> Figures:
    snap = conv.snapshot()
    return Figures(
        mode=mode,
        seconds=wall,
        cpu_seconds=cpu,
        engine_events=conv.conversation.engine_events,
        handoffs=snap.metrics.get("handoffs", 0.0) if snap else 0.0,
        polls=app.polls if app else 0,
        renders=app.renders if app else 0,
    )


class _TimedDashboard(Dashboard):
    """Quits by itself after ``seconds`` (for a run on the real terminal)."""

    def __init__(self, source: Runner, s: Settings, seconds: float) -> None:
        super().__init__(source, settings=s)
        self.seconds = seconds

    def on_mount(self) -> None:
        # Textual also runs Dashboard.on_mount (handlers run for each class in the MRO).
        self.set_timer(self.seconds, self.action_quit)


def on_terminal(s: Settings, seconds: float) -> Figures:
    holder: dict[str, Any] = {}

    async def go() -> None:
        conv = demo_conversation(s)
        app = _TimedDashboard(conv, s, seconds)
        cpu0, wall0 = _cpu(), time.monotonic()
        await app.run_async()
        holder["f"] = _figures("terminal", time.monotonic() - wall0, _cpu() - cpu0, conv, app)

    asyncio.run(go())
    return holder["f"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.measure", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--terminal", action="store_true", help="draw on the real terminal")
    parser.add_argument(
        "--burst", action="store_true", help="flood the engine with Tick events meanwhile"
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    s = settings_mod.load(None, [*DEMO_OVERRIDES, *args.set])
    if args.terminal:
        results = [on_terminal(s, args.seconds)]
    else:
        results = [
            asyncio.run(baseline(s, args.seconds, args.burst)),
            asyncio.run(with_dashboard(s, args.seconds, args.burst)),
        ]
    report = [{**asdict(f), "cpu_pct": round(f.cpu_pct, 2)} for f in results]
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    for f in results:
        print(f.line())
    if len(results) == 2 and args.burst:
        alone, shown = (f.engine_events / f.seconds for f in results)
        print(f"with the dashboard the engine handles {100 * shown / alone:.0f} % as many events")
    elif len(results) == 2:
        extra = results[1].cpu_pct - results[0].cpu_pct
        print(f"the dashboard's own CPU: about {extra:.1f} % of one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``sonic-fsm bench --scenario dashboard``: what the dashboard costs.

The demo conversation (the demo profile, the in-process emulator, the simulated talker, a
silent speaker) for ``--seconds`` of real time, twice: once alone (the baseline) and once
under the real Textual dashboard, headless; the dashboard's own CPU is the difference.
Reported for each: CPU, engine events a second, hand-offs, and the dashboard's polls and
screen updates a second. ``--burst`` floods the engine with events meanwhile: how many it
still handles under the dashboard.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sonic_fsm.core.events import Tick
from sonic_fsm.runner import Runner
from sonic_fsm.settings import Settings
from sonic_fsm.wiring import build_conversation
from tui.app import DEMO_OVERRIDES, Dashboard

__all__ = ["DEMO_OVERRIDES", "run"]

QUIT_SECONDS = 30.0  # the dashboard closes its sessions properly on quit; bounded


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _flood(runner: Runner, seconds: float, batch: int = 500) -> None:
    """Keep the engine busy: ``batch`` Tick events at a time, as fast as it takes them."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    inner = runner.conversation
    while runner.snapshot() is None and loop.time() < end:
        await asyncio.sleep(0.01)
    while loop.time() < end:
        for _ in range(batch):
            inner.post(Tick())
        while inner.queue.qsize() > batch // 2 and loop.time() < end:
            await asyncio.sleep(0)


async def _alone(runner: Runner, seconds: float, burst: bool) -> None:
    task = asyncio.create_task(runner.run())
    await (_flood(runner, seconds) if burst else asyncio.sleep(seconds))
    runner.stop()
    await asyncio.wait_for(task, QUIT_SECONDS)


async def _shown(runner: Runner, seconds: float, burst: bool, s: Settings) -> Dashboard:
    app = Dashboard(runner, settings=s)
    async with app.run_test(size=(120, 40)) as pilot:
        await (_flood(runner, seconds) if burst else pilot.pause(seconds))
        await app.action_quit()
        async with asyncio.timeout(QUIT_SECONDS):
            while app.engine is not None and not app.engine.is_finished:
                await pilot.pause(0.05)
    return app


def _measured(
    s: Settings, body: Callable[[Runner], Coroutine[Any, Any, Dashboard | None]]
) -> dict[str, Any]:
    runner = build_conversation(s, mic="talker", speaker="null", finish_when_input_ends=False)
    cpu, wall = _cpu(), time.monotonic()
    app = asyncio.run(body(runner))
    cpu, wall = _cpu() - cpu, time.monotonic() - wall
    snap = runner.snapshot()
    figures = {
        "seconds": round(wall, 2),
        "cpu_pct": round(100 * cpu / wall, 2),
        "engine_events_per_second": round(runner.conversation.engine_events / wall, 1),
        "handoffs": snap.metrics.get("handoffs", 0.0) if snap else 0.0,
    }
    if app is not None:
        figures["polls_per_second"] = round(app.polls / wall, 1)
        figures["screen_updates_per_second"] = round(app.renders / wall, 1)
    return figures


def run(s: Settings, seconds: float = 20.0, burst: bool = False) -> dict[str, Any]:
    """``s``: the settings, the demo profile (:data:`DEMO_OVERRIDES`) under the user's."""
    alone = _measured(s, lambda runner: _alone(runner, seconds, burst))
    shown = _measured(s, lambda runner: _shown(runner, seconds, burst, s))
    figures: dict[str, Any] = {"engine_only": alone, "with_dashboard": shown}
    if burst:
        kept = shown["engine_events_per_second"] / max(alone["engine_events_per_second"], 1e-9)
        figures["engine_events_kept_pct"] = round(100 * kept, 1)
    else:
        figures["dashboard_cpu_pct"] = round(shown["cpu_pct"] - alone["cpu_pct"], 2)
    return figures

"""The asyncio adapter: operator commands, snapshots for views, and the virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sonic_fsm import clock
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench.script import ReactiveSource, evenly
from sonic_fsm.recording import SessionRecorder
from sonic_fsm.runner import Runner
from sonic_fsm.settings import load

SHORT = ["session_limit_seconds=40", "transition_threshold_seconds=15",
         "hard_deadline_margin_seconds=6"]  # fmt: skip


def test_virtual_clock_jumps_but_keeps_order() -> None:
    seen: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        seen.append((name, asyncio.get_running_loop().time()))

    async def main() -> None:
        await asyncio.gather(sleeper("late", 3600.0), sleeper("early", 60.0))

    clock.run(main(), virtual=True)
    assert [n for n, _ in seen] == ["early", "late"]
    assert abs(seen[1][1] - 3600.0) < 1e-6


def test_operator_records_on_demand_and_views_see_the_path(tmp_path: Path) -> None:
    settings = load(None, [*SHORT, f"recording_output_dir='{tmp_path}'"])
    sink = TimelineSink(None)
    holder: list[Runner] = []
    states: list[str] = []

    def state() -> str:
        return holder[0].conversation.state if holder else "NORMAL"

    source = ReactiveSource(evenly(3, 8.0), state, lambda: False, barge_in_at=())
    conv = Runner(
        settings,
        LocalBackend(settings),
        source,
        sink,
        recorder=lambda: SessionRecorder.from_settings(settings),
    )
    holder.append(conv)

    async def main() -> None:
        run = asyncio.create_task(conv.run())
        await asyncio.sleep(1.0)
        conv.set_recording(True)
        await asyncio.sleep(1.0)
        snap = conv.snapshot()
        assert snap is not None and snap.recording
        conv.force_handoff()
        await asyncio.sleep(2.0)
        snap = conv.snapshot()
        assert snap is not None
        states.extend(t.dest for t in snap.transitions)
        await run

    clock.run(main(), virtual=True)
    assert states[:4] == ["BUFFERING", "HANDOFF", "PROMOTED", "NORMAL"]
    logs = list(tmp_path.rglob("*.jsonl"))
    assert logs, "recording_on made no recording"
    assert any(p.name.endswith(".wav") for p in tmp_path.rglob("*"))

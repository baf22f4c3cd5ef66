"""The asyncio adapter: operator commands, snapshots for views, and the virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sonic_fsm import clock
from sonic_fsm.audio.null import NullSink
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench.script import ReactiveSource, evenly
from sonic_fsm.core import effects as fx
from sonic_fsm.core import events as ev
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


class Speaker(NullSink):
    """A device that counts what it has really played, as the PyAudio speaker does."""

    def __init__(self) -> None:
        super().__init__(rate=24000)
        self.given = 0
        self.dropped = 0

    def play(self, pcm: bytes, now: float) -> None:
        super().play(pcm, now)
        self.given += len(pcm)

    def flush(self, now: float) -> int:
        dropped = super().flush(now)
        self.dropped += dropped
        return dropped

    @property
    def played_bytes(self) -> int:
        queued = self._bytes(self.queued_seconds(asyncio.get_running_loop().time()))
        return self.given - self.dropped - queued


def test_a_speaker_that_counts_what_it_played_reports_it_to_the_engine() -> None:
    """The runner is a front end like any: the speaker's account goes in as playback feedback
    (a sink that only models real-time playback sends none)."""

    def progress(sink: NullSink) -> list[ev.PlaybackProgress]:
        settings = load(None, [])
        seen: list[ev.PlaybackProgress] = []

        def handled(event: ev.WorkerEvent | None, effects: list[fx.Effect]) -> None:
            if isinstance(event, ev.PlaybackProgress):
                seen.append(event)

        holder: list[Runner] = []
        source = ReactiveSource(
            evenly(2, 6.0), lambda: holder[0].conversation.state, lambda: False, barge_in_at=()
        )
        conv = Runner(settings, LocalBackend(settings), source, sink, on_handled=handled)
        holder.append(conv)
        result = clock.run(asyncio.wait_for(conv.run(), 600), virtual=True)
        assert result.ended_because == "input_ended"
        return seen

    reports = progress(Speaker())
    assert len(reports) > 20 and any(r.queued_seconds > 0 for r in reports)
    assert progress(NullSink(rate=24000)) == []

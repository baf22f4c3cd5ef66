"""Shared helpers: run a whole conversation on the in-process emulator in virtual time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sonic_fsm import clock
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import FaultPlan, LocalBackend, no_faults
from sonic_fsm.bench import oracle
from sonic_fsm.bench.script import Line, ReactiveSource
from sonic_fsm.runner import Conversation, RunResult
from sonic_fsm.settings import Settings


@dataclass
class Outcome:
    result: RunResult
    score: oracle.Score
    conv: Conversation
    source: ReactiveSource
    sink: TimelineSink
    log: list[str]


def converse(
    settings: Settings,
    lines: list[Line],
    faults: FaultPlan = no_faults,
    barge_in_at: tuple[int, ...] = (2,),
    late_at: dict[int, float] | None = None,
) -> Outcome:
    """Speak ``lines`` (plus reactions at hand-offs) and score what the speaker played."""
    holder: list[Conversation] = []
    sink = TimelineSink(None, settings.audio.output_sample_rate)

    def state() -> str:
        engine = holder[0].engine if holder else None
        return engine.state.value if engine else "NORMAL"

    def speaker_busy() -> bool:
        return sink.queued_seconds(asyncio.get_running_loop().time()) > 0

    source = ReactiveSource(
        lines,
        state,
        speaker_busy,
        settings.audio.chunk_frames,
        barge_in_at=barge_in_at,
        late_at=late_at,
    )
    log: list[str] = []
    conv = Conversation(settings, LocalBackend(settings, faults), source, sink, log=log.append)
    holder.append(conv)
    result = clock.run(conv.run(), virtual=True)
    score = oracle.score(bytes(source.recorded), bytes(sink.timeline))
    return Outcome(result, score, conv, source, sink, log)

"""Shared helpers: whole conversations on the in-process emulator in virtual time, scored."""

from __future__ import annotations

from nova_emulator.faults import FaultPlan, no_faults
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench.run import ScoredRun, scored_run
from sonic_fsm.bench.script import Line
from sonic_fsm.settings import Settings


def converse(
    settings: Settings,
    lines: list[Line],
    faults: FaultPlan = no_faults,
    barge_in_at: tuple[int, ...] = (2,),
    late_at: dict[int, float] | None = None,
) -> ScoredRun:
    """Speak ``lines`` (plus reactions at hand-offs) and score what the speaker played."""
    return scored_run(settings, lines, LocalBackend(settings, faults), True, barge_in_at, late_at)

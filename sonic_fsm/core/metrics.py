"""The engine's figures, in one place: what it counts as it runs (:class:`Metrics`), and the
two ways they are read: the few the snapshot shows live, and the summary a run ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sonic_fsm.core.engine import Engine


@dataclass
class Metrics:
    sessions_opened: int = 0
    handoffs: int = 0
    recoveries: int = 0
    handoff_ms: list[float] = field(default_factory=list)
    history_bytes_sent: list[int] = field(default_factory=list)
    time_in_state: dict[str, float] = field(default_factory=dict)  # states left, so far
    barge_ins: int = 0
    failures: int = 0
    audio_received_bytes: int = 0  # assistant audio that arrived from any session
    audio_played_bytes: int = 0  # queued on the speaker
    audio_interrupted_bytes: int = 0  # held back, then dropped because the user barged in


def time_in_state(eng: Engine) -> dict[str, float]:
    """Seconds spent in each state, the one the engine is in included."""
    t = dict(eng.metrics.time_in_state)
    t[eng.state.value] = t.get(eng.state.value, 0.0) + (eng.now - eng.state_since)
    return t


def productive_pct(eng: Engine) -> float:
    """The share of the conversation not spent switching (HANDOFF, RECOVERING)."""
    total = eng.now - eng.started_at
    if total <= 0:
        return 100.0
    t = time_in_state(eng)
    unproductive = t.get("HANDOFF", 0.0) + t.get("RECOVERING", 0.0)
    return 100.0 * (1 - unproductive / total)


def live(eng: Engine) -> dict[str, float]:
    """The figures the snapshot carries (the dashboard's metrics panel, the page)."""
    m, ms = eng.metrics, eng.metrics.handoff_ms
    return {
        "handoffs": float(m.handoffs),
        "recoveries": float(m.recoveries),
        "productive_pct": productive_pct(eng),
        "last_handoff_ms": ms[-1] if ms else 0.0,
        "peak_buffer_bytes": float(eng.buffer.peak_bytes),
        "frames_lost": float(eng.buffer.lost_frames),
    }


def summary(eng: Engine) -> dict[str, Any]:
    """The figures a run ends with (``sonic-fsm run --json``, the bench)."""
    m = eng.metrics
    ms = sorted(m.handoff_ms)
    return {
        "sessions": m.sessions_opened,
        "handoffs": m.handoffs,
        "recoveries": m.recoveries,
        "failures": m.failures,
        "barge_ins": m.barge_ins,
        "time_in_state_seconds": {k: round(v, 3) for k, v in time_in_state(eng).items()},
        "productive_pct": round(productive_pct(eng), 3),
        "peak_buffer_bytes": eng.buffer.peak_bytes,
        "frames_lost": eng.buffer.lost_frames,
        "history_bytes_sent": m.history_bytes_sent,
        "handoff_ms": [round(x, 3) for x in m.handoff_ms],
        "handoff_ms_p50": percentile(ms, 50),
        "handoff_ms_p99": percentile(ms, 99),
    }


def truncated_ms(eng: Engine) -> float:
    """Assistant audio that arrived but was neither played nor dropped for a barge-in."""
    m = eng.metrics
    lost = m.audio_received_bytes - m.audio_played_bytes - m.audio_interrupted_bytes
    return round(lost / (2 * eng.s.audio.output_sample_rate) * 1000, 1)


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return round(sorted_values[k], 3)

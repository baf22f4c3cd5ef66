"""Fixed snapshots and a source that serves them: for tests, screenshots and previews.

``python -m tui.sample`` opens the dashboard on the BUFFERING sample, no engine needed.
"""

from __future__ import annotations

from dataclasses import replace

from sonic_fsm.core.snapshot import (
    SessionView,
    Snapshot,
    ToolView,
    TranscriptLine,
    TransitionRecord,
)
from sonic_fsm.settings import Settings

_LOG = (
    "    0.000 [SESSION] s1 opened",
    "   30.000 [TRANSITION] NORMAL -> MONITORING (threshold_reached)",
    "   31.870 [AUDIO_START] assistant audio started on s1: buffering user audio",
    "   31.870 [TRANSITION] MONITORING -> BUFFERING (assistant_audio_started)",
    "   33.020 [TRANSITION] BUFFERING -> HANDOFF (turn_ended)",
    "   33.204 [TRANSITION] HANDOFF -> PROMOTED (buffer_drained)",
    "   33.204 [PROMOTION] s2 is current (handoff took 184 ms)",
    "   35.950 [TRANSITION] PROMOTED -> NORMAL (old_session_done)",
    "   65.950 [TRANSITION] NORMAL -> MONITORING (threshold_reached)",
    "   67.412 [TRANSITION] MONITORING -> BUFFERING (assistant_audio_started)",
)

_TRANSCRIPT = (
    TranscriptLine(kind="user", session_id="s1", text="utterance 1"),
    TranscriptLine(kind="assistant", session_id="s1", text="Answer to utterance 1."),
    TranscriptLine(kind="user", session_id="s1", text="utterance 2"),
    TranscriptLine(kind="assistant", session_id="s1", text="Answer to utterance 2."),
    TranscriptLine(kind="handoff", session_id="s2", text="s1 -> s2"),
    TranscriptLine(kind="user", session_id="s2", text="utterance 3"),
    TranscriptLine(kind="assistant", session_id="s2", text="Answer to utterance 3, which goes"),
    TranscriptLine(kind="assistant", session_id="s2", text="(interrupted)", interrupted=True),
    TranscriptLine(kind="user", session_id="s2", text="utterance 4"),
    TranscriptLine(kind="assistant", session_id="s2", text="Answer to utterance 4.", final=False),
)


def normal() -> Snapshot:
    """Twelve seconds into the first session, one question answered."""
    return Snapshot(
        now=12.0,
        state="NORMAL",
        last_transition=None,
        session_age_seconds=12.0,
        threshold_seconds=30.0,
        hard_deadline_seconds=52.0,
        limit_seconds=60.0,
        buffer_bytes=0,
        buffer_cap_bytes=320_000,
        sessions=(
            SessionView(
                session_id="s1",
                role="current",
                age_seconds=12.0,
                ready=True,
                audio_in_bytes=384_000,
                audio_out_bytes=201_600,
            ),
        ),
        transcript=_TRANSCRIPT[:2],
        log=_LOG[:1],
        metrics={
            "handoffs": 0,
            "productive_pct": 100.0,
            "utterances_lost": 0,
            "answered_twice": 0,
        },
        mic_level_db=-38.0,
    )


def buffering() -> Snapshot:
    """A hand-off under way: the next session is opening and user audio is being kept."""
    return Snapshot(
        now=69.0,
        state="BUFFERING",
        last_transition=TransitionRecord(
            at=67.412, trigger="assistant_audio_started", source="MONITORING", dest="BUFFERING"
        ),
        session_age_seconds=35.8,
        threshold_seconds=30.0,
        hard_deadline_seconds=52.0,
        limit_seconds=60.0,
        buffer_bytes=50_816,
        buffer_cap_bytes=320_000,
        sessions=(
            SessionView(
                session_id="s2",
                role="current",
                age_seconds=35.8,
                ready=True,
                audio_in_bytes=1_145_600,
                audio_out_bytes=1_008_000,
            ),
            SessionView(
                session_id="s3",
                role="next",
                age_seconds=1.6,
                ready=False,
                audio_in_bytes=0,
                audio_out_bytes=0,
            ),
        ),
        transcript=_TRANSCRIPT,
        log=_LOG,
        metrics={
            "handoffs": 1,
            "recoveries": 0,
            "productive_pct": 99.7,
            "last_handoff_ms": 184.0,
            "utterances_lost": 0,
            "answered_twice": 0,
        },
        recording=True,
        mic_level_db=-21.0,
    )


def tool_wait() -> Snapshot:
    """BUFFERING with the next session ready: a tool call on the current one holds the
    hand-off; an earlier call failed."""
    snap = buffering()
    lines = (
        *_TRANSCRIPT[:4],
        TranscriptLine(kind="user", session_id="s1", text="tool question 5"),
        TranscriptLine(
            kind="tool", session_id="s1", text="testSignalTool", ref="u1", seconds=8.0, failed=True
        ),
        TranscriptLine(kind="assistant", session_id="s1", text="The tool failed: timed out."),
        TranscriptLine(kind="user", session_id="s2", text="tool question 6"),
        TranscriptLine(kind="tool", session_id="s2", text="testSignalTool", ref="u2"),
    )
    sessions = tuple(replace(s, ready=True) for s in snap.sessions)
    return replace(
        snap,
        transcript=lines,
        sessions=sessions,
        tools=(ToolView(name="testSignalTool", session_id="s2", seconds=3.4, phase="running"),),
        handoff_waits_for_tool=True,
    )


class FixedSource:
    """Serves one snapshot and records what the operator sent; keeps mute/recording in step."""

    def __init__(self, snapshot: Snapshot, settings: Settings | None = None) -> None:
        self.current = snapshot
        self.settings = settings or Settings()
        self.submitted: list[str] = []

    def snapshot(self) -> Snapshot:
        return self.current

    def force_handoff(self) -> None:
        self.submitted.append("force_handoff")

    def set_muted(self, muted: bool) -> None:
        self.submitted.append("mute" if muted else "unmute")
        self.current = replace(self.current, muted=muted)

    def set_recording(self, on: bool) -> None:
        self.submitted.append("recording_on" if on else "recording_off")
        self.current = replace(self.current, recording=on)

    def stop(self) -> None:
        self.submitted.append("stop")


if __name__ == "__main__":
    from tui.app import Dashboard

    Dashboard(FixedSource(buffering())).run()

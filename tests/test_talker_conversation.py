"""The simulated talker drives a whole conversation on the in-process emulator, recorded.

Ten lines across two hand-offs (short session limit), in virtual time: every line is
answered exactly once and whole on the speaker, and the session recordings hold every
session's events and audio, the answers included.
"""

from __future__ import annotations

import asyncio
import json
import wave
from collections import Counter
from pathlib import Path
from typing import Any

from sonic_fsm import clock, testsignal
from sonic_fsm.audio.talker import Talker, TalkerConfig
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.recording import SessionRecorder
from sonic_fsm.runner import Runner
from sonic_fsm.settings import load
from sonic_fsm.wiring import assistant_busy

LINES = 10


async def converse(
    folder: Path, interrupt_fraction: float = 0.0
) -> tuple[Any, Talker, TimelineSink, SessionRecorder]:
    settings = load(
        None,
        [
            "transition_threshold_seconds=20",
            "session_limit_seconds=40",
            "hard_deadline_margin_seconds=5",
            # Turns end after 500 ms: the talker's timings here were chosen for that.
            "emulator.end_of_speech_ms=500",
        ],
    )
    sink = TimelineSink(None)
    holder: list[Runner] = []
    talker = Talker(
        TalkerConfig(
            script=tuple(f"line {i}" for i in range(LINES)),
            voice="tones",
            interrupt_fraction=interrupt_fraction,
            seed=3,
        ),
        assistant_busy=lambda: assistant_busy(holder),
    )
    recorder = SessionRecorder(folder, conversation="conv", secrets=["FAKE-SECRET-0123456789"])
    conv = Runner(settings, LocalBackend(settings), talker, sink, observer=recorder)
    holder.append(conv)
    result = await asyncio.wait_for(conv.run(), timeout=600)  # virtual seconds
    return result, talker, sink, recorder


def test_talker_conversation_every_line_answered_once_across_handoffs(tmp_path: Path) -> None:
    result, talker, sink, recorder = clock.run(converse(tmp_path), virtual=True)
    assert result.reason == "the input ended"
    assert result.metrics["handoffs"] >= 1
    assert [u.number for u in talker.spoken] == list(range(1, LINES + 1))
    assert talker.unanswered == 0 and all(u.answered for u in talker.spoken)

    heard = Counter(
        (m.kind, m.number) for m in testsignal.decode_marks(bytes(sink.timeline), 24000)
    )
    expected = {(k, n): 1 for n in range(1, LINES + 1) for k in "AB"}
    assert dict(heard) == expected  # each answer played once, start and end: whole

    # the recordings: one set of valid files per session, the answers in the assistant WAVs
    folder = recorder.folder
    sessions = result.metrics["sessions"]
    recorded_answers: Counter[tuple[str, int]] = Counter()
    for n in range(1, sessions + 1):
        summary = json.loads((folder / f"session_{n}_recording.json").read_text())
        lines = [
            json.loads(x) for x in (folder / f"session_{n}_events.jsonl").read_text().splitlines()
        ]
        assert lines[0]["kind"] == "opened" and lines[-1]["kind"] == "closed"
        assert summary["counts"]["events_sent"].get("sessionStart") == 1
        assert summary["metadata"]["system_prompt"].startswith("You are a friendly assistant")
        if n > 1:  # a hand-off: started with the conversation so far, a USER message first
            assert summary["history"] and summary["history"][0]["role"] == "USER"
        with wave.open(str(folder / f"session_{n}_user.wav"), "rb") as w:
            assert w.getframerate() == 16000
            assert w.getnframes() * 2 == summary["counts"]["user_audio_bytes"]
        with wave.open(str(folder / f"session_{n}_assistant.wav"), "rb") as w:
            assert w.getframerate() == 24000
            pcm = w.readframes(w.getnframes())
        recorded_answers.update((m.kind, m.number) for m in testsignal.decode_marks(pcm, 24000))
    assert set(recorded_answers) == set(expected)


def test_talker_interruptions_cut_answers_short_and_flush_the_speaker(tmp_path: Path) -> None:
    result, talker, sink, _ = clock.run(converse(tmp_path, interrupt_fraction=0.4), virtual=True)
    interrupting = [u.number for u in talker.spoken if u.interrupting]
    assert interrupting  # seed 3 interrupts some lines
    cut = {n - 1 for n in interrupting}  # the answer each one talked over
    played = Counter(
        (m.kind, m.number) for m in testsignal.decode_marks(bytes(sink.timeline), 24000)
    )
    for n in range(1, LINES + 1):
        assert played[("A", n)] == 1  # every line was answered, once
        assert played[("B", n)] == (0 if n in cut else 1)  # cut answers stop, others whole
    assert result.metrics["barge_ins"] == len(interrupting)
    assert sink.flushed_bytes > 0

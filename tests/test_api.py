"""The public API, driven the way a front end drives it: audio in through ``send_audio``,
everything out through ``events()``, playback reported with ``played``. On the in-process
emulator in virtual time, scored by the oracle from what was spoken and what was played."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import sonic_fsm
from nova_emulator import voice
from nova_emulator.faults import Faults
from sonic_fsm import clock, testsignal
from sonic_fsm.api import (
    AssistantAudio,
    AudioFormatError,
    Conversation,
    ConversationClosed,
    Ended,
    Error,
    Event,
    HandoffBegun,
    HandoffDone,
    Log,
    StateChanged,
    StopPlayback,
    ToolCall,
    ToolResult,
    Transcript,
)
from sonic_fsm.audio.wav import TimelineSink
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.bench import oracle
from sonic_fsm.bench.script import ReactiveSource, evenly
from sonic_fsm.settings import Settings, load

SHORT_SESSIONS = [
    "session_limit_seconds=120",
    "transition_threshold_seconds=40",
    "hard_deadline_margin_seconds=10",
]
RATE = 16000


@dataclass
class FrontEnd:
    """A front end's speaker: plays each AssistantAudio after the last, drops everything at
    StopPlayback, and reports what it has played."""

    conv: Conversation
    speaker: TimelineSink = field(default_factory=lambda: TimelineSink(None, 24000))
    delivered: int = 0
    events: list[Event] = field(default_factory=list)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def busy(self) -> bool:
        return self.speaker.queued_seconds(self.now()) > 0

    def handle(self, event: Event) -> None:
        self.events.append(event)
        now = self.now()
        if isinstance(event, AssistantAudio):
            self.speaker.play(event.pcm, now)
            self.delivered += len(event.pcm)
        elif isinstance(event, StopPlayback):
            self.speaker.flush(now)
        left = self.speaker.queued_seconds(now)
        queued = round(left * 24000) * 2
        self.conv.played(self.delivered - self.speaker.flushed_bytes - queued, left)


def voice_question(seconds: float = 1.5) -> bytes:
    """Speech that is not the test signal: the recogniser below hears it as a time question."""
    samples = testsignal.voice_like(seconds, RATE, seed=7)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def hears_time_question(pcm: bytes) -> str:
    return "what time is it"


def throttled_second(n: int) -> Faults:
    return Faults(refuse_start=True) if n == 2 else Faults()


async def talk(settings: Settings, backend: LocalBackend) -> tuple[bytes, FrontEnd]:
    """A person asks the time, then speaks test-signal lines (reacting to hand-offs, one
    barge-in); what they said and the front end's timeline are returned for the oracle."""
    loop = asyncio.get_running_loop()
    async with Conversation(settings, backend) as conv:
        front = FrontEnd(conv)

        def state() -> str:
            snap = conv.snapshot()
            return snap.state if snap else "NORMAL"

        lines = ReactiveSource(evenly(20, 12.0, first=4.0), state, front.busy, barge_in_at=(2,))
        said = bytearray()

        async def speak() -> None:
            question = voice_question()
            chunk = 1024 * 2
            t0 = loop.time()
            lead = bytes(RATE) + question + bytes(4 * RATE)  # 0.5 s, the question, 2 s
            for i in range(0, len(lead), chunk):
                await asyncio.sleep(max(0.0, t0 + i / (2 * RATE) - loop.time()))
                conv.send_audio(lead[i : i + chunk])
            said.extend(lead)
            async for pcm in lines.frames():  # paced by the loop's clock
                conv.send_audio(pcm)
            said.extend(lines.recorded)
            conv.stop()

        speaker = asyncio.create_task(speak())
        async for event in conv.events():
            front.handle(event)
        await speaker
    return bytes(said), front


def test_a_conversation_through_the_api_alone_loses_nothing_across_handoffs() -> None:
    settings = load(None, SHORT_SESSIONS)
    backend = LocalBackend(
        settings, throttled_second, speaker=voice.synthetic, recogniser=hears_time_question
    )
    said, front = clock.run(talk(settings, backend), virtual=True)
    s = oracle.score(said, bytes(front.speaker.timeline))
    events = front.events
    kinds = {type(e) for e in events}
    assert kinds == {
        AssistantAudio,
        StopPlayback,
        Transcript,
        StateChanged,
        HandoffBegun,
        HandoffDone,
        ToolCall,
        ToolResult,
        Error,
        Log,
        Ended,
    }
    assert s.spoken >= 20
    assert s.lost == [] and s.answered_twice == [] and s.restarted == []
    assert s.cut_without_barge_in == []
    done = [e for e in events if isinstance(e, HandoffDone)]
    assert len([e for e in done if e.kind == "handoff"]) >= 2
    assert all(e.took_ms >= 0 and e.to_session and e.from_session for e in done)
    assert any(e.replayed_bytes > 0 for e in done) and any(e.history_bytes > 0 for e in done)
    begun = [e for e in events if isinstance(e, HandoffBegun)]
    assert len(begun) >= len(done)
    stages = {e.stage for e in events if isinstance(e, Transcript)}
    assert stages == {"speculative", "final", "interrupted"}
    assert any(
        e.role == "user" and e.text == "utterance 1" for e in events if isinstance(e, Transcript)
    )
    (tool,) = [e for e in events if isinstance(e, ToolCall)]
    assert tool.name == "getDateAndTimeTool"
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert result.tool_use_id == tool.tool_use_id and result.error is None
    assert set(result.result) >= {"date", "time"}
    assert any(e.code == "ThrottlingException" for e in events if isinstance(e, Error))
    changes = [e for e in events if isinstance(e, StateChanged)]
    assert {"BUFFERING", "HANDOFF", "PROMOTED", "STOPPED"} <= {e.dest for e in changes}
    assert isinstance(events[-1], Ended) and events[-1].reason == "stopped by the operator"
    assert events[-1].metrics["handoffs"] == len([e for e in done if e.kind == "handoff"])
    assert front.conv.played_seconds > 30
    for e in events[:50]:  # frozen: a consumer cannot change what others see
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.at = 0.0  # type: ignore[misc]


def test_audio_at_another_rate_is_converted() -> None:
    """48 kHz audio in (a browser's usual rate): the emulator hears the test signal."""

    async def main() -> list[Event]:
        settings = load(None, [])
        async with Conversation(settings, LocalBackend(settings, speaker=voice.synthetic)) as conv:
            loop = asyncio.get_running_loop()
            pcm = bytes(48000) + testsignal.utterance(5, 48000) + bytes(48000 * 8)
            chunk = 960 * 2  # 20 ms at 48 kHz
            t0 = loop.time()

            async def speak() -> None:
                for i in range(0, len(pcm), chunk):
                    await asyncio.sleep(max(0.0, t0 + i / 96000 - loop.time()))
                    conv.send_audio(pcm[i : i + chunk], rate=48000)
                conv.stop()

            task = asyncio.create_task(speak())
            events = [e async for e in conv.events()]
            await task
            return events

    events = clock.run(main(), virtual=True)
    heard = [e.text for e in events if isinstance(e, Transcript) and e.role == "user"]
    assert heard == ["utterance 5"]
    assert any(
        e.text == "answer to utterance 5" and e.stage == "final"
        for e in events
        if isinstance(e, Transcript)
    )


def test_misuse_is_a_clear_exception() -> None:
    async def main() -> None:
        settings = load(None, [])
        async with Conversation(settings, LocalBackend(settings, speaker=voice.synthetic)) as conv:
            with pytest.raises(AudioFormatError, match="16-bit PCM"):
                conv.send_audio(b"\0" * 300, sample_width=3)
            with pytest.raises(AudioFormatError, match="3 bytes"):
                conv.send_audio(b"\0\0\0")
            with pytest.raises(AudioFormatError, match="not str"):
                conv.send_audio("hello")  # type: ignore[arg-type]
            with pytest.raises(AudioFormatError, match="rate"):
                conv.send_audio(b"\0\0", rate=0)
            with pytest.raises(ValueError, match="more than the 0 bytes delivered"):
                conv.played(10)
            with pytest.raises(ValueError, match="queued_seconds must be 0 or more"):
                conv.played(0, -1.0)
            conv.send_audio(bytes(2048))
            conv.stop()
            with pytest.raises(ConversationClosed, match="after the conversation was stopped"):
                conv.send_audio(bytes(2048))
            ends = [e async for e in conv.events() if isinstance(e, Ended)]
            assert ends and ends[0].reason == "stopped by the operator"
        with pytest.raises(ConversationClosed):
            await conv.__aenter__()

    clock.run(main(), virtual=True)


def test_the_package_exports_the_api() -> None:
    assert sonic_fsm.Conversation is Conversation
    assert {"Conversation", "Ended", "Settings", "Snapshot"} <= set(sonic_fsm.__all__)
    with pytest.raises(AttributeError):
        _ = sonic_fsm.NoSuchThing  # type: ignore[attr-defined]


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Embedding", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines() == [
        "user: utterance 7",
        "assistant: answer to utterance 7",
        "ended: stopped by the operator",
    ]

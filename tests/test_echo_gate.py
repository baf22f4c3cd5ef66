"""The half-duplex echo gate: the assistant's own voice is gated, clearly louder speech is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from sonic_fsm.audio.echo_gate import EchoGate, HalfDuplexSource, level_db
from sonic_fsm.audio.null import NullSink

RATE = 16000


def tone(db: float, seconds: float = 0.064, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    amp = 10 ** (db / 20) * np.sqrt(2)  # a sine's RMS is its amplitude over sqrt(2)
    return (amp * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()


def test_level_db() -> None:
    assert level_db(bytes(2048)) == -96.0
    assert level_db(b"") == -96.0
    assert level_db(tone(-20)) == pytest.approx(-20, abs=0.1)
    assert level_db(tone(-6)) == pytest.approx(-6, abs=0.1)


def test_passes_everything_while_the_assistant_is_silent() -> None:
    gate = EchoGate(margin_db=12)
    quiet = tone(-50)
    assert gate.process(quiet, 0.0, speaking=False, playback_db=-96) == quiet
    assert gate.passed_chunks == 1 and gate.gated_chunks == 0


def test_echo_is_replaced_by_silence_of_the_same_length() -> None:
    gate = EchoGate(margin_db=12)
    echo = tone(-30)  # the speaker at -20 dBFS, heard 10 dB down through the air
    out = gate.process(echo, 1.0, speaking=True, playback_db=-20)
    assert out == bytes(len(echo))
    assert gate.gated_chunks == 1


def test_clearly_louder_speech_gets_through_for_barge_in() -> None:
    gate = EchoGate(margin_db=12)
    shout = tone(-6)  # 14 dB above the playback level
    assert gate.process(shout, 1.0, speaking=True, playback_db=-20) == shout
    almost = tone(-10)  # only 10 dB above: could be echo, gated
    assert gate.process(almost, 1.064, speaking=True, playback_db=-20) == bytes(len(almost))


def test_gate_holds_for_the_echo_tail_then_opens() -> None:
    gate = EchoGate(margin_db=12, hold_seconds=0.3)
    echo = tone(-30)
    gate.process(echo, 1.0, speaking=True, playback_db=-20)
    # the assistant stopped, but the room still rings: gated against the level it had
    assert gate.process(echo, 1.2, speaking=False, playback_db=-96) == bytes(len(echo))
    assert gate.is_closed(1.25)
    assert gate.process(echo, 1.31, speaking=False, playback_db=-96) == echo
    assert not gate.is_closed(1.31)


def test_reference_is_the_loudest_recent_playback() -> None:
    gate = EchoGate(margin_db=12, hold_seconds=0.3)
    gate.process(bytes(2048), 1.0, speaking=True, playback_db=-10)
    gate.process(bytes(2048), 1.1, speaking=True, playback_db=-40)  # a quiet syllable
    speech = tone(-20)
    # -20 is 20 dB over the quiet syllable but not 12 dB over the loud one 0.1 s ago
    assert gate.process(speech, 1.15, speaking=True, playback_db=-40) == bytes(len(speech))
    assert gate.reference_db(1.15) == -10
    assert gate.reference_db(1.35) == -40  # the loud one has left the window
    assert gate.process(speech, 1.35, speaking=True, playback_db=-40) == speech


class ListSource:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    async def frames(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c

    async def aclose(self) -> None:
        self.closed = True


class Speaker:
    """A sink that is playing at -20 dBFS until ``quiet`` is set."""

    def __init__(self) -> None:
        self.level_db = -20.0
        self.quiet = False

    def queued_seconds(self, now: float) -> float:
        return 0.0 if self.quiet else 1.0


def test_half_duplex_source_gates_echo_against_the_speaker() -> None:
    echo, shout = tone(-30), tone(-5)
    speaker = Speaker()

    async def main() -> list[bytes]:
        src = HalfDuplexSource(ListSource([echo, shout, echo]), speaker, margin_db=12)
        out = [c async for c in src.frames()]
        await src.aclose()
        assert src.source.closed
        return out

    assert asyncio.run(main()) == [bytes(len(echo)), shout, bytes(len(echo))]


def test_half_duplex_source_passes_everything_for_a_sink_that_makes_no_sound() -> None:
    echo = tone(-30)

    async def main() -> list[bytes]:
        src = HalfDuplexSource(ListSource([echo, echo]), NullSink(), margin_db=12)
        return [c async for c in src.frames()]

    assert asyncio.run(main()) == [echo, echo]

"""The simulated talker: what it says, and that it waits for the assistant like a person."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from sonic_fsm import clock, testsignal
from sonic_fsm.audio.talker import (
    DEFAULT_SCRIPT,
    RECALL,
    Talker,
    TalkerConfig,
    TalkerError,
    espeak_available,
    load_script,
)

RATE = 16000
CHUNK = 1024


def run_virtual(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return clock.run(make(), virtual=True)


class FakeAssistant:
    """Hears the talker's DTMF utterances and 'answers' each for a while.

    It is busy from ``delay`` after an utterance's mark ends until ``answer`` seconds later
    (that is what the runner's ``assistant_busy`` reports: an answer pending or playing).
    A new utterance heard while busy interrupts the answer at once, as barge-in would.
    """

    def __init__(self, *, delay: float = 0.7, answer: float = 2.0) -> None:
        self.delay, self.answer = delay, answer
        self.decoder = testsignal.DtmfDecoder(RATE)
        self.parser = testsignal.MarkParser()
        self.heard: list[tuple[int, float]] = []  # (utterance, stream time its mark ended)
        self.windows: list[list[float]] = []  # [busy from, busy until] per answer
        self.interrupted = 0
        self.samples = 0
        self.start: float | None = None

    def stream_time(self, sample: int) -> float:
        assert self.start is not None
        return self.start + sample / RATE

    def feed(self, chunk: bytes, now: float) -> None:
        if self.start is None:
            self.start = now - CHUNK / RATE  # the first chunk was captured during one period
        assert len(chunk) == 2 * CHUNK
        for mark in self.parser.feed(self.decoder.feed(chunk)):
            if mark.kind != "*":
                continue
            t = self.stream_time(mark.end)
            self.heard.append((mark.number, t))
            if self.windows and self.windows[-1][1] > now:
                self.windows[-1][1] = now
                self.interrupted += 1
            self.windows.append([t + self.delay, t + self.delay + self.answer])

    def busy(self, now: float) -> bool:
        return any(a <= now < b for a, b in self.windows) or bool(
            self.windows and now < self.windows[-1][0]
        )


async def converse(config: TalkerConfig, assistant: FakeAssistant) -> Talker:
    loop = asyncio.get_running_loop()
    talker = Talker(config, assistant_busy=lambda: assistant.busy(loop.time()))
    async for chunk in talker.frames():
        assistant.feed(chunk, loop.time())
    return talker


def tones(**kw: Any) -> TalkerConfig:
    return TalkerConfig(script=("one", "two", "three", "four"), voice="tones", **kw)


def test_talker_speaks_each_line_in_order_and_waits_for_every_answer() -> None:
    assistant = FakeAssistant()
    talker = run_virtual(lambda: converse(tones(think_seconds=0.5), assistant))
    assert [n for n, _ in assistant.heard] == [1, 2, 3, 4]
    assert [u.number for u in talker.spoken] == [1, 2, 3, 4]
    assert all(u.answered for u in talker.spoken) and talker.unanswered == 0
    assert assistant.interrupted == 0
    # each line starts only after the previous answer ended, plus a think time of 0.5 s ±30 %
    for (_, until), utterance in zip(assistant.windows, talker.spoken[1:], strict=False):
        gap = utterance.start - until
        assert 0.35 - 0.07 <= gap <= 0.65 + 0.07, gap
        assert not utterance.interrupting


def test_talker_waits_as_long_as_the_assistant_is_busy() -> None:
    short, long = FakeAssistant(answer=1.0), FakeAssistant(answer=6.0)
    t_short = run_virtual(lambda: converse(tones(), short))
    t_long = run_virtual(lambda: converse(tones(), long))
    span = [t.spoken[-1].start - t.spoken[0].start for t in (t_short, t_long)]
    assert span[1] - span[0] == pytest.approx(3 * 5.0, abs=0.5)


def test_stream_is_continuous_silence_between_lines() -> None:
    async def main() -> tuple[list[float], list[bytes]]:
        loop = asyncio.get_running_loop()
        talker = Talker(tones(), assistant_busy=lambda: False)
        times, chunks = [], []
        async for chunk in talker.frames():
            times.append(loop.time())
            chunks.append(chunk)
        return times, chunks

    times, chunks = run_virtual(main)
    period = CHUNK / RATE
    steps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert steps == {round(period, 9)}  # one chunk per period, no gaps, no bursts
    assert all(len(c) == 2 * CHUNK for c in chunks)
    assert chunks[0] == bytes(2 * CHUNK)  # lead-in silence
    # nobody ever answers: each line waits the answer timeout, then the talker moves on
    assert times[-1] - times[0] >= 4 * 15.0


def test_unanswered_lines_are_counted_and_the_talker_moves_on() -> None:
    async def main() -> Talker:
        talker = Talker(tones(answer_timeout_seconds=2.0), assistant_busy=lambda: False)
        async for _ in talker.frames():
            pass
        return talker

    talker = run_virtual(main)
    assert talker.unanswered == 4
    assert [u.number for u in talker.spoken] == [1, 2, 3, 4]


def test_interruptions_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> tuple[list[bool], int]:
        assistant = FakeAssistant(answer=5.0)
        cfg = TalkerConfig(
            script=tuple(f"line {i}" for i in range(12)),
            voice="tones",
            interrupt_fraction=0.5,
            seed=seed,
        )
        talker = run_virtual(lambda: converse(cfg, assistant))
        return [u.interrupting for u in talker.spoken], assistant.interrupted

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    flags, interrupted = first
    assert 2 <= sum(flags) <= 10  # about half of the 11 lines that could interrupt
    assert interrupted == sum(flags)  # every interrupting line cut an answer short
    assert flags[0] is False


def test_interrupting_line_comes_during_the_answer() -> None:
    assistant = FakeAssistant(answer=5.0)
    cfg = tones(interrupt_fraction=1.0, interrupt_after_seconds=0.8)
    talker = run_virtual(lambda: converse(cfg, assistant))
    assert [u.interrupting for u in talker.spoken] == [False, True, True, True]
    # 0.8 s after the assistant became busy (its answer pending), to within a few chunks
    for (_, heard), utterance in zip(assistant.heard, talker.spoken[1:], strict=False):
        assert 0.8 <= utterance.start - heard <= 0.8 + 3 * CHUNK / RATE


def test_repeat_continues_numbering() -> None:
    async def main() -> list[int]:
        assistant = FakeAssistant(answer=0.5)
        loop = asyncio.get_running_loop()
        talker = Talker(
            TalkerConfig(script=("a", "b"), voice="tones", repeat=True),
            assistant_busy=lambda: assistant.busy(loop.time()),
        )
        async for chunk in talker.frames():
            assistant.feed(chunk, loop.time())
            if len(assistant.heard) == 5:
                await talker.aclose()
        return [n for n, _ in assistant.heard]

    assert run_virtual(main) == [1, 2, 3, 4, 5]


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng or sox not installed")
def test_after_each_handoff_the_next_line_asks_what_was_asked_before() -> None:
    async def main() -> Talker:
        loop = asyncio.get_running_loop()
        spoken: list[Any] = []

        def busy() -> bool:  # one second of answer after each line
            return bool(spoken and spoken[-1].end and loop.time() < spoken[-1].end + 1.0)

        def handoffs() -> int:  # one while "two" is spoken, another during "three"
            return (len(spoken) >= 2) + (len(spoken) >= 4)

        config = TalkerConfig(script=("one", "two", "three"), voice="speech", think_seconds=0.2)
        talker = Talker(config, assistant_busy=busy, handoffs=handoffs)
        spoken = talker.spoken
        async for _ in talker.frames():
            pass
        return talker

    talker = run_virtual(main)
    assert [u.text for u in talker.spoken] == ["one", "two", RECALL, "three", RECALL]
    assert [u.number for u in talker.spoken] == [1, 2, 3, 4, 5]
    assert all(u.answered for u in talker.spoken) and talker.unanswered == 0
    assert talker.phrases == ("one", "two", "three", RECALL)
    assert Talker(TalkerConfig(voice="tones")).phrases == ()  # the test signal has no words


def test_script_file(tmp_path: Any) -> None:
    path = tmp_path / "script.txt"
    path.write_text("# a comment\nfirst line\n\n  second line  \n")
    assert load_script(path) == ["first line", "second line"]
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(TalkerError, match="no lines to speak"):
        load_script(tmp_path / "empty.txt")
    with pytest.raises(TalkerError, match="not found"):
        load_script(tmp_path / "missing.txt")
    assert len(DEFAULT_SCRIPT) >= 5


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng or sox not installed")
def test_espeak_speech_is_16k_mono_and_paced() -> None:
    cfg = TalkerConfig(script=("Hello there.",), voice="speech", answer_timeout_seconds=1.0)

    async def main() -> tuple[Talker, bytes]:
        talker = Talker(cfg)
        pcm = b"".join([c async for c in talker.frames()])
        return talker, pcm

    talker, pcm = run_virtual(main)
    assert talker.uses_speech
    speech = talker.render(1, "Hello there.")
    assert 0.4 * RATE * 2 < len(speech) < 3 * RATE * 2  # about a second of speech at 16 kHz
    assert speech in pcm  # spoken as rendered, after the lead-in
    assert testsignal.decode_marks(pcm, RATE) == []  # speech, not the test signal

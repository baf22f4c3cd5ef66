"""Test conversations: lines with pauses inside, follow-ups said after the answer began."""

from __future__ import annotations

import asyncio

import pytest

from sonic_fsm import clock, testsignal
from sonic_fsm.bench.script import Line, ReactiveSource, conversation, render

RATE = 16000


def said_at(pcm: bytes) -> dict[int, tuple[float, float]]:
    """Each utterance's (start, end) in seconds, as the oracle reads them."""
    return {
        m.number: (m.start / RATE, m.end / RATE)
        for m in testsignal.decode_marks(pcm, RATE)
        if m.kind == "*"
    }


def speak(source: ReactiveSource) -> None:
    async def main() -> None:
        async for _ in source.frames():
            pass

    clock.run(main(), virtual=True)


@pytest.mark.parametrize("answer_at", [3.0, 6.5])
def test_a_follow_up_is_said_its_delay_after_the_answer_began(answer_at: float) -> None:
    lines = [Line(number=1, at=1.0), Line(number=2, at=4.0, follow_up=0.7)]
    start: list[float] = []

    def speaker_busy() -> bool:
        if not start:
            start.append(asyncio.get_running_loop().time())
        return asyncio.get_running_loop().time() - start[0] >= answer_at

    source = ReactiveSource(lines, lambda: "NORMAL", speaker_busy, barge_in_at=())
    speak(source)
    said = said_at(bytes(source.recorded))
    assert said[2][0] == pytest.approx(answer_at + 0.7, abs=0.07)  # one chunk of 64 ms


def test_a_follow_up_whose_answer_never_comes_is_said_anyway() -> None:
    lines = [Line(number=1, at=1.0), Line(number=2, at=4.0, follow_up=0.7)]
    source = ReactiveSource(lines, lambda: "NORMAL", lambda: False, barge_in_at=())
    speak(source)
    assert said_at(bytes(source.recorded))[2][0] == pytest.approx(14.0, abs=0.07)


def test_reactions_at_a_hand_off_have_pauses_inside_and_states_are_kept() -> None:
    t0: list[float] = []

    def state() -> str:
        now = asyncio.get_running_loop().time()
        t0.append(t0[0] if t0 else now)
        return "BUFFERING" if 2.0 <= now - t0[0] < 3.0 else "NORMAL"

    source = ReactiveSource(
        [Line(number=1, at=0.5)],
        state,
        lambda: False,
        barge_in_at=(1,),
        barge_in_delay={1: 0.25},
        pause_inside=(0.9, 1.0),
    )
    speak(source)
    said = said_at(bytes(source.recorded))
    start, end = said[1001]
    assert start == pytest.approx(2.25, abs=0.07)
    assert end - start >= 6 * 0.08 + 5 * 0.9 - 0.02  # six keys, five pauses of 0.9 s or more
    assert [s for _, s in source.states] == ["NORMAL", "BUFFERING", "NORMAL"]
    assert source.states[1][0] == pytest.approx(2.0, abs=0.07)


def test_a_planned_conversation_renders_with_its_pauses_and_follow_ups() -> None:
    lines = conversation(6, 15.0, pause_inside=(0.0, 1.2), follow_ups=0.5, seed=2)
    follow = [line for line in lines if line.follow_up is not None]
    assert follow and [line.number for line in lines] == list(range(1, len(lines) + 1))
    assert all(p <= testsignal.MAX_PAUSE_INSIDE_S for line in lines for p in line.pauses)
    said = said_at(render(lines))
    assert sorted(said) == [line.number for line in lines]
    for line in lines:
        assert said[line.number][0] == pytest.approx(line.at, abs=0.011)

"""The test signal: decoded exactly, even mixed with speech-like sound and silence."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

from sonic_fsm import testsignal as ts


@settings(max_examples=25, deadline=None)
@given(hs.lists(hs.integers(0, 99999), min_size=1, max_size=4), hs.integers(0, 3000))
def test_utterances_decode_exactly_whatever_the_chunking(numbers, offset) -> None:
    gap = bytes(2 * 16000)
    pcm = bytes(2 * offset) + b"".join(ts.utterance(n) + gap for n in numbers)
    decoder, parser = ts.DtmfDecoder(16000), ts.MarkParser()
    marks = []
    for i in range(0, len(pcm), 2 * 1024):  # the microphone's chunk size
        marks += parser.feed(decoder.feed(pcm[i : i + 2 * 1024]))
    assert [(m.kind, m.number) for m in marks] == [("*", n) for n in numbers]


def test_answers_carry_start_and_end_marks_and_voice_is_not_dtmf() -> None:
    pcm = ts.answer(42)
    assert [(m.kind, m.number) for m in ts.decode_marks(pcm, 24000)] == [("A", 42), ("B", 42)]
    voice = (np.clip(ts.voice_like(4.0, 24000, seed=1), -1, 1) * 32767).astype("<i2").tobytes()
    assert ts.decode_marks(voice, 24000) == []


def test_answer_length_stays_within_one_to_four_seconds_of_voice() -> None:
    assert all(1.0 <= ts.answer_seconds(n) <= 4.0 for n in range(500))


@settings(max_examples=25, deadline=None)
@given(hs.integers(0, 99999), hs.data())
def test_utterances_with_pauses_between_keys_still_decode_as_one(n, data) -> None:
    keys = ts.keys_of(n)
    pauses = data.draw(
        hs.lists(hs.floats(ts.GAP_S, ts.MAX_PAUSE_INSIDE_S), min_size=0, max_size=len(keys) - 1)
    )
    marks = ts.decode_marks(ts.utterance(n, pauses=pauses), 16000)
    assert [(m.kind, m.number) for m in marks] == [("*", n)]
    assert marks[0].end / 16000 >= sum(pauses) + 0.08 * len(keys) - 0.02  # 10 ms blocks


def test_a_pause_inside_an_utterance_is_at_most_1_2_seconds() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"0.04 to 1.2 s \(got 1.5\)"):
        ts.utterance(12, pauses=[1.5])
    with pytest.raises(ValueError, match="3 pauses for the 3 keys"):
        ts.utterance(5, pauses=[0.1, 0.1, 0.1])

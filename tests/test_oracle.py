"""The oracle counts what a listener would: once, lost, twice, restarted, cut."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_fsm.bench.oracle import handoff_windows, score, score_marks
from sonic_fsm.testsignal import Mark, answer, utterance, voice_like

IN, OUT = 16000, 24000


def said(n: int, at: float) -> Mark:
    return Mark("*", n, int(at * IN), int((at + 0.5) * IN))


def heard(kind: str, n: int, at: float) -> Mark:
    return Mark(kind, n, int(at * OUT), int((at + 0.5) * OUT))


def test_counts_each_kind_of_outcome() -> None:
    spoken = [said(1, 0.0), said(2, 10.0), said(3, 20.0), said(4, 30.0), said(5, 40.0)]
    played = [
        heard("A", 1, 1.0), heard("B", 1, 3.0),                       # once, whole
        heard("A", 3, 21.0), heard("B", 3, 23.0),                     # twice
        heard("A", 3, 24.0), heard("B", 3, 26.0),
        heard("A", 4, 31.0),                                          # cut, nobody spoke
        heard("A", 5, 41.0), heard("A", 5, 43.0), heard("B", 5, 45.0),  # restarted
    ]  # fmt: skip
    s = score_marks(spoken, played)
    assert s.lost == [2]
    assert s.answered_twice == [3]
    assert s.truncated == [4] and s.cut_without_barge_in == [4]
    assert s.restarted == [3, 5]
    assert round(s.reply_delay_ms[1]) == 500  # from the end of the utterance to the A mark


def test_an_answer_cut_while_the_user_spoke_is_a_barge_in() -> None:
    spoken = [said(1, 0.0), said(2, 1.5)]
    played = [heard("A", 1, 1.0), heard("A", 2, 2.5), heard("B", 2, 4.0)]
    s = score_marks(spoken, played)
    assert s.truncated == [1] and s.cut_without_barge_in == []


# ---- talk-over, reply delays, unmarked answers: from hand-built timelines -----------------


def timeline(rate: int, seconds: float, *parts: tuple[float, bytes]) -> bytes:
    """``seconds`` of silence with each PCM part placed at its time (later parts overwrite)."""
    out = bytearray(int(seconds * rate) * 2)
    for at, pcm in parts:
        i = int(at * rate) * 2
        out[i : i + len(pcm)] = pcm[: len(out) - i]
    return bytes(out)


def cut(pcm: bytes, seconds: float, rate: int = OUT) -> bytes:
    return pcm[: int(seconds * rate) * 2]


LONG = 123456  # eight keys: 0.96 s of speaking


def test_an_answer_still_playing_over_the_user_is_a_talk_over() -> None:
    mic = timeline(IN, 10, (0.0, utterance(3)), (2.0, utterance(LONG)))
    out = timeline(OUT, 10, (0.8, answer(3, OUT)))  # about 4 s: it plays on over the user
    s = score(mic, out)
    assert s.talk_over == [LONG]
    ms = s.talk_over_ms[LONG]
    assert 550 <= ms <= 620, ms  # from 0.35 s into the utterance to its end (0.96 s)
    assert s.as_dict()["talk_over"] == 1 and s.as_dict()["talk_over_ids"] == [LONG]


def test_a_barge_in_honoured_within_350_ms_is_no_talk_over() -> None:
    mic = timeline(IN, 10, (0.0, utterance(3)), (2.0, utterance(LONG)))
    out = timeline(OUT, 10, (0.8, cut(answer(3, OUT), 2.0 + 0.3 - 0.8)))  # stops 0.3 s in
    s = score(mic, out)
    assert s.talk_over == [] and s.as_dict()["talk_over_ms"] == 0
    assert s.truncated == [3] and s.cut_without_barge_in == []


def test_an_answer_that_starts_while_the_user_speaks_is_a_talk_over() -> None:
    mic = timeline(IN, 12, (0.0, utterance(3)), (5.5, utterance(LONG)))
    out = timeline(OUT, 12, (6.0, answer(3, OUT)))  # late: begins over the second utterance
    s = score(mic, out)
    assert s.talk_over == [LONG]


def test_reply_delays_and_the_delay_a_hand_off_adds() -> None:
    u1, u2, u3, u4 = utterance(1), utterance(2), utterance(3), utterance(4)
    end = len(u1) / 2 / IN - 0.04  # each is three keys long; the last key ends 40 ms early
    mic = timeline(IN, 50, (0.0, u1), (10.0, u2), (20.0, u3), (30.0, u4))
    out = timeline(
        OUT,
        50,
        (end + 0.5, answer(1, OUT)),
        (10 + end + 1.3, answer(2, OUT)),  # spoken during the hand-off
        (20 + end + 0.7, answer(3, OUT)),
        (30 + end + 0.6, answer(4, OUT)),
    )
    s = score(mic, out, handoffs=[(9.5, 10.2)])
    assert s.during_handoff == [2]
    d = s.as_dict()
    assert d["reply_delay_ms_p50"] == pytest.approx(650, abs=55)  # nearest rank of four
    assert d["reply_delay_ms_max"] == pytest.approx(1300, abs=15)
    assert d["ordinary_reply_delay_ms_p50"] == pytest.approx(600, abs=15)
    assert d["handoff_added_delay_ms_max"] == pytest.approx(700, abs=15)
    assert d["utterances_during_handoff"] == 1 and d["talk_over"] == 0


def test_answer_audio_without_marks_is_seen_as_unexpected() -> None:
    mic = timeline(IN, 12, (0.0, utterance(3)))
    noise = (np.clip(voice_like(1.5, OUT, seed=4), -1, 1) * 32767).astype("<i2").tobytes()
    out = timeline(OUT, 12, (0.8, answer(3, OUT)), (7.0, noise))
    s = score(mic, out)
    assert s.answered_once == 1 and s.unexpected == []
    assert s.unmarked_at == [pytest.approx(7.0, abs=0.05)]


def test_hand_off_windows_come_from_the_transition_log() -> None:
    log = [
        "    1.000 [THRESHOLD] s1 is 360.0s old",
        "    1.000 [TRANSITION] NORMAL -> MONITORING (threshold_reached)",
        "    2.500 [TRANSITION] MONITORING -> BUFFERING (assistant_audio_started)",
        "    5.000 [TRANSITION] BUFFERING -> HANDOFF (next_ready)",
        "    5.000 [TRANSITION] HANDOFF -> PROMOTED (buffer_drained)",
        "    7.250 [TRANSITION] PROMOTED -> NORMAL (old_session_done)",
        "   20.000 [TRANSITION] NORMAL -> RECOVERING (current_failed)",
    ]
    assert handoff_windows(log) == [(2.5, 7.25), (20.0, float("inf"))]


def test_an_answer_cut_in_its_start_mark_still_began() -> None:
    """'A 1' and silence (a barge-in 0.3 s into the answer to 17): cut, not lost."""
    mic = timeline(IN, 12, (0.0, utterance(17)), (2.2, utterance(LONG)))
    out = timeline(OUT, 12, (1.9, cut(answer(17, OUT), 0.3)), (5.0, answer(LONG, OUT)))
    s = score(mic, out)
    assert s.lost == [] and s.truncated == [17] and s.cut_without_barge_in == []
    assert s.reply_delay_ms[17] == pytest.approx(1900 - 440, abs=15)  # '*17#' ends at 0.44 s
    assert s.unmarked_at == [] and s.answered_once == 2


def test_a_broken_off_mark_answers_only_an_utterance_its_digits_fit() -> None:
    spoken = [said(5, 0.0), said(17, 10.0)]
    played = [heard("A", 5, 1.0), heard("B", 5, 3.0), Mark("A", 2, 11 * OUT, 12 * OUT, whole=False)]
    s = score_marks(spoken, played)
    assert s.lost == [17]  # 'A 2' is not the start of an answer to 17

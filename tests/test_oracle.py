"""The oracle counts what a listener would: once, lost, twice, restarted, cut."""

from __future__ import annotations

from sonic_fsm.bench.oracle import score_marks
from sonic_fsm.testsignal import Mark

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

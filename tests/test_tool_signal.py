"""The test signal's tool question: ``*CN#`` makes the emulator ask ``testSignalTool`` for
``{"n": N}``; its answer carries the result (``A N #``, ``D R #``, voice, ``B N #``), and the
oracle judges each tool question by it."""

from __future__ import annotations

import json
from typing import Any

from test_emulator import Feeder, P, opened

from sonic_fsm import testsignal
from sonic_fsm.bench.oracle import score_tool_marks
from sonic_fsm.core import protocol as pr
from sonic_fsm.testsignal import Mark
from sonic_fsm.tools import signal_tool

DECLARED = [signal_tool().spec()]


def marks(f: Feeder) -> list[tuple[str, int]]:
    return [(m.kind, m.number) for m in testsignal.decode_marks(f.audio(), 24000)]


def answer_result(f: Feeder, result: Any) -> None:
    (use,) = f.events("toolUse")
    for e in pr.tool_result_block(P, "r1", use["toolUseId"], result):
        f.m.receive(e, f.t)
    f.wait(6.0)


def test_a_tool_question_asks_the_tool_and_answers_with_its_result() -> None:
    f = Feeder(opened(tools=DECLARED))
    f.wait(0.3)
    f.play(testsignal.tool_question(7))
    f.wait(30.0)  # no result yet: no answer, however long
    (use,) = f.events("toolUse")
    assert use["toolName"] == "testSignalTool" and json.loads(use["content"]) == {"n": 7}
    assert f.texts("USER") == ["tool question 7"] and f.texts("ASSISTANT") == []
    answer_result(f, {"value": 49})
    assert marks(f) == [("A", 7), ("D", 49), ("B", 7)]
    assert f.error() is None


def test_a_failed_tool_gives_an_answer_without_a_result() -> None:
    f = Feeder(opened(tools=DECLARED))
    f.wait(0.3)
    f.play(testsignal.tool_question(3))
    f.wait(2.0)
    answer_result(f, {"error": "testSignalTool timed out after 8 s"})
    assert marks(f) == [("A", 3), ("B", 3)]


def test_without_the_tool_declared_it_says_so_and_answers_without_a_result() -> None:
    f = Feeder(opened())
    f.wait(0.3)
    f.play(testsignal.tool_question(5))
    f.wait(8.0)
    assert f.events("toolUse") == []
    assert f.texts(stage="FINAL") == ["answer to tool question 5: I was given no testSignalTool"]
    assert marks(f) == [("A", 5), ("B", 5)]


def test_the_tool_answer_marks_decode() -> None:
    pcm = testsignal.tool_answer(12, 84) + testsignal.tool_answer(13, None)
    kinds = [(m.kind, m.number) for m in testsignal.decode_marks(pcm, 24000)]
    assert kinds == [("A", 12), ("D", 84), ("B", 12), ("A", 13), ("B", 13)]
    question = testsignal.decode_marks(testsignal.tool_question(12), 16000)
    assert [(m.kind, m.number) for m in question] == [("C", 12)]


def asked(n: int, at: float) -> Mark:
    return Mark("C", n, int(at * 16000), int((at + 0.5) * 16000))


def heard(kind: str, n: int, at: float) -> Mark:
    return Mark(kind, n, int(at * 24000), int((at + 0.3) * 24000))


def test_the_oracle_judges_tool_answers_by_their_result() -> None:
    spoken = [asked(n, 10.0 * n) for n in (1, 2, 3, 4, 5)]
    played = [
        heard("A", 1, 11), heard("D", 1, 11.5), heard("B", 1, 13),   # 7 expected: wrong
        heard("A", 2, 21), heard("D", 14, 21.5), heard("B", 2, 23),  # right
        heard("A", 3, 31), heard("B", 3, 33),                        # without a result
        heard("A", 4, 41), heard("D", 28, 41.5), heard("B", 4, 43),  # twice
        heard("A", 4, 44), heard("D", 28, 44.5), heard("B", 4, 46),
    ]  # fmt: skip
    s = score_tool_marks(spoken, played)
    assert s.asked == 5 and s.once_with_result == 1
    assert s.wrong_result == [1] and s.without_result == [3]
    assert s.twice == [4] and s.lost == [5]
    assert round(s.reply_delay_ms[2]) == 500

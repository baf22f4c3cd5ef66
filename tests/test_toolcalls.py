"""The bookkeeping of tool calls across sessions (the rule in sonic_fsm.core.toolcalls)."""

from __future__ import annotations

from sonic_fsm.core import toolcalls as tc


def test_the_same_tool_use_id_never_runs_twice() -> None:
    calls = tc.ToolCalls()
    live = lambda sid: False  # noqa: E731
    assert calls.ask("s1", "u1", "t", "{}", 0.0, live)[0] == tc.RUN
    assert calls.ask("s1", "u1", "t", "{}", 0.1, live)[0] == tc.DUPLICATE  # FINAL after SPECULATIVE
    assert calls.outstanding("s1") and not calls.outstanding("s2")
    sent = calls.finish("s1", "u1", {"value": 7}, None, 1.0, live)
    assert [(c.session_id, c.tool_use_id) for c in sent] == [("s1", "u1")]
    assert calls.finish("s1", "u1", {"value": 7}, None, 1.1, live) == []  # reported once
    assert calls.outstanding("s1")  # until the answer begins
    calls.answer_began("s1")
    assert not calls.outstanding("s1")
    assert calls.ask("s1", "u1", "t", "{}", 500.0, live)[0] == tc.DUPLICATE  # even much later


def test_a_result_is_not_sent_to_a_session_that_is_gone() -> None:
    calls = tc.ToolCalls()
    gone: set[str] = set()
    calls.ask("s1", "u1", "t", '{"n": 1}', 0.0, gone.__contains__)
    gone.add("s1")
    assert calls.finish("s1", "u1", {"value": 7}, None, 1.0, gone.__contains__) == []


def test_a_call_left_behind_is_joined_by_the_new_session_and_runs_once() -> None:
    calls = tc.ToolCalls()
    gone: set[str] = set()
    is_gone = gone.__contains__
    assert calls.ask("s1", "u1", "t", '{"n": 1}', 0.0, is_gone)[0] == tc.RUN
    # s1 still live: the same question in s2 (a different id) is its own run
    assert calls.ask("s2", "v0", "t", '{"n": 2}', 0.1, is_gone)[0] == tc.RUN
    gone.add("s1")  # forced switch: s1 is handed over, its call left behind
    what, call = calls.ask("s2", "v1", "t", '{ "n" : 1 }', 0.5, is_gone)
    assert what == tc.JOIN and call is not None and call.root is not None
    sent = calls.finish("s1", "u1", {"value": 7}, None, 2.0, is_gone)
    assert [(c.session_id, c.tool_use_id) for c in sent] == [("s2", "v1")]  # its own id
    assert call.run.result == {"value": 7}


def test_a_result_that_came_before_the_new_session_asked_is_sent_at_once() -> None:
    calls = tc.ToolCalls()
    gone = {"s1"}
    calls.ask("s1", "u1", "t", "{}", 0.0, lambda sid: False)
    assert calls.finish("s1", "u1", {"v": 1}, None, 1.0, gone.__contains__) == []
    what, call = calls.ask("s2", "v1", "t", "{}", 2.0, gone.__contains__)
    assert what == tc.SEND and call is not None and call.sent
    assert calls.outstanding("s2")
    # a second identical question later is asked anew, not joined again
    calls.answer_began("s2")
    assert calls.ask("s2", "v2", "t", "{}", 3.0, gone.__contains__)[0] == tc.RUN


def test_an_answer_cut_by_a_dying_session_is_given_again_with_the_same_result() -> None:
    calls = tc.ToolCalls()
    gone: set[str] = set()
    calls.ask("s1", "u1", "t", '{"n": 2}', 0.0, gone.__contains__)
    calls.finish("s1", "u1", {"value": 14}, None, 1.0, gone.__contains__)
    calls.answer_began("s1")
    gone.add("s1")  # s1 died mid-answer: its replacement hears the question again
    what, _ = calls.ask("s2", "v1", "t", '{"n": 2}', 2.0, gone.__contains__, gone.__contains__)
    assert what == tc.SEND  # the tool does not run again
    # handed over after a whole answer (not failed): the same question later is asked anew
    calls.ask("s2", "v2", "t", '{"n": 3}', 3.0, gone.__contains__)
    calls.finish("s2", "v2", {"value": 21}, None, 4.0, gone.__contains__)
    calls.answer_began("s2")
    gone.add("s2")
    assert calls.ask("s3", "w1", "t", '{"n": 3}', 5.0, gone.__contains__)[0] == tc.RUN

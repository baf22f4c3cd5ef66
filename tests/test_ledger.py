"""The ledger of user speech: which audio each session has answered, decided from what the
service did, whatever it merges, splits or transcribes late. Frame numbers throughout
(64 ms frames); the service's pause is 24 frames (about 1.5 s) unless a test says otherwise."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as hs

from sonic_fsm.core import history as hist
from sonic_fsm.core.ledger import Ledger, turn_pause_seconds
from sonic_fsm.settings import load

LOUD = b"\x00\x40" * 1024
QUIET = bytes(2048)
PREROLL = 4


def ledger(pause: int = 24, min_pause: int = 5, abandon: int = 60) -> Ledger:
    return Ledger(
        pause_frames=pause,
        min_pause_frames=min_pause,
        threshold_db=-45.0,
        abandon_frames=abandon,
        preroll_frames=PREROLL,
    )


def speak(lg: Ledger, spans: list[tuple[int, int]], until: int, start: int = 0) -> None:
    """Feed frames ``start``..``until`` (inclusive): speech inside each [a, b) span."""
    for seq in range(start, until + 1):
        lg.feed(seq, LOUD if any(a <= seq < b for a, b in spans) else QUIET)


def roles(messages: list[hist.Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in messages]


def test_onsets_are_reported_and_a_short_pause_does_not_end_a_stretch() -> None:
    lg = ledger()
    onsets = [seq for seq in range(40) if lg.feed(seq, LOUD if 10 <= seq < 30 else QUIET)]
    assert onsets == [10]
    assert [(s.start, s.end) for s in lg.stretches] == [(10, 30)]


def test_merge_the_service_hears_one_turn_where_the_client_heard_two() -> None:
    """A breath of 0.5 s inside a question: two stretches for the client, one turn for the
    service. Before the answer both are replayed; after it, neither."""
    lg = ledger()
    lg.opened("s1", 0)
    spans = [(10, 30), (38, 50)]
    speak(lg, spans, 60)
    assert len(lg.stretches) == 2
    assert lg.replay_from("s1", 60, finished=False) == 10 - PREROLL  # not answered yet: all
    speak(lg, spans, 76, start=61)
    lg.user_said("s1", "one question", 74)  # the service transcribes the turn as one
    lg.answer_began("s1", 76)
    assert lg.replay_from("s1", 80, finished=False) == 81 - PREROLL  # nothing to replay
    assert roles(lg.history(81 - PREROLL)) == [("USER", "one question")]


def test_merge_a_hand_off_before_the_answer_replays_the_whole_turn_and_drops_its_text() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30), (38, 50)], 74)
    lg.user_said("s1", "one question", 74)  # transcribed, but its answer is not begun
    first = lg.replay_from("s1", 74, finished=False)
    assert first == 10 - PREROLL
    assert lg.history(first) == []  # the next session hears it again: not in the history


def test_split_the_service_ends_a_turn_the_client_thought_went_on() -> None:
    """The service's pause is shorter than the client assumed (0.64 s): it answers the first
    part while the user is already saying more. Only the second part is replayed."""
    lg = ledger(pause=24)
    lg.opened("s1", 0)
    speak(lg, [(10, 30), (40, 55)], 41)
    lg.answer_began("s1", 41)  # 10 frames of pause after the first part
    speak(lg, [(10, 30), (40, 55)], 60, start=42)
    assert lg.replay_from("s1", 60, finished=False) == 40 - PREROLL


def test_split_two_answers_for_what_the_client_heard_as_one_turn() -> None:
    lg = ledger(pause=24)
    lg.opened("s1", 0)
    spans = [(10, 30), (40, 55)]
    speak(lg, spans, 41)
    lg.answer_began("s1", 41)
    lg.answer_ended("s1")
    speak(lg, spans, 66, start=42)
    lg.answer_began("s1", 66)
    assert lg.replay_from("s1", 70, finished=False) == 71 - PREROLL


def test_late_transcript_still_comes_before_its_answer_in_the_history() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30)], 57)
    lg.answer_began("s1", 57)  # the answer began before the transcript arrived
    lg.assistant_said("s1", "the answer")
    lg.user_said("s1", "the question", 70)  # late
    lg.answer_ended("s1")
    assert lg.replay_from("s1", 70, finished=False) == 71 - PREROLL
    assert roles(lg.history(71)) == [("USER", "the question"), ("ASSISTANT", "the answer")]


def test_late_transcript_from_the_old_session_after_the_next_one_answered() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30)], 57)
    lg.answer_began("s1", 57)
    lg.opened("s2", 58)  # hand-off: nothing to replay
    speak(lg, [(10, 30), (70, 80)], 110, start=58)
    lg.user_said("s2", "second question", 106)
    lg.answer_began("s2", 106)
    lg.assistant_said("s2", "second answer")
    lg.assistant_said("s1", "first answer")  # the old session's FINAL comes last
    lg.user_said("s1", "first question", 57)  # and its transcript even later
    assert roles(lg.history(111)) == [
        ("USER", "first question"),
        ("ASSISTANT", "first answer"),
        ("USER", "second question"),
        ("ASSISTANT", "second answer"),
    ]


def test_transcript_with_no_audio_is_kept_and_replays_nothing() -> None:
    """A typed turn, or one the service took from the history: no speech of the client's."""
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [], 30)
    lg.user_said("s1", "typed words", 30)
    assert lg.replay_from("s1", 30, finished=False) == 31 - PREROLL
    assert roles(lg.history(0)) == [("USER", "typed words")]  # whatever is replayed
    assert lg.stretches == []


def test_audio_with_no_transcript_a_cough_is_not_replayed_once_it_is_long_over() -> None:
    lg = ledger(abandon=60)
    lg.opened("s1", 0)
    speak(lg, [(10, 14)], 40)
    assert lg.replay_from("s1", 40, finished=False) == 10 - PREROLL  # it may still be speech
    speak(lg, [(10, 14)], 80, start=41)
    assert lg.replay_from("s1", 80, finished=False) == 81 - PREROLL  # noise to the service


def test_a_cough_then_a_question_one_answer_accounts_for_both() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    spans = [(10, 13), (50, 70)]
    speak(lg, spans, 96)
    lg.user_said("s1", "the question", 96)
    lg.answer_began("s1", 96)
    assert lg.replay_from("s1", 96, finished=False) == 97 - PREROLL
    assert roles(lg.history(97))[0] == ("USER", "the question")


def test_recovery_replays_what_was_begun_but_not_finished() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30)], 57)
    lg.user_said("s1", "the question", 56)
    lg.answer_began("s1", 57)  # then the stream dies mid-answer
    assert lg.replay_from("s1", 60, finished=False) == 61 - PREROLL
    first = lg.replay_from("s1", 60, finished=True)
    assert first == 10 - PREROLL
    assert lg.history(first) == []  # the replacement hears the question again


def test_a_replacement_answering_a_turn_whose_answer_the_user_cut_repeats_it() -> None:
    """s1 dies mid-answer; s2 is sent the question again; then the user speaks over what is
    left of s1's answer (cut: given all the same). s2's answer to the question repeats it;
    an answer that may be to the new speech does not."""
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30)], 57)
    assert not lg.answer_began("s1", 57)  # then the stream dies mid-answer
    first = lg.replay_from("s1", 60, finished=True)
    lg.opened("s2", first)
    speak(lg, [(10, 30), (62, 70)], 64, start=58)  # the user speaks over the rest of it
    lg.answer_ended("s1")  # the client cut it
    assert lg.answer_began("s2", 64)  # to the question again, the new speech going on
    lg.answer_ended("s2")
    assert not lg.answer_began("s2", 100)  # once the new speech has ended: to it
    again = ledger()
    again.opened("s1", 0)
    speak(again, [(10, 30)], 57)
    again.answer_began("s1", 57)
    again.opened("s2", again.replay_from("s1", 60, finished=True))
    speak(again, [(10, 30)], 64, start=58)
    assert not again.answer_began("s2", 64)  # nobody cut s1's answer: a restart, played


def test_a_question_whose_answer_said_nothing_is_heard_again_once() -> None:
    lg = ledger()
    lg.opened("s1", 0)
    speak(lg, [(10, 30)], 57)
    assert not lg.ask_again("s1", 57)  # no answer in progress
    lg.answer_began("s1", 57)
    assert lg.ask_again("s1", 58)  # cut before a word of it sounded
    lg.opened("s2", lg.replay_from("s1", 58, finished=True))
    lg.answer_began("s2", 70)
    assert not lg.ask_again("s2", 71)  # the replacement's answer to it: not again


def test_an_answer_to_a_history_turn_proves_nothing_about_the_audio() -> None:
    lg = ledger()
    lg.opened("s2", 0)
    speak(lg, [(10, 30)], 57)
    lg.answer_began("s2", 57, evidence=False)
    assert lg.replay_from("s2", 57, finished=False) == 10 - PREROLL


def test_the_pause_follows_the_settings() -> None:
    assert turn_pause_seconds(load(None, ["emulator.end_of_speech_ms=800"])) == 0.8
    assert turn_pause_seconds(load(None, [])) == 1.75  # the emulator's own default
    bedrock = ["backend.kind=bedrock"]
    assert turn_pause_seconds(load(None, bedrock)) == 1.5
    assert turn_pause_seconds(load(None, [*bedrock, "backend.endpointing_sensitivity=LOW"])) == 2.0
    assert turn_pause_seconds(load(None, [*bedrock, "speech.turn_pause_ms=900"])) == 0.9


# ---- against a model of the service ---------------------------------------------------


@hs.composite
def conversations(draw: hs.DrawFn) -> tuple[list[tuple[int, int]], int, int, int, int]:
    """Speech spans, the service's pause and answer latency, the client's assumed pause, and
    the frame at which a hand-off happens."""
    service_pause = draw(hs.integers(8, 32))  # 0.5 to 2 s
    latency = draw(hs.integers(1, 4))  # the answer begins this long after the endpoint
    client_pause = draw(hs.integers(6, 40))  # right, shorter or longer than the service's
    spans: list[tuple[int, int]] = []
    t = draw(hs.integers(2, 20))
    for _ in range(draw(hs.integers(1, 8))):
        length = draw(hs.integers(2, 30))
        spans.append((t, t + length))
        gap = draw(hs.sampled_from(["inside", "turn"]))
        if gap == "inside":  # a pause the service does not end the turn on
            t += length + draw(hs.integers(6, service_pause - 2))
        else:
            t += length + draw(hs.integers(service_pause + latency + 2, 60))
    handoff = draw(hs.integers(1, t + 40))
    return spans, service_pause, latency, client_pause, handoff


def service_turns(spans: list[tuple[int, int]], pause: int) -> list[list[tuple[int, int]]]:
    turns: list[list[tuple[int, int]]] = []
    for a, b in spans:
        if turns and a - turns[-1][-1][1] < pause:
            turns[-1].append((a, b))
        else:
            turns.append([(a, b)])
    return turns


@settings(max_examples=int(os.environ.get("SONIC_FSM_EXAMPLES", "300")), deadline=None)
@given(conversations())
def test_replay_starts_after_what_was_answered_and_before_what_was_not(case) -> None:
    spans, service_pause, latency, client_pause, handoff = case
    lg = ledger(pause=client_pause, min_pause=5, abandon=10_000)
    lg.opened("s1", 0)
    answers = {
        turn[-1][1] + service_pause + latency: turn for turn in service_turns(spans, service_pause)
    }
    for seq in range(handoff + 1):
        lg.feed(seq, LOUD if any(a <= seq < b for a, b in spans) else QUIET)
        if seq in answers:
            lg.answer_began("s1", seq)
            lg.answer_ended("s1")
    first = lg.replay_from("s1", handoff, finished=False)
    answered = [
        s
        for turn in answers.values()
        for s in turn
        if turn[-1][1] + service_pause + latency <= handoff
    ]
    unanswered = [s for s in spans if s not in answered and s[0] <= handoff]
    assert all(b <= first for _, b in answered), (first, answered)
    assert all(a >= first for a, _ in unanswered), (first, unanswered)

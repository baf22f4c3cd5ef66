"""History rules and limits, and splitting long texts inside one content block."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as hs

from sonic_fsm.core import protocol as pr
from sonic_fsm.core.history import ASSISTANT, USER, Message, for_new_session, merge_neighbours, size


def test_first_message_is_user_and_neighbours_merge() -> None:
    msgs = [
        Message(ASSISTANT, "welcome"),
        Message(USER, "hi"),
        Message(USER, "there"),
        Message(ASSISTANT, "hello"),
    ]
    out = for_new_session(msgs, 40, 40_000)
    assert out == [Message(USER, "hi there"), Message(ASSISTANT, "hello")]


def test_count_limit_keeps_the_most_recent_and_starts_with_user() -> None:
    msgs = [Message(USER if i % 2 == 0 else ASSISTANT, f"m{i}") for i in range(10)]
    out = for_new_session(msgs, 3, 40_000)
    assert out[0].role == USER and len(out) <= 3
    assert out[-1].text == "m9"


def test_byte_limit_drops_oldest() -> None:
    msgs = [Message(USER if i % 2 == 0 else ASSISTANT, "x" * 100) for i in range(10)]
    out = for_new_session(msgs, 40, 450)
    assert size(out) <= 450 and out[0].role == USER


def test_single_message_over_the_total_keeps_its_end() -> None:
    out = for_new_session([Message(USER, "a" * 50 + "END")], 40, 10)
    assert out[0].text.endswith("END") and size(out) <= 10


@given(
    hs.lists(
        hs.tuples(hs.sampled_from([USER, ASSISTANT]), hs.text(min_size=0, max_size=300)),
        max_size=30,
    ),
    hs.integers(1, 20),
    hs.integers(50, 2000),
)
def test_rules_always_hold(pairs, max_messages, max_bytes) -> None:
    out = for_new_session([Message(r, t) for r, t in pairs], max_messages, max_bytes)
    assert not out or out[0].role == USER
    assert len(out) <= max_messages
    assert size(out) <= max_bytes
    assert all(a.role != b.role for a, b in itertools.pairwise(out))
    assert merge_neighbours(out) == out


@given(hs.text(max_size=3000), hs.integers(4, 300))
def test_long_text_splits_inside_one_block_and_rejoins(text, limit) -> None:
    events = pr.text_block("p", "c", USER, text, limit)
    names = [pr.event_name(e) for e in events]
    assert names[0] == "contentStart" and names[-1] == "contentEnd"
    assert set(names[1:-1]) == {"textInput"}
    pieces = [e["event"]["textInput"]["content"] for e in events[1:-1]]
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= limit for p in pieces)
    start = events[0]["event"]["contentStart"]
    assert start["interactive"] is False and start["role"] == USER

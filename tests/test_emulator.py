"""The emulated model's behaviour, at the model (sans-IO) and the in-process backend.

Rules answered as ValidationException naming the rule, the session limit and the silence
timeout, listening (test signal, honest transcripts, a recogniser), answering from the whole
conversation, the date/time tool use, barge-in, and every fault on request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as hs

from nova_emulator import recogniser as rec
from nova_emulator import voice
from nova_emulator.faults import Faults, FaultSpecError, parse_fault_plan
from nova_emulator.listener import Listener
from nova_emulator.model import END, EmulatorSession
from sonic_fsm import clock, testsignal
from sonic_fsm.audio import talker
from sonic_fsm.backends.local import LocalBackend, recogniser_from_settings
from sonic_fsm.core import protocol as pr
from sonic_fsm.errors import SessionError
from sonic_fsm.settings import Settings, SettingsError, load

P = "prompt-1"
AUDIO = "audio-1"
CHUNK = 0.064  # seconds of input audio per audioInput, as the engine sends
TOOLS = [
    {
        "toolSpec": {
            "name": "getDateAndTimeTool",
            "description": "today's date and the time",
            "inputSchema": {"json": '{"type": "object", "properties": {}}'},
        }
    }
]


def settings(*overrides: str) -> Settings:
    """Turns end after 500 ms here, for speed; tests/test_endpointing.py uses the real levels."""
    return load(None, ["emulator.end_of_speech_ms=500", *overrides])


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * 16000) * 2)


def speech(seconds: float, seed: int = 1) -> bytes:
    samples = testsignal.voice_like(seconds, 16000, seed=seed)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


class Script:
    """Recognises whatever it is told to, in order: the recogniser hook, made predictable."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.heard: list[int] = []

    def __call__(self, pcm: bytes) -> str | None:
        self.heard.append(len(pcm))
        return self.lines.pop(0) if self.lines else None


def new_session(
    s: Settings | None = None,
    faults: Faults | None = None,
    recogniser: Callable[[bytes], str | None] | None = None,
) -> EmulatorSession:
    return EmulatorSession(
        s or settings(), "s1", 0.0, faults, speaker=voice.synthetic, recogniser=recogniser
    )


def opening(
    history: Iterable[tuple[str, str]] = (),
    tools: list[dict[str, Any]] | None = None,
    rate: int = 24000,
    endpointing: str = "",
) -> list[dict[str, Any]]:
    start = pr.session_start(endpointing_sensitivity=endpointing)
    events = [start, pr.prompt_start(P, "matthew", rate, tools)]
    events += pr.text_block(P, "system", "SYSTEM", "Be brief.", 1024)
    for i, (role, text) in enumerate(history):
        events += pr.text_block(P, f"history-{i}", role, text, 1024)
    return events


def opened(
    history: Iterable[tuple[str, str]] = (),
    tools: list[dict[str, Any]] | None = None,
    rate: int = 24000,
    endpointing: str = "",
    **kw: Any,
) -> EmulatorSession:
    m = new_session(**kw)
    for e in [*opening(history, tools, rate, endpointing), pr.audio_content_start(P, AUDIO)]:
        m.receive(e, 0.0)
    return m


class Feeder:
    """Plays input audio into a session in 64 ms chunks at the right times, polling output."""

    def __init__(self, m: EmulatorSession, t: float = 0.0) -> None:
        self.m = m
        self.t = t
        self.out: list[tuple[float, Any]] = []

    def play(self, pcm: bytes) -> None:
        step = int(CHUNK * 16000) * 2
        for i in range(0, len(pcm), step):
            self.m.receive(pr.audio_input(P, AUDIO, pcm[i : i + step]), self.t)
            self.t += CHUNK
            self.collect()

    def wait(self, seconds: float) -> None:
        self.play(silence(seconds))

    def collect(self) -> None:
        self.out += [(self.t, item) for item in self.m.poll(self.t)]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            item["event"][name]
            for _, item in self.out
            if isinstance(item, dict) and name in item["event"]
        ]

    def texts(self, role: str = "ASSISTANT", stage: str | None = None) -> list[str]:
        stages: dict[str, str | None] = {}
        for _, item in self.out:
            if isinstance(item, dict) and "contentStart" in item["event"]:
                body = item["event"]["contentStart"]
                fields = json.loads(body.get("additionalModelFields") or "{}")
                stages[body["contentId"]] = fields.get("generationStage")
        return [
            t["content"]
            for t in self.events("textOutput")
            if t["role"] == role and (stage is None or stages.get(t["contentId"]) == stage)
        ]

    def audio(self) -> bytes:
        return b"".join(base64.b64decode(a["content"]) for a in self.events("audioOutput"))

    def error(self) -> SessionError | None:
        errors = [item for _, item in self.out if isinstance(item, SessionError)]
        return errors[-1] if errors else None


def violation(events: Iterable[dict[str, Any]], s: Settings | None = None) -> SessionError:
    """Feed ``events``; the ValidationException the session ends with (it must be last)."""
    m = new_session(s)
    for e in events:
        m.receive(e, 1.0)
    out = m.poll(1.0)
    assert out, "no error: the session accepted every event"
    assert isinstance(out[-1], SessionError), out[-1]
    assert m.finished and m.poll(2.0) == []
    assert out[-1].code == "ValidationException"
    return out[-1]


# ---- rules the service enforces ----------------------------------------------------------


def test_rule_audio_before_prompt_start() -> None:
    e = violation([pr.session_start(), pr.audio_input(P, AUDIO, silence(0.1))])
    assert e.message == "audioInput before promptStart"


def test_rule_event_before_session_start() -> None:
    e = violation([pr.prompt_start(P, "matthew")])
    assert e.message == "promptStart must follow sessionStart"


def test_rule_history_after_audio() -> None:
    e = violation(
        [*opening(), pr.audio_content_start(P, AUDIO), *pr.text_block(P, "h", "USER", "hi", 1024)]
    )
    assert e.message == "history must be sent before the audio content starts"


def test_rule_text_input_without_content_start() -> None:
    text = pr.text_block(P, "h", "USER", "hi", 1024)[1]
    e = violation([*opening(), text])
    assert e.message == "textInput: no open TEXT content h"


def test_rule_unknown_prompt_name() -> None:
    e = violation([*opening(), pr.audio_content_start("another-prompt", AUDIO)])
    assert e.message == "contentStart: unknown promptName 'another-prompt'"


def test_rule_unknown_content_name() -> None:
    e = violation(
        [*opening(), pr.audio_content_start(P, AUDIO), pr.audio_input(P, "nope", b"\0\0")]
    )
    assert e.message == "audioInput: no open AUDIO content nope"
    e = violation([*opening(), pr.content_end(P, "nope")])
    assert e.message == "contentEnd: no open content nope"


def test_rule_first_history_message_must_be_user() -> None:
    e = violation(opening([("ASSISTANT", "Hello, how can I help?")]))
    assert e.message == "the first history message must be USER"


def test_rule_history_text_must_not_be_interactive() -> None:
    block = pr.text_block(P, "h", "USER", "hi", 1024)
    block[0]["event"]["contentStart"]["interactive"] = True
    e = violation([*opening(), *block])
    assert e.message == "history text must be sent with interactive: false"


def test_rule_history_over_the_byte_limit() -> None:
    s = settings("history.max_total_bytes=100")
    e = violation(opening([("USER", "a" * 60), ("ASSISTANT", "b" * 60)]), s)
    assert e.message == "history over 100 bytes"


def test_rule_history_over_the_message_limit() -> None:
    s = settings("history.max_messages=2")
    e = violation(opening([("USER", "one"), ("ASSISTANT", "two"), ("USER", "three")]), s)
    assert e.message == "history over 2 messages"


def test_rule_text_input_over_its_size_limit() -> None:
    block = pr.text_block(P, "h", "USER", "x", 1024)
    block[1]["event"]["textInput"]["content"] = "é" * 513  # 1026 bytes
    e = violation([*opening(), *block])
    assert e.message == "textInput: content over 1024 bytes"


@pytest.mark.parametrize(
    ("key", "value"),
    [("sampleRateHertz", 8000), ("sampleSizeBits", 8), ("channelCount", 2), ("encoding", "hex")],
)
def test_rule_wrong_audio_format(key: str, value: Any) -> None:
    start = pr.audio_content_start(P, AUDIO)
    start["event"]["contentStart"]["audioInputConfiguration"][key] = value
    e = violation([*opening(), start])
    assert e.message.startswith(f"audioInputConfiguration: {key} must be ")
    assert f"(got {value!r})" in e.message


def test_rule_malformed_json() -> None:
    m = new_session()
    m.receive_bytes(json.dumps(pr.session_start()).encode(), 0.0)
    m.receive_bytes(b'{"event": {"promptStart": {"promptName": ', 0.5)
    out = m.poll(0.5)
    assert isinstance(out[-1], SessionError) and out[-1].code == "ValidationException"
    assert out[-1].message.startswith("malformed JSON: ")
    m = new_session()
    m.receive_bytes(b"[1, 2]", 0.0)
    assert m.poll(0.0)[-1].message == "malformed JSON: not an object"


def test_rule_malformed_base64() -> None:
    bad = pr.audio_input(P, AUDIO, b"")
    bad["event"]["audioInput"]["content"] = "not base64!"
    e = violation([*opening(), pr.audio_content_start(P, AUDIO), bad])
    assert e.message == "audioInput: content is not valid base64"


def test_rule_tool_result_for_an_unknown_tool_use() -> None:
    block = pr.tool_result_block(P, "tool-1", "no-such-id", {"time": "12:00"})
    e = violation([*opening(tools=TOOLS), pr.audio_content_start(P, AUDIO), *block])
    assert e.message == "tool result: unknown toolUseId 'no-such-id'"


def test_rule_event_after_session_end() -> None:
    e = violation([*opening(), pr.session_end(), pr.prompt_end(P)])
    assert e.message == "promptEnd after sessionEnd"


def test_valid_opening_through_receive_bytes_is_accepted() -> None:
    m = new_session()
    for e in [*opening([("USER", "hi"), ("ASSISTANT", "hello")]), pr.audio_content_start(P, AUDIO)]:
        m.receive_bytes(json.dumps(e), 0.0)
    assert m.poll(1.0) == [] and not m.finished
    assert m.history == [("USER", "hi"), ("ASSISTANT", "hello")] and m.system == "Be brief."


# ---- limits ------------------------------------------------------------------------------


def test_session_limit_ends_the_stream_with_the_timeout_error() -> None:
    s = settings(
        "transition_threshold_seconds=20",
        "session_limit_seconds=40",
        "hard_deadline_margin_seconds=5",
    )
    m = opened(s=s)
    assert m.next_deadline() == 40.0
    assert m.poll(39.9) == []
    out = m.poll(40.0)
    assert len(out) == 1 and isinstance(out[0], SessionError)
    assert out[0].code == "ModelTimeoutException" and "limit of 40 s" in out[0].message


def test_silence_timeout_defaults_to_175_seconds() -> None:
    assert Settings().emulator.silence_timeout_seconds == 175.0
    m = opened()
    assert m.next_deadline() == 175.0  # no speech yet: counted from the audio's start


def test_silence_timeout_counts_from_the_last_user_speech() -> None:
    s = settings("emulator.silence_timeout_seconds=10")
    m = opened(s=s)
    f = Feeder(m)
    f.wait(3.0)
    f.play(speech(12.0))  # longer than the timeout: speaking is not silence
    spoke_until = f.t
    assert f.error() is None
    f.wait(12.0)
    err = f.error()
    assert err is not None and err.code == "ModelTimeoutException"
    at = next(t for t, item in f.out if isinstance(item, SessionError))
    end_pointing = m.turn_pause_seconds()
    assert spoke_until + 10 <= at <= spoke_until + 10 + end_pointing + 2 * CHUNK


# ---- listening ---------------------------------------------------------------------------


def test_test_signal_is_recognised_and_answered_with_the_marked_answer() -> None:
    f = Feeder(opened())
    f.play(testsignal.utterance(17))
    f.wait(6.0)
    assert f.texts("USER") == ["utterance 17"]
    assert f.texts(stage="SPECULATIVE") == ["answer to utterance 17"]
    assert f.texts(stage="FINAL") == ["answer to utterance 17"]
    assert f.audio() == testsignal.answer(17, 24000)
    marks = testsignal.decode_marks(f.audio(), 24000)
    assert [(k.kind, k.number) for k in marks] == [("A", 17), ("B", 17)]


def test_speech_without_a_recogniser_is_transcribed_as_what_it_is() -> None:
    f = Feeder(opened(recogniser=None))
    f.wait(0.5)
    f.play(speech(2.4))
    f.wait(4.0)
    (heard,) = f.texts("USER")
    assert re.fullmatch(r"\(speech, 2\.[345] s\)", heard), heard
    (answer,) = f.texts(stage="FINAL")
    assert "no speech recogniser is installed" in answer


def test_the_recogniser_hook_gets_the_utterance_audio() -> None:
    ears = Script("hello there")
    f = Feeder(opened(recogniser=ears))
    f.wait(0.5)
    f.play(speech(1.5))
    f.wait(3.0)
    assert f.texts("USER") == ["hello there"]
    assert f.texts(stage="FINAL")[0].startswith("Hello!")
    # the utterance, and a quarter of a second of what was around it on each side
    assert len(ears.heard) == 1 and 1.7 * 32000 < ears.heard[0] < 2.1 * 32000


@pytest.mark.slow  # espeak-ng runs as a process
@pytest.mark.skipif(
    not rec.available(),
    reason="pocketsphinx (the optional 'recogniser' extra) is not installed here: "
    "uv sync --extra recogniser",
)
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_pocketsphinx_recognises_espeak_speech_with_a_grammar() -> None:
    phrases = ["what did i say first", "what time is it", "hello can you hear me"]
    pcm16 = voice.resample(voice.Espeak()("what did I say first"), 24000, 16000)
    assert rec.Pocketsphinx(phrases)(silence(0.3) + pcm16 + silence(0.3)) == phrases[0]
    assert isinstance(rec.default_recogniser()(pcm16), str | None)  # open vocabulary runs


def test_what_a_grammar_heard_is_its_phrase_as_written() -> None:
    phrases = ["Hello, can you hear me?", "What is the capital of Portugal?"]
    assert rec.closest("hello can you hear", [rec.words(p) for p in phrases]) == (
        "hello can you hear me"
    )  # a decoder that stopped short of the end still names its phrase
    assert rec.closest("what is the capital", ["what is the time", "what is the capital of x"]) == (
        "what is the capital of x"
    )
    assert rec.closest("what is the time", ["what is the time", "the time"]) == "what is the time"


@pytest.mark.skipif(
    not rec.available(),
    reason="pocketsphinx (the optional 'recogniser' extra) is not installed here: "
    "uv sync --extra recogniser",
)
def test_the_talkers_lines_limit_the_recogniser_and_only_they_do() -> None:
    line = "Hello, can you hear me?"
    assert recogniser_from_settings(settings(), [line]) is rec.default_recogniser((line,))
    assert recogniser_from_settings(settings()) == "auto"  # a microphone: open vocabulary
    assert recogniser_from_settings(settings("emulator.recogniser=none"), [line]) is None


def test_grammar_lists_each_phrase_once() -> None:
    g = rec.grammar(["Hello, can you hear me?", "what time is it", "hello can you hear me"])
    assert g.endswith("public <talk> = hello can you hear me | what time is it;\n")
    with pytest.raises(ValueError):
        rec.grammar(["?!"])


# ---- answering ---------------------------------------------------------------------------

HISTORY = [
    ("USER", "My name is Ada."),
    ("ASSISTANT", "Nice to meet you, Ada."),
    ("USER", "I like green tea."),
    ("ASSISTANT", "Green tea is lovely."),
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what did I say first", "The first thing you said was: My name is Ada."),
        ("what did I say last", "Before this, you said: I like green tea."),
        ("how many turns do you remember", "I remember 4 turns: 2 from you and 2 from me"),
        ("hello", "Hello! I am the sonic-fsm emulator."),
        ("the weather is nice", "I heard: the weather is nice."),
    ],
)
def test_replies_use_the_history_the_session_started_with(question: str, expected: str) -> None:
    f = Feeder(opened(HISTORY, recogniser=Script(question)))
    f.wait(0.3)
    f.play(speech(1.0))
    f.wait(3.0)
    (answer,) = f.texts(stage="FINAL")
    assert answer.startswith(expected)


def test_replies_remember_what_was_said_in_this_session_too() -> None:
    f = Feeder(opened(recogniser=Script("I live in Lisbon", "what did I say first")))
    for _ in range(2):
        f.wait(0.3)
        f.play(speech(1.0))
        f.wait(4.0)
    assert f.texts(stage="FINAL")[1] == "The first thing you said was: I live in Lisbon"


def test_a_trailing_user_history_message_is_answered_without_audio() -> None:
    f = Feeder(opened([*HISTORY, ("USER", "utterance 5")]))
    f.wait(5.0)
    assert f.texts("USER") == []  # nothing was heard: the answer is to the history
    assert f.texts(stage="FINAL") == ["answer to utterance 5"]


def test_an_answer_comes_as_speculative_text_audio_final_text_and_usage_faster_than_real_time() -> (
    None
):
    s = settings("emulator.speed=4")
    f = Feeder(opened(s=s))
    f.play(testsignal.utterance(3))
    f.wait(6.0)
    names = [
        next(iter(item["event"]))
        for _, item in f.out
        if isinstance(item, dict) and next(iter(item["event"])) != "completionStart"
    ]
    spec = names.index("textOutput", names.index("textOutput") + 1)  # after the transcript
    first_audio = names.index("audioOutput")
    last_audio = len(names) - 1 - names[::-1].index("audioOutput")
    assert spec < first_audio
    assert "textOutput" in names[last_audio:] and "usageEvent" in names[last_audio:]
    times = [t for t, item in f.out if isinstance(item, dict) and "audioOutput" in item["event"]]
    seconds = len(f.audio()) / 48000
    assert times[-1] - times[0] <= seconds / 4 + 2 * CHUNK
    (usage,) = f.events("usageEvent")
    assert usage["totalTokens"] > 0 and usage["details"]["delta"]["output"]["speechTokens"] > 0


def test_answers_at_16_khz_when_the_prompt_asks_for_it() -> None:
    f = Feeder(opened(rate=16000))
    f.play(testsignal.utterance(4))
    f.wait(6.0)
    (start,) = [c for c in f.events("contentStart") if c["type"] == "AUDIO"]
    assert start["audioOutputConfiguration"]["sampleRateHertz"] == 16000
    assert f.audio() == testsignal.answer(4, 16000)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speaks_replies_at_24_khz() -> None:
    pcm = voice.Espeak()("Hello there, this is the emulator.")
    seconds = len(pcm) / 48000
    assert 1.0 < seconds < 5.0
    level = np.abs(np.frombuffer(pcm, dtype="<i2")).max()
    assert level > 1000
    assert voice.default_speaker() is not voice.synthetic


def test_resample_keeps_the_duration() -> None:
    pcm = speech(1.0)
    assert len(voice.resample(pcm, 16000, 24000)) == 48000
    assert len(voice.resample(pcm, 16000, 8000)) == 16000


# ---- the date/time tool ------------------------------------------------------------------


def test_a_date_time_question_uses_the_tool_and_waits_for_its_result() -> None:
    m = opened(tools=TOOLS, recogniser=Script("what time is it"))
    f = Feeder(m)
    f.wait(0.3)
    f.play(speech(1.0))
    f.wait(20.0)  # no result yet: no answer, however long
    (use,) = f.events("toolUse")
    assert use["toolName"] == "getDateAndTimeTool" and use["content"] == "{}"
    starts = [c for c in f.events("contentStart") if c["type"] == "TOOL"]
    ends = [c for c in f.events("contentEnd") if c["type"] == "TOOL"]
    assert [(c["role"], c["contentId"]) for c in starts] == [("TOOL", use["contentId"])]
    assert [(c["stopReason"], c["contentId"]) for c in ends] == [("TOOL_USE", use["contentId"])]
    assert f.texts("ASSISTANT") == []
    result = {"date": "Wednesday, 25 November 2026", "time": "06:10", "timezone": "UTC"}
    for e in pr.tool_result_block(P, "tool-result-1", use["toolUseId"], result):
        m.receive(e, f.t)
    f.wait(4.0)
    assert f.texts(stage="FINAL") == ["It is Wednesday, 25 November 2026, 06:10 (UTC)."]
    assert f.error() is None


def test_a_date_time_question_without_the_tool_says_so() -> None:
    f = Feeder(opened(recogniser=Script("what is the date today")))
    f.wait(0.3)
    f.play(speech(1.0))
    f.wait(4.0)
    assert f.events("toolUse") == []
    assert f.texts(stage="FINAL") == [
        "I cannot tell the date or time: I was given no date and time tool."
    ]


def test_questions_asked_during_a_tool_wait_are_answered_after_the_tool_answer() -> None:
    m = opened(tools=TOOLS, recogniser=Script("what time is it", "hello"))
    f = Feeder(m)
    for _ in range(2):
        f.wait(0.3)
        f.play(speech(1.0))
        f.wait(1.0)
    (use,) = f.events("toolUse")
    assert f.texts("ASSISTANT") == []
    for e in pr.tool_result_block(P, "r", use["toolUseId"], {"time": "09:30"}):
        m.receive(e, f.t)
    f.wait(8.0)
    finals = f.texts(stage="FINAL")
    assert finals[0] == "It is 09:30." and finals[1].startswith("Hello!")


# ---- barge-in ----------------------------------------------------------------------------


def contents_ended(f: Feeder, reason: str) -> list[dict[str, Any]]:
    return [c for c in f.events("contentEnd") if c["stopReason"] == reason]


def test_barge_in_during_generation_stops_it() -> None:
    f = Feeder(opened(faults=Faults(audio_speed=0.5)))  # slower than real time: still generating
    f.play(testsignal.utterance(1))
    f.wait(2.0)
    sent = len(f.audio())
    assert 0 < sent < len(testsignal.answer(1, 24000))
    f.play(testsignal.utterance(2))
    assert f.texts() == ["answer to utterance 1", pr.INTERRUPTED_TEXT]
    interrupted = contents_ended(f, "INTERRUPTED")
    assert {c["type"] for c in interrupted} == {"AUDIO", "TEXT"}
    f.wait(8.0)
    assert f.texts(stage="FINAL") == ["answer to utterance 2"]  # answer 1 never finished
    marks = [(k.kind, k.number) for k in testsignal.decode_marks(f.audio(), 24000)]
    assert marks == [("A", 1), ("A", 2), ("B", 2)]


def test_barge_in_while_the_client_still_plays_the_answer() -> None:
    f = Feeder(opened())  # generated 4x faster than real time: all sent, still playing
    f.play(testsignal.utterance(6))
    f.wait(1.5)
    assert f.texts(stage="FINAL") == ["answer to utterance 6"]
    f.play(testsignal.utterance(7))
    assert pr.INTERRUPTED_TEXT in f.texts()
    assert [c["type"] for c in contents_ended(f, "INTERRUPTED")] == ["TEXT"]


def test_speech_after_the_answer_has_played_is_no_barge_in() -> None:
    f = Feeder(opened())
    f.play(testsignal.utterance(6))
    f.wait(len(testsignal.answer(6, 24000)) / 48000 + 1.0)
    f.play(testsignal.utterance(7))
    f.wait(6.0)
    assert pr.INTERRUPTED_TEXT not in f.texts()
    assert f.texts(stage="FINAL") == ["answer to utterance 6", "answer to utterance 7"]


# ---- turn detection: the service's endpointing ------------------------------------------

WORLD = "emulator.end_of_speech_ms=0"  # no override: turns end as the service ends them


def transcript_times(f: Feeder) -> list[float]:
    return [
        t
        for t, item in f.out
        if isinstance(item, dict) and item["event"].get("textOutput", {}).get("role") == "USER"
    ]


@pytest.mark.parametrize(
    ("level", "pause"), [("HIGH", 1.5), ("MEDIUM", 1.75), ("LOW", 2.0), ("", 1.75)]
)
def test_a_turn_ends_after_the_pause_its_endpointing_sensitivity_names(
    level: str, pause: float
) -> None:
    f = Feeder(opened(endpointing=level, s=settings(WORLD)))
    f.play(testsignal.utterance(5))
    spoken = len(testsignal.utterance(5)) / 32000 - testsignal.GAP_S  # the last key's end
    f.wait(pause - 0.15)
    assert f.texts("USER") == []  # a pause shorter than the endpointing: still the turn
    f.wait(0.3 + CHUNK)
    assert f.texts("USER") == ["utterance 5"]
    assert pause - CHUNK <= transcript_times(f)[0] - spoken <= pause + 2 * CHUNK


def test_a_one_second_pause_inside_an_utterance_is_one_utterance_at_medium() -> None:
    f = Feeder(opened(endpointing="MEDIUM", s=settings(WORLD)))
    f.play(testsignal.utterance(42, pauses=[0.3, 1.0]))  # '*', '4', a breath, '2', '#'
    f.wait(6.0)
    assert f.texts("USER") == ["utterance 42"]
    assert f.texts(stage="FINAL") == ["answer to utterance 42"]


@settings_(max_examples=30, deadline=None)
@given(
    level=hs.sampled_from(["HIGH", "MEDIUM", "LOW"]),
    n=hs.integers(0, 9999),
    data=hs.data(),
)
def test_any_pause_up_to_1_2_s_between_keys_keeps_one_utterance(
    level: str, n: int, data: hs.DataObject
) -> None:
    keys = testsignal.keys_of(n)
    pauses = data.draw(
        hs.lists(
            hs.floats(testsignal.GAP_S, testsignal.MAX_PAUSE_INSIDE_S),
            min_size=len(keys) - 1,
            max_size=len(keys) - 1,
        )
    )
    f = Feeder(opened(endpointing=level, s=settings(WORLD)))
    f.play(testsignal.utterance(n, pauses=pauses))
    f.wait(2.5)
    assert f.texts("USER") == [f"utterance {n}"]
    assert f.texts(stage="SPECULATIVE") == [f"answer to utterance {n}"]


def test_a_pause_longer_than_the_endpointing_splits_the_keys_into_fragments() -> None:
    f = Feeder(opened(s=settings("emulator.end_of_speech_ms=500")))
    f.play(testsignal.utterance(12, pauses=[0.04, 0.9]))  # '*1', 0.9 s, '2#'
    f.wait(8.0)
    assert f.texts("USER") == ["(keys *1, 0.2 s)", "(keys 2#, 0.2 s)"]
    assert f.texts(stage="SPECULATIVE") == [
        "I heard the keys *1, which are not a whole utterance.",
        pr.INTERRUPTED_TEXT,  # the user went on speaking over the first answer
        "I heard the keys 2#, which are not a whole utterance.",
    ]
    assert testsignal.decode_marks(f.audio(), 24000) == []  # answers with no mark


def test_end_of_speech_ms_overrides_the_endpointing() -> None:
    f = Feeder(opened(endpointing="LOW", s=settings("emulator.end_of_speech_ms=500")))
    f.play(testsignal.utterance(5))
    f.wait(0.5 + 2 * CHUNK)
    assert f.texts("USER") == ["utterance 5"]


@pytest.mark.parametrize(
    ("turn", "problem"),
    [
        ({"endpointingSensitivity": "FAST"}, "endpointingSensitivity must be HIGH, MEDIUM or LOW"),
        ({"endpointingSensitivity": "high"}, "(got 'high')"),
        ({"endpointingSensitivity": 2}, "(got 2)"),
        ("HIGH", "turnDetectionConfiguration must be an object (got 'HIGH')"),
    ],
)
def test_rule_endpointing_sensitivity_must_be_one_the_service_knows(
    turn: Any, problem: str
) -> None:
    start = pr.session_start()
    start["event"]["sessionStart"]["turnDetectionConfiguration"] = turn
    e = violation([start])
    assert problem in e.message


def test_the_engine_sends_the_endpointing_setting_in_session_start() -> None:
    assert "turnDetectionConfiguration" not in pr.session_start()["event"]["sessionStart"]
    body = pr.session_start(endpointing_sensitivity="LOW")["event"]["sessionStart"]
    assert body["turnDetectionConfiguration"] == {"endpointingSensitivity": "LOW"}


# ---- faults ------------------------------------------------------------------------------


def test_fault_stream_dies_at_a_set_time() -> None:
    f = Feeder(opened(faults=Faults(die_at_seconds=2.0)))
    f.wait(3.0)
    err = f.error()
    assert err is not None and err.code == "ModelStreamErrorException"
    assert next(t for t, i in f.out if isinstance(i, SessionError)) == pytest.approx(2.0, abs=0.07)


def test_fault_stream_dies_mid_answer() -> None:
    f = Feeder(opened(faults=Faults(die_mid_answer=1)))
    f.play(testsignal.utterance(1))
    f.wait(6.0)
    err = f.error()
    assert (
        err is not None and err.code == "ModelStreamErrorException" and "mid-answer" in err.message
    )
    assert 0 < len(f.audio()) < len(testsignal.answer(1, 24000))
    assert f.texts(stage="FINAL") == []


def test_fault_malformed_output_event() -> None:
    f = Feeder(opened(faults=Faults(malformed_at_answer=1)))
    f.play(testsignal.utterance(1))
    f.wait(6.0)
    bad = 0
    for _, item in f.out:
        if isinstance(item, dict):
            try:
                pr.parse_output(item)
            except pr.ProtocolError:
                bad += 1
    assert bad == 1


def test_fault_slow_audio_output() -> None:
    f = Feeder(opened(faults=Faults(audio_speed=0.5)))
    f.play(testsignal.utterance(2))
    f.wait(12.0)
    times = [t for t, item in f.out if isinstance(item, dict) and "audioOutput" in item["event"]]
    seconds = len(f.audio()) / 48000
    assert times[-1] - times[0] >= seconds * 2 - 0.5  # half real time


def test_close_input_ends_the_output_after_what_is_owed() -> None:
    f = Feeder(opened())
    f.play(testsignal.utterance(1))
    f.wait(0.6)
    f.m.receive(pr.content_end(P, AUDIO), f.t)
    f.m.receive(pr.prompt_end(P), f.t)
    f.m.receive(pr.session_end(), f.t)
    f.m.close_input(f.t)
    for _ in range(200):
        f.t += 0.1
        f.collect()
    assert f.out[-1][1] is END
    assert f.texts(stage="FINAL") == ["answer to utterance 1"]
    (end,) = f.events("completionEnd")
    assert end["stopReason"] == "END_TURN"


async def _open_with(plan: Callable[[int], Faults], n: int) -> list[tuple[str, float]]:
    backend = LocalBackend(settings(), plan, speaker=voice.synthetic, recogniser=None)
    loop = asyncio.get_running_loop()
    outcome: list[tuple[str, float]] = []
    for i in range(n):
        t0 = loop.time()
        try:
            session = await backend.open(f"s{i + 1}")
        except SessionError as e:
            outcome.append((e.code, loop.time() - t0))
            continue
        try:
            await asyncio.wait_for(session.send(pr.session_start()), 5.0)
            outcome.append(("ready", loop.time() - t0))
        except TimeoutError:
            outcome.append(("never ready", loop.time() - t0))
    await backend.aclose()
    return outcome


def test_faults_on_the_nth_session_through_the_backend() -> None:
    plan = parse_fault_plan("2:refuse_start,3:start_delay_seconds=3,4:never_ready")
    got = clock.run(_open_with(plan, 5), virtual=True)
    assert [k for k, _ in got] == [
        "ready",
        "ThrottlingException",
        "ready",
        "never ready",
        "ready",
    ]
    assert got[0][1] == pytest.approx(0, abs=0.01)
    assert got[2][1] == pytest.approx(3.0, abs=0.01)


def test_fault_plan_spec_selects_sessions() -> None:
    plan = parse_fault_plan("*:audio_speed=2, 3+:die_at_seconds=20,3:die_mid_answer=2")
    assert plan(1) == Faults(audio_speed=2.0)
    assert plan(3) == Faults(audio_speed=2.0, die_at_seconds=20.0, die_mid_answer=2)
    assert plan(7) == Faults(audio_speed=2.0, die_at_seconds=20.0)
    assert parse_fault_plan("")(1) == Faults()
    assert parse_fault_plan("1:refuse_start=false")(1) == Faults()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("refuse_start", "expected SESSION:FAULT[=VALUE]"),
        ("2:explode", "unknown fault 'explode' (known: start_delay_seconds"),
        ("0:refuse_start", "session '0' must be N, N+ or *"),
        ("2:die_at_seconds", "die_at_seconds needs a value"),
        ("2:die_at_seconds=soon", "die_at_seconds takes a number, not 'soon'"),
        ("2:die_mid_answer=1.5", "die_mid_answer takes a whole number"),
        ("2:audio_speed=0", "audio_speed must be positive"),
    ],
)
def test_fault_plan_spec_errors_are_one_line(spec: str, problem: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_fault_plan(f"1:refuse_start,{spec}")
    message = str(info.value)
    assert problem in message and "\n" not in message
    assert message.startswith(f"fault spec {spec!r}: ")


def test_the_backend_takes_faults_voice_and_recogniser_from_settings_where_they_exist() -> None:
    s = settings()
    backend = LocalBackend(s)
    assert backend.faults(2) == Faults() and backend.recogniser == "auto"
    # the settings the lead is asked to add (.notes/requests-emulator.md), set by hand here
    s.emulator.faults = "2:refuse_start"  # type: ignore[attr-defined]
    s.emulator.voice = "synthetic"  # type: ignore[attr-defined]
    s.emulator.recogniser = "none"  # type: ignore[attr-defined]
    backend = LocalBackend(s)
    assert backend.faults(2) == Faults(refuse_start=True) and backend.faults(1) == Faults()
    assert backend.speaker is voice.synthetic and backend.recogniser is None
    s.emulator.recogniser = "whisper"  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match=r"emulator\.recogniser: auto, none or pocketsphinx"):
        LocalBackend(s)


# ---- recognition off the loop ------------------------------------------------------------


def test_deferred_recognition_keeps_utterances_in_order() -> None:
    m = opened(recogniser=Script("hello"))
    m.defer_recognition = True
    f = Feeder(m)
    f.wait(0.3)
    f.play(speech(1.0))
    f.wait(0.8)
    (request,) = m.take_recognition_requests()
    f.play(testsignal.utterance(3))
    f.wait(2.0)
    assert f.texts("USER") == [] and f.texts() == []  # the second waits for the first's words
    m.recognised(request[0], "hello", f.t)
    f.wait(8.0)
    assert f.texts("USER") == ["hello", "utterance 3"]
    finals = f.texts(stage="FINAL")
    assert finals[0].startswith("Hello!") and finals[1] == "answer to utterance 3"


@pytest.mark.slow  # real time
def test_in_real_time_the_backend_recognises_off_the_event_loop() -> None:
    import time

    def slow_ears(pcm: bytes) -> str:
        time.sleep(0.4)  # a real recogniser on a long utterance
        return "what did I say first"

    async def go() -> tuple[list[str], int]:
        backend = LocalBackend(settings(), speaker=voice.synthetic, recogniser=slow_ears)
        session = await backend.open("s1")
        history = [("USER", "I am Ada."), ("ASSISTANT", "Hello Ada.")]
        for e in [*opening(history), pr.audio_content_start(P, AUDIO)]:
            await session.send(e)
        pcm = silence(0.3) + speech(1.0) + silence(0.8)
        for i in range(0, len(pcm), 2048):
            await session.send(pr.audio_input(P, AUDIO, pcm[i : i + 2048]))
        ticks = 0
        texts: list[str] = []

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        while len(texts) < 2:
            event = await asyncio.wait_for(session.receive(), 5.0)
            assert event is not None
            if "textOutput" in event["event"]:
                texts.append(event["event"]["textOutput"]["content"])
        t.cancel()
        await backend.aclose()
        return texts, ticks

    texts, ticks = clock.run(go())
    assert texts[0] == "what did I say first"
    assert "I am Ada." in texts[1]
    assert ticks >= 10  # the loop kept running while the recogniser worked


# ---- over the wire: the endpoint serves the same behaviour --------------------------------


@pytest.mark.slow  # the endpoint over real sockets, in real time
def test_over_the_endpoint_a_rule_and_the_tool_use_behave_as_in_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from nova_emulator.sigv4 import Credentials
    from nova_emulator.tls import client_context, ensure_certificates
    from nova_emulator.wire_client import WireClient
    from sonic_fsm.local_endpoint import on_thread

    tls = ensure_certificates(tmp_path_factory.mktemp("emulator-endpoint"))
    creds = Credentials(access_key_id="AKIALOCALTEST", secret_access_key="the-secret")
    s = settings("emulator.speed=20")
    backend = LocalBackend(s, speaker=voice.synthetic, recogniser=Script("what time is it"))

    async def go(port: int) -> tuple[str, list[str]]:
        client = WireClient(credentials=creds, region="us-east-1")
        await client.connect("127.0.0.1", port, client_context(tls))
        try:
            bad = await client.open()
            await bad.send(pr.session_start())
            await bad.send(pr.audio_input(P, AUDIO, silence(0.1)))
            with pytest.raises(SessionError) as info:
                while await asyncio.wait_for(bad.receive(), 5.0) is not None:
                    pass
            rule = f"{info.value.code}: {info.value.message}"

            stream = await client.open()
            for e in [*opening(tools=TOOLS), pr.audio_content_start(P, AUDIO)]:
                await stream.send(e)
            pcm = silence(0.3) + speech(1.0) + silence(1.0)
            for i in range(0, len(pcm), 2048):
                await stream.send(pr.audio_input(P, AUDIO, pcm[i : i + 2048]))
            texts: list[str] = []
            while sum(t.startswith("It is") for t in texts) < 2:  # SPECULATIVE, FINAL
                event = await asyncio.wait_for(stream.receive(), 5.0)
                assert event is not None
                body = event["event"]
                if "toolUse" in body:
                    block = pr.tool_result_block(
                        P, "result-1", body["toolUse"]["toolUseId"], {"time": "07:00"}
                    )
                    for e in block:
                        await stream.send(e)
                    texts.append("toolUse")
                elif "textOutput" in body:
                    texts.append(body["textOutput"]["content"])
            await stream.close()
            return rule, texts
        finally:
            await client.aclose()

    with on_thread(lambda: backend, tls, key=creds) as served:
        rule, texts = clock.run(go(served.port))
    assert rule == "ValidationException: audioInput before promptStart"
    assert texts == ["what time is it", "toolUse", "It is 07:00.", "It is 07:00."]


@pytest.mark.slow  # espeak-ng runs as a process; pocketsphinx listens 10 times to each line
@pytest.mark.skipif(
    not rec.available(),
    reason="pocketsphinx (the optional 'recogniser' extra) is not installed here: "
    "uv sync --extra recogniser",
)
@pytest.mark.skipif(not talker.espeak_available(), reason="espeak-ng or sox not installed")
def test_the_listener_hears_every_line_of_the_talker_wherever_it_falls() -> None:
    lines = talker.Talker(talker.TalkerConfig(voice="speech")).phrases
    ears = rec.Pocketsphinx(lines)
    pcm = {line: talker.synthesize(line, voice="en-us") for line in lines}
    for offset in range(0, 160, 16):  # where a line falls on the 10 ms grid
        heard = []
        for line in lines:
            listener = Listener(1.75, recogniser=ears)
            audio = silence(0.5) + bytes(2 * offset) + pcm[line] + silence(2.0)
            heard += [h.transcript for h in listener.feed(audio) if h.kind != "onset"]
        assert heard == list(lines), offset

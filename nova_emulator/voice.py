"""The emulator's mouth: what it answers, and the audio of the answer.

Test-signal utterances get the marked answers (``answer to utterance N``, audio from
:func:`sonic_fsm.testsignal.answer`): the oracle and the engine's tests depend on them.
Anything else gets a short rule-based reply that uses the conversation, the history the
session was started with included, so a person (or a test) can check that a hand-off kept
it: a greeting, "what did I say first / last", how many turns it remembers, a date/time
answer through the client's tool, and a fallback that repeats what it heard.

Replies are spoken with ``espeak-ng`` when it is installed (resampled to 24 kHz), otherwise
as a voice-like signal about as long as reading the text aloud.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic_fsm import testsignal

RATE = 24000
UTTERANCE = re.compile(r"^utterance (\d+)$")
UNRECOGNISED = re.compile(r"^\(speech, ([\d.]+) s\)$")
KEYS = re.compile(r"^\(keys ([0-9*#A-D]+), ([\d.]+) s\)$")  # part of a test-signal utterance
DATE_TIME_TOOL = "getDateAndTimeTool"
TEST_SIGNAL_TOOL = "testSignalTool"
TOOL_QUESTION = re.compile(r"^tool question (\d+)$")
TOOL_ANSWER = re.compile(r"^answer to tool question (\d+): (?:the tool said (\d+)|.*)$")

Speaker = Callable[[str], bytes]
"""Text -> 24 kHz 16-bit mono PCM."""

USER, ASSISTANT = "USER", "ASSISTANT"


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    pcm: bytes


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def wants_tool(transcript: str) -> str | None:
    """The tool a question needs before it can be answered: a test-signal tool question, or
    a date or time question."""
    if TOOL_QUESTION.match(transcript):
        return TEST_SIGNAL_TOOL
    w = _words(transcript)
    asks = bool(w & {"what", "which", "tell", "whats", "what's"})
    if asks and (w & {"time", "date", "day", "today", "clock"}):
        return DATE_TIME_TOOL
    return None


def tool_input(transcript: str) -> str:
    """The input (JSON) the model gives the tool the question needs."""
    if m := TOOL_QUESTION.match(transcript):
        return json.dumps({"n": int(m.group(1))})
    return "{}"


def reply_text(transcript: str, conversation: Sequence[tuple[str, str]]) -> str:
    """The answer to ``transcript``, given the conversation before it (role, text)."""
    if m := UTTERANCE.match(transcript):
        return f"answer to utterance {m.group(1)}"
    if m := TOOL_QUESTION.match(transcript):  # asked without the tool it needs
        return f"answer to tool question {m.group(1)}: I was given no {TEST_SIGNAL_TOOL}"
    said = [t for role, t in conversation if role == USER]
    w = _words(transcript)
    if m := KEYS.match(transcript):
        return f"I heard the keys {m.group(1)}, which are not a whole utterance."
    if m := UNRECOGNISED.match(transcript):
        return (
            f"I heard {m.group(1)} seconds of speech, but no speech recogniser is installed, "
            "so I cannot tell what you said."
        )
    verb = "asked" if w & {"ask", "asked"} else "said"
    if w & {"said", "say", "ask", "asked", "tell", "told"} and w & {"first", "start"}:
        if not said:
            return f"This is the first thing you {verb} me."
        return f"The first thing you {verb} was: {said[0]}"
    if w & {"said", "say", "ask", "asked", "tell", "told"} and w & {
        "last",
        "before",
        "previous",
        "ago",
        "earlier",
    }:
        if not said:
            return f"You have not {verb} anything before this."
        return f"Before this, you {verb}: {said[-1]}"
    if "how many" in transcript.lower() or w & {"remember", "memory"}:
        mine = sum(1 for role, _ in conversation if role == ASSISTANT)
        return (
            f"I remember {len(conversation)} turns: {len(said)} from you "
            f"and {mine} from me, before this question."
        )
    if w & {"hello", "hi", "hey", "morning", "evening", "afternoon"}:
        return "Hello! I am the sonic-fsm emulator. What would you like to talk about?"
    if wants_tool(transcript):
        return "I cannot tell the date or time: I was given no date and time tool."
    return f"I heard: {transcript.rstrip('.!? ')}."


def tool_answer(result: str, question: str = "") -> str:
    """The answer to ``question`` once its tool's result (a JSON string) has come back."""
    try:
        data = json.loads(result)
    except ValueError:
        data = result
    if m := TOOL_QUESTION.match(question):
        value = data.get("value") if isinstance(data, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return f"answer to tool question {m.group(1)}: the tool said {value}"
        error = data.get("error") if isinstance(data, dict) else None
        return f"answer to tool question {m.group(1)}: the tool gave no result ({error or data})"
    if isinstance(data, dict) and ("date" in data or "time" in data):
        parts = [str(data[k]) for k in ("date", "time") if k in data]
        zone = f" ({data['timezone']})" if data.get("timezone") else ""
        return f"It is {', '.join(parts)}{zone}."
    return f"The date and time tool said: {result}"


# ---- speech ------------------------------------------------------------------------------


def synthetic(text: str) -> bytes:
    """A voice-like signal about as long as reading ``text`` aloud."""
    seconds = min(6.0, 0.6 + 0.06 * len(text))
    samples = testsignal.voice_like(seconds, RATE, seed=sum(text.encode()) % 1000)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def resample(pcm: bytes, rate: int, to: int = RATE) -> bytes:
    """16-bit mono PCM from ``rate`` to ``to`` Hz by linear interpolation (enough for a voice)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if rate == to or x.size == 0:
        return pcm
    n = round(x.size * to / rate)
    t = np.arange(n) * (rate / to)
    return np.interp(t, np.arange(x.size), x).round().astype("<i2").tobytes()


class Espeak:
    """``espeak-ng -w`` to a temporary file (piping cuts the audio short), read, resampled.

    Cached by text: the same reply costs one synthesis per process.
    """

    def __init__(self, binary: str = "espeak-ng", voice: str = "en-us") -> None:
        self.binary = binary
        self.voice = voice
        self._cache: dict[str, bytes] = {}

    def __call__(self, text: str) -> bytes:
        if text not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[text] = self._synthesise(text)
        return self._cache[text]

    def _synthesise(self, text: str) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "reply.wav"
            try:
                subprocess.run(
                    [self.binary, "-v", self.voice, "-w", str(out), "--", text],
                    check=True,
                    capture_output=True,
                    timeout=20,
                )
                with wave.open(str(out), "rb") as w:
                    rate, pcm = w.getframerate(), w.readframes(w.getnframes())
            except (OSError, subprocess.SubprocessError, wave.Error, EOFError):
                return synthetic(text)  # a broken espeak must not break the conversation
        return resample(pcm, rate)


@functools.cache
def default_speaker() -> Speaker:
    """espeak-ng when installed, otherwise the voice-like signal."""
    return Espeak() if shutil.which("espeak-ng") else synthetic


ANSWER = re.compile(r"^answer to utterance (\d+)$")


def reply_for(
    transcript: str,
    conversation: Sequence[tuple[str, str]],
    speak: Speaker | None = None,
    rate: int = RATE,
) -> Reply:
    return say(reply_text(transcript, conversation), speak, rate)


@functools.lru_cache(maxsize=64)
def _marked_answer(n: int, rate: int) -> bytes:
    """The test signal's answer; cached, as replayed audio is answered again."""
    return testsignal.answer(n, rate)


@functools.lru_cache(maxsize=64)
def _marked_tool_answer(n: int, value: int | None, rate: int) -> bytes:
    return testsignal.tool_answer(n, value, rate)


def say(text: str, speak: Speaker | None = None, rate: int = RATE) -> Reply:
    """``text`` with its audio at ``rate``: the marked test-signal answer, or speech."""
    if m := ANSWER.match(text):
        return Reply(text, _marked_answer(int(m.group(1)), rate))
    if m := TOOL_ANSWER.match(text):
        value = int(m.group(2)) if m.group(2) is not None else None
        return Reply(text, _marked_tool_answer(int(m.group(1)), value, rate))
    return Reply(text, resample((speak or default_speaker())(text), RATE, rate))

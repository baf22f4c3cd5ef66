"""The emulator's mouth: what it answers, and the audio of the answer.

Test-signal utterances get the marked answers (``answer to utterance N``, audio from
:func:`sonic_fsm.testsignal.answer`). Anything else gets a short rule-based reply that uses
the conversation, history included, spoken as a voice-like signal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sonic_fsm import testsignal
from sonic_fsm.emulator.listener import Heard

RATE = 24000
UTTERANCE = re.compile(r"^utterance (\d+)$")


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    pcm: bytes


def reply_text(transcript: str, history: Sequence[tuple[str, str]], heard: Sequence[Heard]) -> str:
    said = [t for role, t in history if role == "USER"] + [h.transcript for h in heard]
    lowered = transcript.lower()
    if m := UTTERANCE.match(transcript):
        return f"answer to utterance {m.group(1)}"
    if any(w in lowered for w in ("hello", "hi ", "good morning", "hey")):
        return "Hello! I am the sonic-fsm emulator. What would you like to talk about?"
    if "first" in lowered and len(said) > 1:
        return f"The first thing you said was: {said[0]}"
    if "last" in lowered and len(said) > 1:
        return f"Before this, you said: {said[-2]}"
    if "how many" in lowered:
        return f"I remember {len(said)} things you said."
    return f"I heard {transcript}."


def speak(text: str, rate: int = RATE) -> bytes:
    """A voice-like signal about as long as reading ``text`` aloud."""
    seconds = min(6.0, 0.6 + 0.06 * len(text))
    samples = testsignal.voice_like(seconds, rate, seed=sum(text.encode()) % 1000)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def reply_for(transcript: str, history: Sequence[tuple[str, str]], heard: Sequence[Heard]) -> Reply:
    text = reply_text(transcript, history, heard)
    if m := UTTERANCE.match(transcript):
        return Reply(text, testsignal.answer(int(m.group(1)), RATE))
    return Reply(text, speak(text))

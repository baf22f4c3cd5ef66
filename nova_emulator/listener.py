"""The emulator's ears: voice activity, utterance end-pointing, and recognition.

Works on the audio timeline (sample positions), not on arrival time, so audio replayed in a
burst is heard exactly as audio spoken live. A turn ends after a pause of
``end_of_speech_seconds`` (the session's endpointing); a shorter pause, even between the keys
of one test-signal utterance, is part of the same turn. The test signal (``*N#`` in DTMF, or
the tool question ``*CN#``) is recognised exactly when the whole sequence lies in one turn; a
turn that holds only part of one (the pause inside it was longer than the endpointing, so the
turn was split) is heard as what it is, ``(keys *1, 0.3 s)``, not as an utterance. Other speech
goes to the recogniser when there is one (see :mod:`nova_emulator.recogniser`) and is
otherwise transcribed honestly as what it is, ``(speech, 2.4 s)``. The recogniser is given the
utterance with a quarter of a second of the audio around it, as a voice detector's padding
does: the quiet start and end of a word fall below the speech level, and a recogniser handed
only the loud part loses them (pocketsphinx then misses the last word, or the whole phrase).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sonic_fsm.testsignal import TOOL_KEY, DtmfDecoder, MarkParser

RATE = 16000
BLOCK = RATE // 100  # 10 ms
SPEECH_DB = -45.0
SPEECH_POWER = (10 ** (SPEECH_DB / 20) * 32768) ** 2  # mean square of a block at SPEECH_DB
CONTEXT_BYTES = 2 * RATE // 4  # the audio kept on each side of an utterance for the recogniser


@dataclass(frozen=True, slots=True)
class Heard:
    kind: str  # "onset" (speech began) or "utterance" (speech ended and was transcribed)
    start: int  # sample position of the first speech
    end: int = 0
    transcript: str = ""
    number: int | None = None  # the test signal's utterance number
    audio: bytes = b""  # the utterance's PCM, for a recogniser of words (none for tones)


Recogniser = Callable[[bytes], str | None]
"""16 kHz PCM of one utterance -> its words, or ``None`` when it found none."""


class Listener:
    def __init__(self, end_of_speech_seconds: float, recogniser: Recogniser | None = None) -> None:
        self.end_blocks = 1
        self.end_after(end_of_speech_seconds)
        self.recogniser = recogniser
        self._pos = 0
        self._pending = b""
        self._in_speech = False
        self._start = 0
        self._quiet = 0
        self._audio = bytearray()
        self._before = b""  # the audio just before the current utterance's first speech
        self._recent = b""  # the last CONTEXT_BYTES of audio fed, for the next utterance
        self._decoder = DtmfDecoder(RATE)
        self._parser = MarkParser()
        self._numbers: list[tuple[int, int, str]] = []  # (sample, number, kind) of '*N#', '*CN#'
        self._keys: list[tuple[int, str]] = []  # (sample, key) of every DTMF key heard

    def end_after(self, seconds: float) -> None:
        """A pause of ``seconds`` ends a turn (the endpointing the session was started with)."""
        self.end_blocks = max(1, round(seconds * 100))

    @property
    def in_speech(self) -> bool:
        """Whether the audio fed so far ends inside an utterance (speech not yet end-pointed)."""
        return self._in_speech

    def feed(self, pcm: bytes) -> list[Heard]:
        keys = self._decoder.feed(pcm)
        self._keys += [(k.start, k.key) for k in keys]
        for mark in self._parser.feed(keys):
            if mark.kind in ("*", TOOL_KEY):
                self._numbers.append((mark.start, mark.number, mark.kind))
        data = self._pending + pcm
        out: list[Heard] = []
        n = len(data) // (2 * BLOCK)
        if n:
            x = np.frombuffer(data, dtype="<i2", count=n * BLOCK).astype(np.float64)
            loud = (x.reshape(n, BLOCK) ** 2).mean(axis=1) > SPEECH_POWER
            for i, speech in enumerate(loud.tolist()):
                if speech and not self._in_speech:
                    self._before = (self._recent + data[: i * 2 * BLOCK])[-CONTEXT_BYTES:]
                if speech or self._in_speech:
                    block = data[i * 2 * BLOCK : (i + 1) * 2 * BLOCK]
                    out.extend(self._block(block, speech))
                else:
                    self._pos += BLOCK  # silence outside speech: nothing to do
            self._recent = (self._recent + data[: n * 2 * BLOCK])[-CONTEXT_BYTES:]
        self._pending = data[n * 2 * BLOCK :]
        return out

    def _block(self, block: bytes, speech: bool) -> list[Heard]:
        at = self._pos
        self._pos += BLOCK
        if self._in_speech:
            self._audio += block
        if speech and not self._in_speech:
            self._in_speech, self._start, self._quiet = True, at, 0
            self._audio = bytearray(block)
            return [Heard("onset", at)]
        if not self._in_speech:
            return []
        self._quiet = 0 if speech else self._quiet + 1
        if self._quiet < self.end_blocks:
            return []
        self._in_speech = False
        end = self._pos - self._quiet * BLOCK
        return [self._transcribe(self._start, end)]

    def _transcribe(self, start: int, end: int) -> Heard:
        nums = [(n, kind) for s, n, kind in self._numbers if start - BLOCK <= s < end]
        keys = "".join(k for s, k in self._keys if start - BLOCK <= s < end)
        self._numbers = [x for x in self._numbers if x[0] >= end]
        self._keys = [(s, k) for s, k in self._keys if s >= end]
        if nums:
            n, kind = nums[0]
            said = f"tool question {n}" if kind == TOOL_KEY else f"utterance {n}"
            return Heard("utterance", start, end, said, n)
        audio = self._before + bytes(self._audio[: (end - start) * 2 + CONTEXT_BYTES])
        seconds = (end - start) / RATE
        if keys:  # part of an utterance: tones, which no recogniser of words can read
            return Heard("utterance", start, end, f"(keys {keys}, {seconds:.1f} s)")
        text = self.recogniser(audio) if self.recogniser else None
        return Heard("utterance", start, end, text or f"(speech, {seconds:.1f} s)", audio=audio)

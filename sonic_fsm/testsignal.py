"""The test signal: utterances and answers marked with DTMF key sequences.

Utterance N is the keys ``*``, the digits of N, ``#`` (16 kHz). Its answer (24 kHz) starts
with ``A``, N, ``#`` and ends with ``B``, N, ``#``, with 1 to 4 s of voice-like sound between.
Each key is a standard DTMF tone pair of 80 ms at about -10 dBFS, 40 ms of silence between
keys; inside an utterance that silence may be longer, up to :data:`MAX_PAUSE_INSIDE_S` (a
person drawing breath mid-sentence), and it is still one utterance. :class:`DtmfDecoder`
recognises keys exactly in a stream of PCM; :class:`MarkParser` turns keys into
marks (``("*", 17, start, end)``) that the emulator and the scorer use.

A tool question N is ``*``, ``C``, the digits of N, ``#``: the model asks the tool
``testSignalTool`` with ``{"n": N}`` and, once it has the result ``{"value": R}``, answers
``A N #``, ``D R #``, the voice-like sound, ``B N #`` (:func:`tool_answer`; no ``D`` mark when
it has no result).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
KEY_FREQS = {key: (ROWS[r], COLS[c]) for r, line in enumerate(KEYPAD) for c, key in enumerate(line)}
TONE_S = 0.080
GAP_S = 0.040
TONE_AMPLITUDE = 0.16  # each of the two tones; together about -10 dBFS at their peaks
MAX_PAUSE_INSIDE_S = 1.2  # the longest silence between two keys of one utterance


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def tones(keys: str, rate: int, pauses: Sequence[float] = ()) -> np.ndarray:
    """Float samples of ``keys`` as DTMF, each tone followed by its gap; ``pauses[i]`` (s), when
    given, is the silence after key ``i`` instead (the last key keeps its 40 ms gap)."""
    if len(pauses) > max(0, len(keys) - 1):
        raise ValueError(f"{len(pauses)} pauses for the {len(keys)} keys {keys}")
    for p in pauses:
        if not GAP_S <= p <= MAX_PAUSE_INSIDE_S:
            raise ValueError(
                f"a pause inside an utterance is {GAP_S} to {MAX_PAUSE_INSIDE_S} s (got {p:g})"
            )
    n_tone = int(TONE_S * rate)
    t = np.arange(n_tone) / rate
    parts = []
    for i, key in enumerate(keys):
        lo, hi = KEY_FREQS[key]
        parts.append(TONE_AMPLITUDE * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        parts.append(np.zeros(int((pauses[i] if i < len(pauses) else GAP_S) * rate)))
    return np.concatenate(parts) if parts else np.zeros(0)


def keys_of(n: int) -> str:
    """The keys of utterance ``n``."""
    return f"*{n}#"


def utterance(n: int, rate: int = 16000, pauses: Sequence[float] = ()) -> bytes:
    """PCM of utterance ``n``: ``*``, its digits, ``#``; ``pauses`` as in :func:`tones`."""
    return _pcm(tones(keys_of(n), rate, pauses))


def voice_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Syllable-shaped harmonic sound with a gliding pitch: heard as speech, never as DTMF."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t))
    noise = 0.05 * rng.standard_normal(n)
    return 0.12 * (wave * syllables + noise)


def answer_seconds(n: int) -> float:
    """The voice part's length of the answer to utterance ``n``: 1 to 4 s, fixed per ``n``."""
    return 1.0 + (n * 7 % 31) / 10.0


def answer(n: int, rate: int = 24000) -> bytes:
    """PCM of the answer to utterance ``n``: ``A n #``, voice, ``B n #``."""
    gap = np.zeros(int(0.1 * rate))
    body = voice_like(answer_seconds(n), rate, seed=n)
    return _pcm(np.concatenate([tones(f"A{n}#", rate), gap, body, gap, tones(f"B{n}#", rate)]))


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    start: int  # sample index where the tone was first seen
    end: int  # sample index just after the tone


class DtmfDecoder:
    """Streaming DTMF key detector over 10 ms blocks (Goertzel-style dot products)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.block = rate // 100
        t = np.arange(self.block) / rate
        freqs = ROWS + COLS
        self._basis = np.exp(-2j * np.pi * np.outer(freqs, t))
        self._pending = np.zeros(0)
        self._pos = 0  # sample index of the start of _pending
        self._run_key: str | None = None
        self._run_len = 0
        self._run_start = 0

    QUIET = 655  # every sample under 0.02 of full scale: no block can hold a key

    def feed(self, pcm: bytes) -> list[Key]:
        raw = np.frombuffer(pcm, dtype="<i2")
        if self._is_quiet(raw):
            return self._skip_quiet(raw)
        samples = raw.astype(np.float64) / 32768.0
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_blocks = data.size // self.block
        keys: list[Key] = []
        if n_blocks:
            blocks = data[: n_blocks * self.block].reshape(n_blocks, self.block)
            detected = self._classify(blocks)
            for i, key in enumerate(detected):
                keys.extend(self._step(key, self._pos + i * self.block))
        used = n_blocks * self.block
        self._pending = data[used:].copy()
        self._pos += used
        return keys

    def _is_quiet(self, raw: np.ndarray) -> bool:
        """Silence between keys is most of the stream; it can be skipped block for block."""
        return (
            self._run_key is None
            and raw.size > 0
            and int(np.abs(raw).max()) < self.QUIET
            and (self._pending.size == 0 or float(np.abs(self._pending).max()) < 0.02)
        )

    def _skip_quiet(self, raw: np.ndarray) -> list[Key]:
        total = self._pending.size + raw.size
        n_blocks = total // self.block
        rest = total - n_blocks * self.block
        if n_blocks == 0:
            self._pending = np.concatenate([self._pending, raw / 32768.0])
            return []
        self._pending = raw[raw.size - rest :] / 32768.0
        self._pos += n_blocks * self.block
        self._run_len += n_blocks  # the run of no key goes on
        return []

    def _classify(self, blocks: np.ndarray) -> list[str | None]:
        energy = (blocks**2).sum(axis=1) * self.block / 2
        audible = energy >= (0.02**2) * self.block * self.block / 2
        if not audible.any():
            return [None] * len(blocks)
        power = np.abs(blocks @ self._basis.T) ** 2
        r = power[:, :4].argmax(axis=1)
        c = power[:, 4:].argmax(axis=1)
        rows = np.arange(len(blocks))
        share = (power[rows, r] + power[rows, 4 + c]) / np.where(audible, energy, 1.0)
        keyed = audible & (share > 0.55)
        return [
            KEYPAD[ri][ci] if k else None
            for ri, ci, k in zip(r.tolist(), c.tolist(), keyed.tolist(), strict=True)
        ]

    def _step(self, key: str | None, at: int) -> list[Key]:
        if key == self._run_key:
            self._run_len += 1
            return []
        done = []
        if self._run_key is not None and self._run_len >= 4:
            done.append(Key(self._run_key, self._run_start, at))
        self._run_key, self._run_len, self._run_start = key, 1, at
        return done


@dataclass(frozen=True, slots=True)
class Mark:
    """A decoded key sequence: ``kind`` is ``*`` (utterance), ``A`` or ``B`` (answer ends).
    A mark that is not ``whole`` broke off before its ``#`` (an answer cut in its first
    keys): ``number`` is the digits heard, -1 when none was."""

    kind: str
    number: int
    start: int
    end: int
    whole: bool = True

    @property
    def digits(self) -> str:
        return "" if self.number < 0 else str(self.number)


class MarkParser:
    """Turns a stream of keys into marks; keys outside a well-formed sequence are dropped, or
    with ``partials`` given as marks that are not whole. ``*C`` starts a tool question (kind
    ``C``); ``D`` the result inside a tool answer."""

    def __init__(self, partials: bool = False) -> None:
        self.partials = partials
        self._kind: str | None = None
        self._digits = ""
        self._start = 0
        self._end = 0

    def feed(self, keys: list[Key]) -> list[Mark]:
        marks = []
        for k in keys:
            if k.key in "*ABD":
                marks += self.flush()
                self._kind, self._digits, self._start = k.key, "", k.start
            elif k.key == TOOL_KEY and self._kind == "*" and not self._digits:
                self._kind = TOOL_KEY
            elif k.key.isdigit() and self._kind is not None:
                self._digits += k.key
            elif k.key == "#" and self._kind is not None and self._digits:
                marks.append(Mark(self._kind, int(self._digits), self._start, k.end))
                self._kind = None
            else:
                marks += self.flush()
            self._end = k.end
        return marks

    def flush(self) -> list[Mark]:
        """The sequence under way, broken off: a partial mark (when asked for them)."""
        kind, self._kind = self._kind, None
        if kind is None or not self.partials:
            return []
        number = int(self._digits) if self._digits else -1
        return [Mark(kind, number, self._start, self._end, whole=False)]


def decode_marks(pcm: bytes, rate: int, partials: bool = False) -> list[Mark]:
    """Every mark in a whole recording (and the broken-off ones, with ``partials``)."""
    decoder, parser = DtmfDecoder(rate), MarkParser(partials)
    marks = parser.feed(decoder.feed(pcm) + decoder.feed(b"\x00\x00" * decoder.block * 2))
    return marks + parser.flush()


TOOL_KEY = "C"  # after "*": the utterance is a tool question
RESULT_KEY = "D"  # in a tool answer: the tool's result follows


def tool_question(n: int, rate: int = 16000) -> bytes:
    """PCM of tool question ``n``: ``*``, ``C``, its digits, ``#``."""
    return _pcm(tones(f"*{TOOL_KEY}{n}#", rate))


def tool_answer(n: int, value: int | None, rate: int = 24000) -> bytes:
    """PCM of the answer to tool question ``n``: ``A n #``, ``D value #`` (left out when there
    is no result), voice, ``B n #``."""
    gap = np.zeros(int(0.1 * rate))
    parts = [tones(f"A{n}#", rate), gap]
    if value is not None:
        parts += [tones(f"{RESULT_KEY}{value}#", rate), gap]
    parts += [voice_like(answer_seconds(n), rate, seed=n), gap, tones(f"B{n}#", rate)]
    return _pcm(np.concatenate(parts))

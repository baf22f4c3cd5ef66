"""A real offline recogniser for the emulator's ears: pocketsphinx, when it is installed.

``pocketsphinx`` is the optional extra ``recogniser`` (``uv sync --extra recogniser``); its
wheel ships an English model. Imported lazily, loaded once per process (about 0.3 s) and
shared by every session behind a lock (the decoder is not thread-safe). Without it the
emulator transcribes speech honestly as what it is, ``(speech, 2.4 s)``.

Open vocabulary is poor on synthetic voices; given ``phrases``, the decoder is limited to
them by a JSGF grammar, which recognises those phrases exactly (and forces any speech onto
one of them, so it is for scripted demos and tests, not for a microphone). What it heard is
given back as the phrase it matches best, as written (case and punctuation): a decoder that
stops short of the grammar's end ("hello can you hear" of "Hello, can you hear me?") still
names its phrase. The decoder dithers its input (with a fixed seed): on the digital silence
of synthetic speech it otherwise fails to find about half of the phrases.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
import threading
from collections.abc import Sequence
from typing import Any

from nova_emulator.listener import Recogniser

RATE = 16000


def available() -> bool:
    """Whether pocketsphinx can be imported here."""
    return importlib.util.find_spec("pocketsphinx") is not None


def words(phrase: str) -> str:
    """The words of ``phrase`` as the decoder spells them: lower case, letters and apostrophes."""
    return " ".join(re.findall(r"[a-z']+", phrase.lower()))


def grammar(phrases: Sequence[str]) -> str:
    """A JSGF grammar accepting exactly ``phrases`` (lower case, letters and apostrophes)."""
    alts = [w for w in map(words, phrases) if w]
    if not alts:
        raise ValueError("a grammar needs at least one phrase with words")
    return "#JSGF V1.0;\ngrammar talk;\npublic <talk> = " + " | ".join(sorted(set(alts))) + ";\n"


class Pocketsphinx:
    """16 kHz 16-bit mono PCM of one utterance -> its words, or ``None`` when none were found."""

    def __init__(self, phrases: Sequence[str] | None = None) -> None:
        from pocketsphinx import Decoder  # the optional extra: imported only when used

        self._decoder: Any = Decoder(samprate=RATE, dither=True, seed=1, logfn="/dev/null")
        self._phrases = {words(p): p for p in phrases or () if words(p)}
        if phrases:
            self._decoder.add_jsgf_string("talk", grammar(phrases).encode())
            self._decoder.activate_search("talk")
        self._lock = threading.Lock()

    def __call__(self, pcm: bytes) -> str | None:
        with self._lock:
            d = self._decoder
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            hyp = d.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text or not self._phrases:
            return text or None
        return self._phrases[closest(text, list(self._phrases))]


def closest(heard: str, candidates: Sequence[str]) -> str:
    """The candidate most like ``heard``, word for word (``heard`` itself when it is one)."""

    def likeness(c: str) -> float:
        return difflib.SequenceMatcher(None, heard.split(), c.split()).ratio()

    return heard if heard in candidates else max(candidates, key=likeness)


@functools.cache
def default_recogniser(phrases: tuple[str, ...] = ()) -> Recogniser | None:
    """pocketsphinx when importable, else ``None``: loaded on first use, one per process for
    each set of ``phrases`` (none: open vocabulary)."""
    if not available():
        return None
    return _Lazy(phrases)


class _Lazy:
    """Defers the model load (0.3 s) until the first utterance that is not the test signal."""

    def __init__(self, phrases: tuple[str, ...]) -> None:
        self._phrases = phrases
        self._real: Pocketsphinx | None = None
        self._lock = threading.Lock()

    def __call__(self, pcm: bytes) -> str | None:
        with self._lock:
            if self._real is None:
                self._real = Pocketsphinx(self._phrases)
        return self._real(pcm)

"""The simulated talker: a microphone that speaks a script and waits for answers like a person.

For demos and tests without a microphone. Each line of the script is one utterance, spoken
with espeak-ng (resampled to 16 kHz mono with sox) when both are installed, or as the test
signal otherwise (utterance N is ``*N#`` in DTMF, which the emulator and the scorer decode
exactly). After a line the talker keeps the stream going with silence and waits until the
assistant has answered and is quiet again, plus a short think time; now and then (a fraction,
reproducible with a seed) it does not wait and talks over the answer, to exercise barge-in.
Told of hand-offs (``handoffs``, a count), a speaking talker asks ``after_handoff`` ("What did
I ask you before?") as its next line after each one, so the answer shows whether the new
session was given the conversation; :attr:`Talker.phrases` is everything it may say, for a
recogniser limited to it.

Paced by the running loop's clock, so it runs as well in virtual time as in real time.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import tempfile
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from sonic_fsm import testsignal

DEFAULT_SCRIPT = (
    "Hello, can you hear me?",
    "What is a good name for a grey cat?",
    "Tell me a short fact about the moon.",
    "How long does it take to boil an egg?",
    "Which planet is closest to the sun?",
    "Give me one tip for sleeping better.",
    "What is the capital of Portugal?",
    "Thanks, that is all for now.",
)
RECALL = "What did I ask you before?"
"""Asked right after a hand-off: answered right only if the new session has the history."""


class TalkerError(ValueError):
    """A talker script or voice that cannot be used: one line naming the problem."""


def load_script(path: str | Path) -> list[str]:
    """One utterance per non-empty line; lines starting with ``#`` are comments."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TalkerError(f"talker script {p}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TalkerError(f"talker script {p}: cannot be read ({e})") from None
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise TalkerError(f"talker script {p}: no lines to speak")
    return lines


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def synthesize(text: str, rate: int = 16000, voice: str = "en") -> bytes:
    """``text`` spoken by espeak-ng as 16-bit mono PCM at ``rate``."""
    with tempfile.TemporaryDirectory(prefix="sonic-talker-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        try:
            subprocess.run(
                ["espeak-ng", "-v", voice, "-w", str(raw), "--", text],
                check=True,
                capture_output=True,
                timeout=30,
            )
            subprocess.run(  # -D: no dither, so a line is the same audio every time
                ["sox", "-D", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)],
                check=True,
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise TalkerError(f"espeak-ng/sox failed to speak {text!r} ({e})") from None
        with wave.open(str(out), "rb") as w:
            return w.readframes(w.getnframes())


@dataclass(frozen=True, kw_only=True)
class TalkerConfig:
    script: tuple[str, ...] = DEFAULT_SCRIPT
    voice: str = "auto"  # "auto" (espeak-ng when installed), "speech" or "tones"
    chunk_frames: int = 1024
    rate: int = 16000
    lead_in_seconds: float = 1.0  # silence before the first line
    think_seconds: float = 0.8  # pause after an answer ends, varied by ±30 %
    interrupt_fraction: float = 0.0  # share of lines spoken over the previous answer
    interrupt_after_seconds: float = 1.5  # how long after the assistant turned busy to cut in
    answer_timeout_seconds: float = 15.0  # give up waiting for an answer that never starts
    repeat: bool = False  # start the script again after its last line, numbers continuing
    seed: int = 0
    espeak_voice: str = "en-us"  # the recogniser's English model is American
    after_handoff: str = RECALL  # with speech: the next line after a hand-off ("" for none)
    tool_every: int = 0  # with tones: every k-th line is a tool question (``*CN#``)


@dataclass(kw_only=True)
class Utterance:
    """One line the talker spoke (times on the loop's clock)."""

    number: int
    text: str
    start: float
    end: float = 0.0
    interrupting: bool = False  # spoken while the assistant was still busy
    answered: bool = False  # the assistant became busy after it


@dataclass
class _Line:
    number: int
    text: str
    pcm: bytes
    interrupt: bool  # this line will be spoken over the answer to the one before it


@dataclass
class _Wait:
    line_end: float
    interrupt_next: bool
    busy_since: float | None = None
    idle_since: float | None = None
    think: float = 0.0


class Talker:
    """An :class:`~sonic_fsm.audio.base.AudioSource` that speaks a script.

    ``assistant_busy`` says whether the assistant is still answering (audio queued for the
    speaker, or an answer pending); the talker polls it once per chunk.
    """

    def __init__(
        self,
        config: TalkerConfig | None = None,
        *,
        assistant_busy: Callable[[], bool] = lambda: False,
        handoffs: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config or TalkerConfig()
        if not self.config.script:
            raise TalkerError("talker script: no lines to speak")
        if self.config.voice not in ("auto", "speech", "tones"):
            raise TalkerError(f"talker voice {self.config.voice!r}: use auto, speech or tones")
        if self.config.voice == "speech" and not espeak_available():
            raise TalkerError("talker voice speech: espeak-ng and sox are not both installed")
        self.uses_speech = self.config.voice == "speech" or (
            self.config.voice == "auto" and espeak_available()
        )
        self.assistant_busy = assistant_busy
        self.handoffs = handoffs
        self._handoffs_seen = 0
        self._pending: deque[_Line] = deque()  # put back behind a line asked after a hand-off
        self._inserted = 0  # lines asked after hand-offs so far
        self.spoken: list[Utterance] = []
        self.unanswered = 0  # lines whose answer never started within the timeout
        self._rng = random.Random(self.config.seed)
        self._speech: dict[str, bytes] = {}
        self._closed = False
        self._next_index = 0

    @property
    def chunk_bytes(self) -> int:
        return 2 * self.config.chunk_frames

    def render(self, number: int, text: str) -> bytes:
        """The PCM of one line: speech of ``text``, or the test signal of ``number``."""
        if not self.uses_speech:
            every = self.config.tool_every
            if every > 0 and number % every == 0:
                return testsignal.tool_question(number, self.config.rate)
            return testsignal.utterance(number, self.config.rate)
        if text not in self._speech:
            self._speech[text] = synthesize(text, self.config.rate, self.config.espeak_voice)
        return self._speech[text]

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every line this talker may speak in words (none when it speaks the test signal)."""
        if not self.uses_speech:
            return ()
        extra = (self.config.after_handoff,) if self.config.after_handoff else ()
        return tuple(dict.fromkeys((*self.config.script, *extra)))

    def prepare(self) -> None:
        """Speak every line of the script into memory now (about 70 ms a line with espeak-ng),
        so the loop is not held up at the start of each line later."""
        if self.uses_speech:
            for text in self.phrases:
                self.render(0, text)

    def _next_line(self) -> _Line | None:
        if self._pending:
            return self._pending.popleft()
        script = self.config.script
        i = self._next_index
        if i >= len(script) and not self.config.repeat:
            return None
        self._next_index += 1
        text = script[i % len(script)]
        number = i + 1 + self._inserted
        interrupt = i > 0 and self._rng.random() < self.config.interrupt_fraction
        return _Line(number, text, self.render(number, text), interrupt)

    async def frames(self) -> AsyncIterator[bytes]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.prepare()
        period = cfg.chunk_frames / cfg.rate
        silence = bytes(self.chunk_bytes)
        start = loop.time()
        seq = 0
        lead_in_chunks = round(cfg.lead_in_seconds / period)

        line = self._next_line()
        pos = 0  # byte offset into line.pcm
        wait: _Wait | None = None
        done = False
        while not self._closed and not done:
            seq += 1
            delay = start + seq * period - loop.time()  # a chunk is due at the end of its period
            if delay > 0:
                await asyncio.sleep(delay)
            if self._closed:
                return
            now = loop.time()
            chunk = silence
            if seq <= lead_in_chunks:
                pass
            elif wait is None and line is not None:
                if pos == 0:
                    self.spoken.append(
                        Utterance(
                            number=line.number,
                            text=line.text,
                            start=now - period,
                            interrupting=self.assistant_busy(),
                        )
                    )
                chunk = line.pcm[pos : pos + self.chunk_bytes]
                chunk += bytes(self.chunk_bytes - len(chunk))
                pos += self.chunk_bytes
                if pos >= len(line.pcm):
                    self.spoken[-1].end = now
                    upcoming = self._next_line()
                    wait = _Wait(
                        line_end=now,
                        interrupt_next=upcoming is not None and upcoming.interrupt,
                        think=cfg.think_seconds * self._rng.uniform(0.7, 1.3),
                    )
                    line, pos = upcoming, 0
            elif wait is not None and self._waited_enough(wait, now):
                wait = None
                line = self._after_handoff(line)
                done = line is None
            yield chunk

    def _after_handoff(self, line: _Line | None) -> _Line | None:
        """The recall line instead of ``line`` (put back to follow it) when a hand-off has
        happened since the last line began."""
        count = self.handoffs()
        if count <= self._handoffs_seen or not self.uses_speech or not self.config.after_handoff:
            return line
        self._handoffs_seen = count
        text = self.config.after_handoff
        self._inserted += 1
        if line is not None:
            line.number += 1
            line.interrupt = False
            self._pending.append(line)
        return _Line(len(self.spoken) + 1, text, self.render(0, text), interrupt=False)

    def _waited_enough(self, wait: _Wait, now: float) -> bool:
        """Whether the talker, silent since ``wait.line_end``, would speak again at ``now``."""
        cfg = self.config
        if self.assistant_busy():
            if wait.busy_since is None:
                wait.busy_since = now
                self.spoken[-1].answered = True
            wait.idle_since = None
            return wait.interrupt_next and now - wait.busy_since >= cfg.interrupt_after_seconds
        if wait.busy_since is None:
            if now - wait.line_end >= cfg.answer_timeout_seconds:
                self.unanswered += 1
                return True
            return False
        if wait.idle_since is None:
            wait.idle_since = now
        return now - wait.idle_since >= wait.think

    async def aclose(self) -> None:
        self._closed = True

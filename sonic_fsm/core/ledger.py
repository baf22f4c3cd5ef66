"""The ledger of user speech and who answered it.

At a hand-off the next session must hear exactly the user audio the old one has not answered:
more, and it answers a question twice; less, and a question is lost. Where the client thinks
speech ends does not decide that, because the service ends a turn after its own pause (1.5 to
2 s on Nova 2 Sonic) and merges, splits and transcribes as it likes. So the ledger decides
from what the service *did*:

- The client's tracker finds **stretches** of speech (frame numbers, an energy threshold).
- An **answer beginning** on a session that had received up to frame ``L`` proves that the
  service ended a turn at least one pause before ``L``: every turn (stretches grouped with
  that pause) that ended by ``L - pause`` is accounted for. When no such turn is new, the
  service ended a turn the client did not see end (its pause is shorter than the client
  assumed): every stretch that ended by ``L - min_pause`` is accounted for.
- A hand-off replays from the first stretch the old session has not begun answering; a
  recovery from the first one whose answer the failed session did not finish.
- Transcripts are **labels** for the history, not the accounting: each is placed at the
  speech it transcribes (or, with none, at where it arrived), so a late transcript still
  comes before its answer, a typed or history-only turn is kept, and a turn whose audio is
  replayed leaves the history (the new session hears it again).
- Speech no session transcribed or answered for ``abandon_frames`` is a cough: not replayed.
- An answer the user cut was given all the same. A replacement sent the turn again before
  the user cut what was left of the failed session's answer **repeats** it when it answers
  that turn: the engine does not play it (the user would hear an answer they stopped).
- An answer cut before a word of it sounded answered nothing: a replacement hears its speech
  again (:meth:`Ledger.ask_again`), once per question.

Sans-IO: frame numbers in, decisions out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sonic_fsm.core import history as hist
from sonic_fsm.core.config import Settings
from sonic_fsm.core.protocol import DEFAULT_ENDPOINTING, ENDPOINTING_PAUSE_SECONDS

# Against Bedrock with no level sent, the client assumes the shortest pause: assuming a
# shorter pause than the service's is safe (see above); a longer one needs the fallback.
ASSUMED_SENSITIVITY = "HIGH"
ENTRY_LIMIT = 400  # history kept; a new session gets at most history.max_messages of it


def turn_pause_seconds(s: Settings) -> float:
    """The pause after which the service ends a user's turn, as far as the client knows."""
    level = s.backend.endpointing_sensitivity
    if s.speech.turn_pause_ms > 0:
        return s.speech.turn_pause_ms / 1000
    if s.backend.kind == "emulator":
        override = s.emulator.end_of_speech_ms
        return (
            override / 1000
            if override > 0
            else ENDPOINTING_PAUSE_SECONDS[level or DEFAULT_ENDPOINTING]
        )
    return ENDPOINTING_PAUSE_SECONDS[level or ASSUMED_SENSITIVITY]


def level_db(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (-96 for silence)."""
    if not pcm:
        return -96.0
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = math.sqrt(float(x @ x) / x.size) / 32768.0  # a dot product: a third of mean(x*x)
    return 20 * math.log10(rms) if rms > 1.6e-5 else -96.0


@dataclass(slots=True)
class Stretch:
    """Speech the client heard, in frame numbers."""

    start: int
    end: int | None = None  # one past the last speech frame; None while it goes on


@dataclass(slots=True)
class Entry:
    """A history message and where it belongs in the conversation (a frame position)."""

    role: str
    text: str
    pos: int
    stretch: Stretch | None = None  # the speech a USER message transcribes, when known


@dataclass(slots=True)
class Account:
    """What one session has answered: every stretch that starts before ``begun`` has an
    answer begun; before ``done``, an answer finished (or cut by the user)."""

    begun: int
    done: int
    answering: int | None = None  # ``begun`` as the answer in progress made it
    answer_at: int = 0  # frame the session had heard when its latest answer began
    labelled: int = 0  # transcripts so far covered the speech before this


@dataclass
class Ledger:
    pause_frames: int  # the service's pause that ends a turn
    min_pause_frames: int  # no service ends a turn on a shorter pause
    threshold_db: float
    abandon_frames: int
    preroll_frames: int
    stretches: list[Stretch] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)
    last_level_db: float = -96.0
    asked_again: int = -1  # the first frame of the speech last heard again (ask_again)
    _quiet: int = 0

    @classmethod
    def from_settings(cls, s: Settings) -> Ledger:
        frame = s.audio.chunk_frames / s.audio.input_sample_rate
        sp = s.speech
        return cls(
            pause_frames=max(1, round(turn_pause_seconds(s) / frame)),
            min_pause_frames=max(1, math.ceil(sp.min_pause_ms / 1000 / frame)),
            threshold_db=sp.threshold_db,
            abandon_frames=math.ceil(sp.abandon_seconds / frame),
            preroll_frames=math.ceil(sp.preroll_ms / 1000 / frame),
        )

    # ---- the client's tracker ----------------------------------------------------------

    @property
    def open(self) -> Stretch | None:
        last = self.stretches[-1] if self.stretches else None
        return last if last is not None and last.end is None else None

    def feed(self, seq: int, pcm: bytes) -> bool:
        """Track one captured frame; True when speech begins with it (an onset)."""
        self.last_level_db = level_db(pcm)
        speech = self.last_level_db > self.threshold_db
        st = self.open
        if speech:
            self._quiet = 0
            if st is None:
                self.stretches.append(Stretch(seq))
                return True
        elif st is not None:
            self._quiet += 1
            if self._quiet >= self.min_pause_frames:
                st.end = seq - self._quiet + 1
        return False

    # ---- what the service did ----------------------------------------------------------

    def opened(self, sid: str, first_seq: int) -> None:
        """Session ``sid`` hears the user from ``first_seq`` on: earlier speech is not its."""
        self.accounts[sid] = Account(begun=first_seq, done=first_seq, labelled=first_seq)

    def answer_began(self, sid: str, heard_to: int, evidence: bool = True) -> bool:
        """``sid`` began an answer, having received frames up to ``heard_to``. ``evidence``
        False: it answers a history turn, which says nothing about the audio. True when the
        answer repeats one already given (see :meth:`_repeats`)."""
        acct = self.accounts.get(sid)
        if acct is None:
            return False
        acct.answer_at = heard_to
        since = acct.begun
        if evidence:
            acct.begun = max(acct.begun, self._covered(acct.begun, heard_to))
        acct.answering = acct.begun
        return self._repeats(sid, since, acct.begun, heard_to)

    def _repeats(self, sid: str, since: int, begun: int, heard_to: int) -> bool:
        """An answer covering the speech from ``since`` to ``begun`` repeats one already
        given when another session finished, or the user cut, an answer to all of it, and
        no later speech has ended that it could be answering instead. That happens to a
        replacement: it was sent the turn whose answer the failure cut short, then the user
        spoke over what was left of that answer."""
        given = max((a.done for s, a in self.accounts.items() if s != sid), default=0)
        if not since < begun <= given:
            return False
        return not any(
            s.start >= given and s.end is not None and heard_to + 1 - s.end >= self.min_pause_frames
            for s in self.stretches
        )

    def answer_ended(self, sid: str) -> None:
        """The answer in progress finished, or the user cut it: either way it was given."""
        acct = self.accounts.get(sid)
        if acct is not None and acct.answering is not None:
            acct.done = max(acct.done, acct.answering)
            acct.answering = None

    def _covered(self, since: int, heard_to: int) -> int:
        """Where the speech the service has ended turns on (seen at ``heard_to``) stops."""
        news = [s for s in self.stretches if since <= s.start <= heard_to]
        cut = since
        turn_end: int | None = None  # end of the turn being grouped, None while it goes on
        for s in news:
            if turn_end is not None and s.start - turn_end >= self.pause_frames:
                cut = turn_end  # the turn before this stretch ended with a full pause
            turn_end = s.end
            if turn_end is None:
                break
        if turn_end is not None and heard_to + 1 - turn_end >= self.pause_frames:
            cut = turn_end
        if cut > since or not news:
            return cut
        # The service ended a turn the client's grouping did not: its pause is shorter.
        for s in news:
            if s.end is None or heard_to + 1 - s.end < self.min_pause_frames:
                break
            cut = s.end
        return cut

    # ---- what the next session must hear -----------------------------------------------

    def replay_from(self, sid: str | None, heard_to: int, finished: bool) -> int:
        """First frame a session replacing ``sid`` must hear: before the first stretch
        ``sid`` has not begun (``finished``: not finished) answering, or only the last
        moment's audio when there is none."""
        acct = self.accounts.get(sid or "")
        since = 0 if acct is None else (acct.done if finished else acct.begun)
        pending = [s for s in self.stretches if s.start >= since]
        if pending and self._abandoned(pending, heard_to):
            since, pending = pending[-1].end or since, []
        start = pending[0].start if pending else heard_to + 1
        return max(since, start - self.preroll_frames)

    def ask_again(self, sid: str, heard_to: int) -> bool:
        """``sid``'s answer in progress, to speech it had heard, said nothing before it was
        cut: True when a replacement must hear that speech again, once per question (a
        replacement whose answer is cut unheard too is not replaced again)."""
        acct = self.accounts.get(sid)
        if acct is None or acct.answering is None or acct.answering <= acct.done:
            return False
        first = self.replay_from(sid, heard_to, finished=True)
        if first == self.asked_again:
            return False
        self.asked_again = first
        return True

    def _abandoned(self, pending: list[Stretch], heard_to: int) -> bool:
        """Speech long over that no session transcribed: noise to the service."""
        last = pending[-1].end
        if last is None or heard_to + 1 - last < self.abandon_frames:
            return False
        labelled = {id(e.stretch) for e in self.entries if e.stretch is not None}
        return not any(id(s) in labelled for s in pending)

    def keep_from(self, sid: str | None, heard_to: int) -> int:
        """Frames before this are no longer needed by anyone (the buffer may drop them)."""
        return self.replay_from(sid, heard_to, finished=True)

    # ---- the history -------------------------------------------------------------------

    def user_said(self, sid: str, text: str, heard_to: int) -> None:
        """A USER transcript from ``sid``: placed at the turn it transcribes, the latest one
        of the speech it had heard and no earlier transcript covered."""
        acct = self.accounts.get(sid)
        since = acct.labelled if acct is not None else 0
        spoken = [
            s
            for s in self.stretches
            if s.start >= since and s.end is not None and s.end <= heard_to + 1
        ]
        if not spoken:  # typed, or audio the client never tracked: kept as it is
            self._add(Entry(hist.USER, text, heard_to + 1))
            return
        i = len(spoken) - 1
        while i > 0 and spoken[i].start - (spoken[i - 1].end or 0) < self.pause_frames:
            i -= 1
        first = spoken[i]
        if acct is not None:
            acct.labelled = spoken[-1].end or since
        for e in self.entries:
            if e.stretch is first:  # transcribed again (its audio was replayed)
                e.text = text
                return
        self._add(Entry(hist.USER, text, first.start, first))

    def assistant_said(self, sid: str, text: str) -> Entry:
        """Assistant words the listener heard (a FINAL text, or the heard part of a cut one);
        the entry is returned so that a later cut can shorten it to what was heard."""
        acct = self.accounts.get(sid)
        return self._add(Entry(hist.ASSISTANT, text, acct.answer_at if acct else 0))

    def _add(self, e: Entry) -> Entry:
        self.entries.append(e)
        if len(self.entries) > ENTRY_LIMIT:
            del self.entries[: len(self.entries) - ENTRY_LIMIT]
        return e

    def history(self, first_kept: int) -> list[hist.Message]:
        """The conversation so far, in order; USER turns whose audio is replayed from
        ``first_kept`` are left out for good (the next session hears them again)."""
        self.entries = [
            e for e in self.entries if e.stretch is None or e.stretch.start < first_kept
        ]
        ordered = sorted(self.entries, key=lambda e: e.pos)
        return [hist.Message(e.role, e.text) for e in ordered]

    def awaiting_answer(self) -> bool:
        """Some transcribed speech has no answer begun by any session."""
        begun = max((a.begun for a in self.accounts.values()), default=0)
        return any(e.stretch is not None and e.stretch.start >= begun for e in self.entries)

    def prune(self, keep_from: int) -> None:
        """Forget stretches that ended before ``keep_from`` (history labels keep theirs)."""
        while (
            len(self.stretches) > 1
            and (end := self.stretches[0].end) is not None
            and end < keep_from
        ):
            self.stretches.pop(0)

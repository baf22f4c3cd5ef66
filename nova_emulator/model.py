"""The emulated model: one Nova Sonic session, sans-IO.

Fed input events with the time they arrive (``receive(event, now)``, or the raw JSON with
``receive_bytes``), it schedules output events in time; ``poll(now)`` returns those due,
``next_deadline()`` says when the next is. A rule violation, the session limit, the silence
timeout or a requested fault ends the session with an error that ``poll`` returns last, as
the service sends it on the output stream. Every rule's message names the rule, so a test (or
a person reading a log) knows which one the client broke.

The endpoint (:mod:`nova_emulator.server`) decodes each frame's JSON itself and reports
malformed JSON or base64 in a frame as a ValidationException before the session sees it;
``receive_bytes`` gives the in-process model the same rule.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import heapq
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from nova_emulator import voice
from nova_emulator.faults import Faults
from nova_emulator.listener import Heard, Listener, Recogniser
from nova_emulator.recogniser import default_recogniser
from nova_emulator.voice import Reply, Speaker
from sonic_fsm.core import protocol as pr
from sonic_fsm.core.config import Settings
from sonic_fsm.errors import SessionError

INPUT_RATE = 16000
OUTPUT_RATE = 24000
OUTPUT_RATES = (8000, 16000, 24000)
AUDIO_CHUNK_SECONDS = 0.1
AUTO = "auto"  # choose the recogniser installed here (pocketsphinx or none)
AUDIO_INPUT_FORMAT = {
    "mediaType": "audio/lpcm",
    "sampleRateHertz": INPUT_RATE,
    "sampleSizeBits": 16,
    "channelCount": 1,
}
AUDIO_INPUT_OPTIONAL = {"encoding": "base64", "audioType": "SPEECH"}


@dataclass(order=True)
class _Due:
    at: float
    order: int
    item: Any = field(compare=False)
    answer: int = field(compare=False, default=0)


END = object()  # the output stream ends


class EmulatorSession:
    """One emulated bidirectional stream."""

    def __init__(
        self,
        settings: Settings,
        session_id: str,
        now: float,
        faults: Faults | None = None,
        *,
        speaker: Speaker | None = None,
        recogniser: Recogniser | str | None = AUTO,
    ) -> None:
        self.s = settings
        self.id = session_id
        self.opened_at = now
        self.faults = faults or Faults()
        self.finished = False
        self._failing = False  # an error is due: the session takes no more input
        self._due: list[_Due] = []
        self._order = itertools.count()
        self._phase = "start"  # start -> prompt -> blocks -> closed
        self.prompt_name: str | None = None
        self._open: dict[str, dict[str, Any]] = {}  # contentName -> contentStart body
        self._texts: dict[str, list[str]] = {}
        self.system: str = ""
        self.history: list[tuple[str, str]] = []
        self.audio_started = False
        ears = default_recogniser() if recogniser == AUTO else recogniser
        assert not isinstance(ears, str), "recogniser: a callable, None or 'auto'"
        self.ears = ears
        self.endpointing = pr.DEFAULT_ENDPOINTING
        self.listener = Listener(self.turn_pause_seconds())
        # An adapter that runs recognition elsewhere (a thread in real time) sets this, takes
        # take_recognition_requests() after each receive and calls recognised() with words.
        self.defer_recognition = False
        self.recognition_requests: list[tuple[int, bytes]] = []
        self._recognising: dict[int, list[Any]] = {}
        self._tokens = itertools.count(1)
        self._hearing: list[list[Any]] = []  # utterances in order, some awaiting their words
        self.speaker = speaker  # None: espeak-ng when installed, else the voice-like signal
        self.output_rate = OUTPUT_RATE
        self.tools: set[str] = set()  # tool names the promptStart declared
        self._tool_ids = itertools.count(1)
        # toolUseId -> (tool name, the question it answers), until its result
        self._tool_waits: dict[str, tuple[str, str]] = {}
        self._deferred: list[tuple[str, list[tuple[str, str]]]] = []  # asked during a tool wait
        self.conversation: list[tuple[str, str]] = []  # (role, text): history, heard, answered
        self._received_samples = 0
        self._completion = f"completion-{session_id}"
        self._completion_started = False
        self._content_ids = itertools.count(1)
        self._answers = 0
        self._generating: int | None = None  # answer number being generated
        self._busy_until = now
        self._play_until = float("-inf")  # when the client will have played what we sent
        self._last_speech = now
        self.heard: list[Heard] = []
        self._open_audio_out: set[str] = set()
        self.answered: list[str] = []
        self._schedule(now + settings.session_limit_seconds, _Limit("session limit"))
        if self.faults.die_at_seconds is not None:
            self._schedule(now + self.faults.die_at_seconds, _Fail("stream died"))

    # ---- input ---------------------------------------------------------------------------

    def receive_bytes(self, data: bytes | str, now: float) -> None:
        """Take one input event as its JSON text; malformed JSON is a ValidationException."""
        if self.finished or self._failing:
            return
        try:
            event = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            self._fail_now(now, SessionError("ValidationException", f"malformed JSON: {e}"))
            return
        if not isinstance(event, dict):
            self._fail_now(
                now, SessionError("ValidationException", "malformed JSON: not an object")
            )
            return
        self.receive(event, now)

    def receive(self, event: dict[str, Any], now: float) -> None:
        """Take one input event; a violation ends the session with ValidationException."""
        if self.finished or self._failing:
            return
        try:
            self._receive(event, now)
        except _Violation as v:
            self._fail_now(now, SessionError("ValidationException", str(v)))

    def close_input(self, now: float) -> None:
        """The client closed its input stream: end the output stream once all is sent."""
        if not self.finished:
            self._phase = "closed"
            self._drop_pending_answers()
            self._schedule(max(now, self._busy_until), END)

    def _receive(self, event: dict[str, Any], now: float) -> None:
        try:
            name = pr.event_name(event)
        except pr.ProtocolError as e:
            raise _Violation(f"malformed event: {e}") from None
        body = event["event"][name]
        if self._phase == "closed":
            raise _Violation(f"{name} after sessionEnd")
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            raise _Violation(f"unknown event {name}")
        handler(body, now)

    def _on_sessionStart(self, body: dict[str, Any], now: float) -> None:
        if self._phase != "start":
            raise _Violation("sessionStart must be the first event, and only once")
        turn = body.get("turnDetectionConfiguration", {})
        if not isinstance(turn, dict):
            raise _Violation(f"turnDetectionConfiguration must be an object (got {turn!r})")
        level = turn.get("endpointingSensitivity", pr.DEFAULT_ENDPOINTING)
        if level not in pr.ENDPOINTING_PAUSE_SECONDS:
            raise _Violation(
                "turnDetectionConfiguration: endpointingSensitivity must be HIGH, MEDIUM or LOW "
                f"(got {level!r})"
            )
        self.endpointing = level
        self.listener.end_after(self.turn_pause_seconds())
        self._phase = "prompt"

    def turn_pause_seconds(self) -> float:
        """The pause that ends a turn: the session's endpointing, or the tests' override."""
        override = self.s.emulator.end_of_speech_ms
        return override / 1000 if override > 0 else pr.ENDPOINTING_PAUSE_SECONDS[self.endpointing]

    def _on_promptStart(self, body: dict[str, Any], now: float) -> None:
        if self._phase != "prompt":
            raise _Violation("promptStart must follow sessionStart")
        self.prompt_name = self._require(body, "promptName", "promptStart")
        audio = body.get("audioOutputConfiguration") or {}
        rate = audio.get("sampleRateHertz", OUTPUT_RATE)
        if rate not in OUTPUT_RATES:
            raise _Violation(
                f"audioOutputConfiguration: sampleRateHertz must be 8000, 16000 or 24000 "
                f"(got {rate!r})"
            )
        self.output_rate = int(rate)
        tools = (body.get("toolConfiguration") or {}).get("tools") or []
        for tool in tools:
            name = (tool.get("toolSpec") or {}).get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str) or not name:
                raise _Violation("toolConfiguration: every tool needs toolSpec.name")
            self.tools.add(name)
        self._phase = "blocks"

    def _on_contentStart(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "contentStart")
        name = self._require(body, "contentName", "contentStart")
        if name in self._open:
            raise _Violation(f"contentStart: content {name} is already open")
        kind, role = body.get("type"), body.get("role")
        if kind == "TEXT" and role in ("USER", "ASSISTANT"):
            if self.audio_started:
                raise _Violation("history must be sent before the audio content starts")
            if body.get("interactive", False):
                raise _Violation("history text must be sent with interactive: false")
            if not self.history and role != "USER":
                raise _Violation("the first history message must be USER")
        elif kind == "AUDIO":
            self._check_audio_format(body.get("audioInputConfiguration"))
            if self.audio_started:
                raise _Violation("only one audio content per session here")
            self.audio_started = True
            self._answer_trailing_history(now)
        elif kind == "TOOL":
            cfg = body.get("toolResultInputConfiguration") or {}
            use_id = cfg.get("toolUseId")
            if use_id not in self._tool_waits:
                raise _Violation(f"tool result: unknown toolUseId {use_id!r}")
        elif kind == "TEXT" and role != "SYSTEM":
            raise _Violation(
                f"contentStart: TEXT role must be SYSTEM, USER or ASSISTANT ({role!r})"
            )
        elif kind != "TEXT":
            raise _Violation(f"contentStart: unknown type {kind!r}")
        self._open[name] = body
        self._texts[name] = []

    def _on_textInput(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "textInput")
        name = self._require(body, "contentName", "textInput")
        start = self._open.get(name)
        if start is None or start.get("type") != "TEXT":
            raise _Violation(f"textInput: no open TEXT content {name}")
        content = str(body.get("content", ""))
        limit = self.s.history.max_text_input_bytes
        if len(content.encode()) > limit:
            raise _Violation(f"textInput: content over {limit} bytes")
        self._texts[name].append(content)

    def _check_audio_format(self, cfg: Any) -> None:
        if not isinstance(cfg, dict):
            raise _Violation("audioInputConfiguration: missing")
        for key, want in AUDIO_INPUT_FORMAT.items():
            if cfg.get(key) != want:
                raise _Violation(
                    f"audioInputConfiguration: {key} must be {want!r} (got {cfg.get(key)!r})"
                )
        for key, want in AUDIO_INPUT_OPTIONAL.items():
            if key in cfg and cfg[key] != want:
                raise _Violation(
                    f"audioInputConfiguration: {key} must be {want!r} (got {cfg[key]!r})"
                )

    def _on_toolResult(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "toolResult")
        name = self._require(body, "contentName", "toolResult")
        start = self._open.get(name)
        if start is None or start.get("type") != "TOOL":
            raise _Violation(f"toolResult: no open TOOL content {name}")
        self._texts[name].append(str(body.get("content", "")))

    def _on_audioInput(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "audioInput")
        name = self._require(body, "contentName", "audioInput")
        start = self._open.get(name)
        if start is None or start.get("type") != "AUDIO":
            raise _Violation(f"audioInput: no open AUDIO content {name}")
        try:
            pcm = base64.b64decode(str(body.get("content", "")), validate=True)
        except binascii.Error:
            raise _Violation("audioInput: content is not valid base64") from None
        self._received_samples += len(pcm) // 2
        for h in self.listener.feed(pcm):
            self._on_heard(h, now)
        if self.listener.in_speech:
            self._last_speech = now  # the silence timeout counts from the last user speech

    def _on_contentEnd(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "contentEnd")
        name = self._require(body, "contentName", "contentEnd")
        start = self._open.pop(name, None)
        if start is None:
            raise _Violation(f"contentEnd: no open content {name}")
        text = "".join(self._texts.pop(name, []))
        role = start.get("role")
        if start.get("type") == "TEXT":
            if role == "SYSTEM":
                self.system = text
            elif role in ("USER", "ASSISTANT"):
                self._add_history(role, text)
        elif start.get("type") == "TOOL":
            use_id = (start.get("toolResultInputConfiguration") or {}).get("toolUseId")
            _, question = self._tool_waits.pop(str(use_id), ("", ""))
            self._start_answer(self._say(voice.tool_answer(text, question)), now)
            deferred, self._deferred = self._deferred, []
            for transcript, before in deferred:
                self._respond(transcript, before, now)

    def _add_history(self, role: str, text: str) -> None:
        self.history.append((role, text))
        self.conversation.append((role, text))
        h = self.s.history
        if len(self.history) > h.max_messages:
            raise _Violation(f"history over {h.max_messages} messages")
        if sum(len(t.encode()) for _, t in self.history) > h.max_total_bytes:
            raise _Violation(f"history over {h.max_total_bytes} bytes")

    def _on_promptEnd(self, body: dict[str, Any], now: float) -> None:
        self._check_prompt(body, "promptEnd")
        self._drop_pending_answers()
        self._phase = "ending"
        self._schedule(max(now, self._busy_until), self._ev("completionEnd", stopReason="END_TURN"))

    def _on_sessionEnd(self, body: dict[str, Any], now: float) -> None:
        self._phase = "closed"

    def _check_prompt(self, body: dict[str, Any], name: str) -> None:
        if self._phase not in ("blocks", "ending"):
            raise _Violation(f"{name} before promptStart")
        if body.get("promptName") != self.prompt_name:
            raise _Violation(f"{name}: unknown promptName {body.get('promptName')!r}")

    @staticmethod
    def _require(body: dict[str, Any], key: str, name: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise _Violation(f"{name}: missing {key}")
        return value

    # ---- listening and answering ---------------------------------------------------------

    def _audio_time(self, sample: int, now: float) -> float:
        """When ``sample`` was spoken: the newest sample received is 'now'."""
        return now - (self._received_samples - sample) / INPUT_RATE

    def _on_heard(self, h: Heard, now: float) -> None:
        if h.kind == "onset":
            self._last_speech = now
            spoken_at = self._audio_time(h.start, now)
            if self._generating is not None or spoken_at < self._play_until - 0.05:
                self._interrupt(now)
            return
        self._last_speech = now
        entry: list[Any] = [h, None]  # [heard, its words once known]
        if not h.audio or self.ears is None:  # the test signal, or no recogniser of words
            entry[1] = h.transcript
        elif self.defer_recognition:
            token = next(self._tokens)
            self._recognising[token] = entry
            self.recognition_requests.append((token, h.audio))
        else:
            entry[1] = self.ears(h.audio) or h.transcript
        self._hearing.append(entry)
        self._hear_in_order(now)

    def recognised(self, token: int, text: str | None, now: float) -> None:
        """The words of a deferred recognition (``None``: none found); answered in order."""
        entry = self._recognising.pop(token, None)
        if entry is None or self.finished or self._failing:
            return
        entry[1] = text or entry[0].transcript
        self._hear_in_order(now)

    def take_recognition_requests(self) -> list[tuple[int, bytes]]:
        """Utterances to recognise off the caller's thread; give the words to ``recognised``."""
        out, self.recognition_requests = self.recognition_requests, []
        return out

    def _hear_in_order(self, now: float) -> None:
        while self._hearing and self._hearing[0][1] is not None:
            h, words = self._hearing.pop(0)
            self._transcribed(dataclasses.replace(h, transcript=words, audio=b""), now)

    def _transcribed(self, h: Heard, now: float) -> None:
        self.heard.append(h)
        transcript = h.transcript
        cid = self._content_id()
        final = json.dumps({"generationStage": "FINAL"})
        for item in (
            self._ev(
                "contentStart", contentId=cid, type="TEXT", role="USER", additionalModelFields=final
            ),
            self._ev("textOutput", contentId=cid, role="USER", content=transcript),
            self._ev("contentEnd", contentId=cid, type="TEXT", stopReason="END_TURN"),
        ):
            self._schedule(now, item)
        before = list(self.conversation)
        self.conversation.append(("USER", transcript))
        self._respond(transcript, before, now)

    def _answer_trailing_history(self, now: float) -> None:
        """A history that ends with the user's turn is answered, as the service does."""
        if self.history and self.history[-1][0] == "USER":
            self._respond(self.history[-1][1], list(self.conversation[:-1]), now)

    def _respond(self, transcript: str, before: list[tuple[str, str]], now: float) -> None:
        """Answer, or first ask the client's tool when the question needs one."""
        if self._tool_waits:
            self._deferred.append((transcript, before))  # answered after the tool's answer
            return
        tool = voice.wants_tool(transcript)
        if tool is not None and tool in self.tools:
            self._use_tool(tool, transcript, now)
            return
        self._start_answer(self._say(voice.reply_text(transcript, before)), now)

    def _say(self, text: str) -> Reply:
        return voice.say(text, self.speaker, self.output_rate)

    def _use_tool(self, tool: str, question: str, now: float) -> None:
        """toolUse in a TOOL block, then nothing until the client's toolResult arrives."""
        if self._phase != "blocks":
            return
        use_id = f"{self.id}-tool-{next(self._tool_ids)}"
        self._tool_waits[use_id] = (tool, question)
        cid = self._content_id()
        t = max(now, self._busy_until) + self.s.emulator.first_audio_delay_ms / 1000
        use = (
            self._ev(
                "contentStart",
                contentId=cid,
                type="TOOL",
                role="TOOL",
                toolUseOutputConfiguration={"mediaType": "application/json"},
            ),
            self._ev(
                "toolUse",
                contentId=cid,
                toolName=tool,
                toolUseId=use_id,
                content=voice.tool_input(question),
            ),
            self._ev("contentEnd", contentId=cid, type="TOOL", stopReason="TOOL_USE"),
        )
        for item in use * 2 if self.faults.repeat_tool_use else use:
            self._schedule(t, item)
        self._busy_until = t

    def _start_answer(self, reply: Reply, now: float) -> None:
        if self._phase != "blocks":
            return
        self._answers += 1
        n = self._answers
        self.answered.append(reply.text)
        self.conversation.append(("ASSISTANT", reply.text))
        speed = self.faults.audio_speed or self.s.emulator.speed
        t = max(now, self._busy_until) + self.s.emulator.first_audio_delay_ms / 1000
        spec = json.dumps({"generationStage": "SPECULATIVE"})
        final = json.dumps({"generationStage": "FINAL"})
        tid, aid, fid = self._content_id(), self._content_id(), self._content_id()
        items: list[tuple[float, Any]] = [
            (
                t,
                self._ev(
                    "contentStart",
                    contentId=tid,
                    type="TEXT",
                    role="ASSISTANT",
                    additionalModelFields=spec,
                ),
            ),
            (t, self._ev("textOutput", contentId=tid, role="ASSISTANT", content=reply.text)),
            (t, self._ev("contentEnd", contentId=tid, type="TEXT", stopReason="PARTIAL_TURN")),
            (
                t,
                self._ev(
                    "contentStart",
                    contentId=aid,
                    type="AUDIO",
                    role="ASSISTANT",
                    audioOutputConfiguration={
                        "mediaType": "audio/lpcm",
                        "sampleRateHertz": self.output_rate,
                        "sampleSizeBits": 16,
                        "channelCount": 1,
                        "encoding": "base64",
                        "audioType": "SPEECH",
                    },
                ),
            ),
        ]
        step = int(AUDIO_CHUNK_SECONDS * self.output_rate) * 2
        chunks = [reply.pcm[i : i + step] for i in range(0, len(reply.pcm), step)]
        for i, chunk in enumerate(chunks):
            at = t + i * AUDIO_CHUNK_SECONDS / speed
            if self.faults.die_mid_answer == n and i == len(chunks) // 2:
                items.append((at, _Fail("stream died mid-answer")))
            if self.faults.malformed_at_answer == n and i == len(chunks) // 2:
                items.append((at, {"event": {"audioOutput": {"contentId": aid, "content": "%%%"}}}))
            items.append((at, _Audio(aid, chunk)))
        t_end = t + len(chunks) * AUDIO_CHUNK_SECONDS / speed
        items += [
            (t_end, self._ev("contentEnd", contentId=aid, type="AUDIO", stopReason="END_TURN")),
            (
                t_end,
                self._ev(
                    "contentStart",
                    contentId=fid,
                    type="TEXT",
                    role="ASSISTANT",
                    additionalModelFields=final,
                ),
            ),
            (t_end, self._ev("textOutput", contentId=fid, role="ASSISTANT", content=reply.text)),
            (t_end, self._ev("contentEnd", contentId=fid, type="TEXT", stopReason="END_TURN")),
            (t_end, self._usage()),
            (t_end, _AnswerDone(n)),
        ]
        for at, item in items:
            self._schedule(at, item, answer=n)
        self._busy_until = t_end

    def _interrupt(self, now: float) -> None:
        """Barge-in: stop generating and tell the client to flush its playback."""
        n = self._generating
        if n is not None:
            self._due = [d for d in self._due if d.answer != n]
            heapq.heapify(self._due)
        self._busy_until = now
        self._play_until = now
        self._generating = None
        cid = self._content_id()
        spec = json.dumps({"generationStage": "SPECULATIVE"})
        for item in (
            self._ev(
                "contentStart",
                contentId=cid,
                type="TEXT",
                role="ASSISTANT",
                additionalModelFields=spec,
            ),
            self._ev("textOutput", contentId=cid, role="ASSISTANT", content=pr.INTERRUPTED_TEXT),
            self._ev("contentEnd", contentId=cid, type="TEXT", stopReason="INTERRUPTED"),
        ):
            self._schedule(now, item)
        for cid_open in list(self._open_audio_out):
            self._schedule(
                now,
                self._ev("contentEnd", contentId=cid_open, type="AUDIO", stopReason="INTERRUPTED"),
            )
        self._open_audio_out.clear()

    def _drop_pending_answers(self) -> None:
        self._due = [d for d in self._due if d.answer == 0 or d.answer == self._generating]
        heapq.heapify(self._due)

    # ---- output --------------------------------------------------------------------------

    def poll(self, now: float) -> list[Any]:
        """Output due by ``now``: event dicts, then a :class:`SessionError` or :data:`END` last."""
        out: list[Any] = []
        if (
            not self.finished
            and not self._failing
            and self.audio_started
            and now - self._last_speech >= self.s.emulator.silence_timeout_seconds
        ):
            self._fail_now(
                now, SessionError("ModelTimeoutException", "no user speech for too long")
            )
        while self._due and self._due[0].at <= now and not self.finished:
            d = heapq.heappop(self._due)
            item = d.item
            if d.answer and self._generating != d.answer:
                self._generating = d.answer
            if isinstance(item, _Audio):
                self._play_until = max(self._play_until, d.at) + len(item.pcm) / (
                    2 * self.output_rate
                )
                item = self._ev(
                    "audioOutput",
                    contentId=item.content_id,
                    content=base64.b64encode(item.pcm).decode(),
                )
            elif isinstance(item, _AnswerDone):
                self._generating = None
                continue
            elif isinstance(item, _Limit):
                self.finished = True
                out.append(
                    SessionError(
                        "ModelTimeoutException",
                        f"session reached its limit of {self.s.session_limit_seconds:.0f} s",
                    )
                )
                break
            elif isinstance(item, _Fail):
                self.finished = True
                out.append(SessionError("ModelStreamErrorException", item.why))
                break
            elif item is END:
                self.finished = True
                out.append(END)
                break
            elif isinstance(item, SessionError):
                self.finished = True
                out.append(item)
                break
            self._track_audio_content(item)
            if not self._completion_started:
                self._completion_started = True
                out.append(self._ev("completionStart"))
            out.append(item)
        return out

    def _track_audio_content(self, item: dict[str, Any]) -> None:
        body = item.get("event", {})
        start = body.get("contentStart")
        if start and start.get("type") == "AUDIO":
            self._open_audio_out = self._open_audio_out | {start["contentId"]}
        end = body.get("contentEnd")
        if end and end.get("type") == "AUDIO":
            self._open_audio_out = self._open_audio_out - {end["contentId"]}

    def next_deadline(self) -> float | None:
        if self.finished:
            return None
        times = (
            [self._last_speech + self.s.emulator.silence_timeout_seconds]
            if self.audio_started
            else []
        )
        if self._due:
            times.append(self._due[0].at)
        return min(times) if times else None

    # ---- helpers -------------------------------------------------------------------------

    def _fail_now(self, now: float, error: SessionError) -> None:
        """End with ``error`` at once: nothing more is sent, and later input is ignored."""
        self._failing = True
        self._due = []
        self._schedule(now, error)

    def _schedule(self, at: float, item: Any, answer: int = 0) -> None:
        heapq.heappush(self._due, _Due(at, next(self._order), item, answer))

    def _content_id(self) -> str:
        return f"{self.id}-c{next(self._content_ids)}"

    def _ev(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {
            "sessionId": self.id,
            "promptName": self.prompt_name or "",
            "completionId": self._completion,
        }
        body.update(fields)
        return {"event": {name: body}}

    def _usage(self) -> dict[str, Any]:
        n = self._answers
        return self._ev(
            "usageEvent",
            totalInputTokens=100 * n,
            totalOutputTokens=80 * n,
            totalTokens=180 * n,
            details={
                "delta": {
                    "input": {"speechTokens": 100, "textTokens": 0},
                    "output": {"speechTokens": 60, "textTokens": 20},
                }
            },
        )


class _Violation(Exception):
    pass


@dataclass(frozen=True)
class _Audio:
    content_id: str
    pcm: bytes


@dataclass(frozen=True)
class _AnswerDone:
    n: int


@dataclass(frozen=True)
class _Limit:
    why: str


@dataclass(frozen=True)
class _Fail:
    why: str

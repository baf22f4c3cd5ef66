"""Session recordings: what every session sent and received, kept on disk as it happens.

Turned on by ``enable_session_recording``. One folder per conversation inside
``recording_output_dir``; in it, for session N (numbered in the order sessions opened):

- ``session_N_events.jsonl``: one JSON object per line, written the moment it happens
  (one ``write`` each, so a crash or a kill loses nothing already handed to the kernel):
  the opening with its history, every event sent and received with its time, audio
  payloads replaced by their sizes, and the transitions the session took part in;
- ``session_N_recording.json``: the summary, written (atomically) when the session closes:
  the history it was started with, metadata, counts of events by name and bytes of audio;
- ``session_N_user.wav`` (16 kHz) and ``session_N_assistant.wav`` (24 kHz): the audio sent
  and received, 16-bit mono; the header is kept current after each write, so the files are
  valid WAV even when the process is killed.

Files are created 0600 and folders 0700. Nothing secret is written: values under keys that
look like credentials or authorization are replaced, and so is any occurrence of the secret
strings the recorder is given (the AWS secret key and session token in use).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonic_fsm.audio.wav import WavWriter

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"secret|password|passwd|passphrase|authorization|credential|apikey|accesskey|"
    r"privatekey|sessiontoken|securitytoken|accesstoken|authtoken|refreshtoken|bearer|"
    r"signature|cookie|^token$|^auth$",
)
_SECRET_TEXT = re.compile(
    r"AWS4-HMAC-SHA256\s+\S.*|Bearer\s+\S+|(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"
)
_AUDIO_EVENTS = {"audioInput", "audioOutput"}


class RecordingError(OSError):
    """The recording folder cannot be made: one line naming the path and the problem."""


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(re.sub(r"[^a-z]", "", key.lower())))


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secret-looking keys' values and every given secret string replaced."""
    secrets = tuple(s for s in secrets if s)
    return _scrub(value, secrets)


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if is_secret_key(str(k)) else _scrub(v, secrets)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        return _SECRET_TEXT.sub(REDACTED, value)
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    return value


def _create(path: Path, flags: int = 0) -> int:
    """A new file, 0600 whatever the umask, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _mkdir_own(path: Path) -> None:
    """Create the conversation's own folder 0700 (whatever the umask). Only a folder made
    here is chmod-ed: the output folder may be shared (a 1777 temporary folder, a 2775
    group folder) and keeps its mode."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return  # made by an earlier recorder of this conversation
    os.chmod(path, 0o700)


@dataclass
class _Session:
    number: int
    session_id: str
    opened_at: float
    opened_wall: float
    history: list[dict[str, str]]
    events: int  # fd of the JSON Lines log
    user: WavWriter
    assistant: WavWriter
    sent: Counter[str] = field(default_factory=Counter)
    received: Counter[str] = field(default_factory=Counter)
    transitions: int = 0
    text_blocks: dict[str, dict[str, Any]] = field(default_factory=dict)  # open ones
    history_sent: list[dict[str, str]] = field(default_factory=list)  # as sent on the wire
    last_at: float = 0.0
    closed: bool = False


def _payload(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    inner = event.get("event") if isinstance(event, dict) else None
    if isinstance(inner, dict) and len(inner) == 1:
        name = next(iter(inner))
        body = inner[name]
        if isinstance(body, dict):
            return str(name), body
    return "?", {"raw": event}


class SessionRecorder:
    """An :class:`~sonic_fsm.observer.Observer` that writes a conversation's recordings."""

    def __init__(
        self,
        output_dir: str | Path,
        *,
        secrets: Iterable[str] = (),
        conversation: str | None = None,
        input_rate: int = 16000,
        output_rate: int = 24000,
    ) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = conversation or f"conversation_{stamp}_{os.getpid()}"
        self.folder = Path(output_dir) / name
        try:
            Path(output_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            _mkdir_own(self.folder)
        except OSError as e:
            raise RecordingError(
                f"recording folder {self.folder}: cannot be created ({e.strerror or e})"
            ) from None
        self.secrets = tuple(s for s in secrets if s)
        self.input_rate, self.output_rate = input_rate, output_rate
        self.failed = False  # a write failed: recording stopped, the conversation goes on
        self._sessions: dict[str, _Session] = {}

    @classmethod
    def from_settings(cls, settings: Any, secrets: Iterable[str] = ()) -> SessionRecorder:
        return cls(
            settings.recording_output_dir,
            secrets=secrets,
            input_rate=settings.audio.input_sample_rate,
            output_rate=settings.audio.output_sample_rate,
        )

    def files(self, number: int) -> dict[str, Path]:
        base = self.folder / f"session_{number}"
        return {
            "events": Path(f"{base}_events.jsonl"),
            "summary": Path(f"{base}_recording.json"),
            "user_audio": Path(f"{base}_user.wav"),
            "assistant_audio": Path(f"{base}_assistant.wav"),
        }

    # ---- the Observer protocol ------------------------------------------------------------

    def session_opened(self, session_id: str, now: float, history: list[dict[str, str]]) -> None:
        if self.failed:
            return
        with self._guard():
            s = self._session(session_id, now, history)
            self._log(s, {"t": now, "kind": "opened", "session_id": session_id, "history": history})

    def event_sent(self, session_id: str, now: float, event: dict[str, Any]) -> None:
        self._event(session_id, now, event, "sent")

    def event_received(self, session_id: str, now: float, event: dict[str, Any]) -> None:
        self._event(session_id, now, event, "received")

    def _event(self, session_id: str, now: float, event: dict[str, Any], direction: str) -> None:
        """One event each way: counted, its audio into the session's WAV, a line in its log."""
        if self.failed:
            return
        with self._guard():
            s = self._session(session_id, now)
            if s.closed:
                return
            name, body = _payload(event)
            sent = direction == "sent"
            (s.sent if sent else s.received)[name] += 1
            if sent:
                self._collect_history(s, name, body)
            pcm = self._audio(name, body)
            if pcm is not None:
                (s.user if sent else s.assistant).write(pcm)
            self._log(s, self._line(now, direction, name, body, pcm))

    def transition(
        self, now: float, trigger: str, source: str, dest: str, sessions: list[str]
    ) -> None:
        if self.failed:
            return
        with self._guard():
            targets = [self._sessions[sid] for sid in sessions if sid in self._sessions]
            if not sessions:  # a move of the whole conversation (stop): every open session
                targets = [s for s in self._sessions.values() if not s.closed]
            line = {
                "t": now,
                "kind": "transition",
                "trigger": trigger,
                "source": source,
                "dest": dest,
                "sessions": sessions,
            }
            for s in targets:
                if not s.closed:
                    s.transitions += 1
                    self._log(s, line)

    def session_closed(self, session_id: str, now: float, summary: dict[str, Any]) -> None:
        if self.failed:
            return
        with self._guard():
            s = self._sessions.get(session_id)
            if s is not None and not s.closed:
                self._finish(s, now, summary)

    def close(self) -> None:
        """Finish every session still open (its summary says so)."""
        if self.failed:
            return
        with self._guard():
            for s in self._sessions.values():
                if not s.closed:
                    self._finish(s, s.last_at, {"incomplete": True})

    # ---- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Any:
        """A failed write stops the recording with one log line; it never stops the talk."""
        try:
            yield
        except OSError as e:
            if not self.failed:
                log.warning("session recording stopped: %s (%s)", e.strerror or e, self.folder)
            self.failed = True

    def _session(
        self, session_id: str, now: float, history: list[dict[str, str]] | None = None
    ) -> _Session:
        s = self._sessions.get(session_id)
        if s is None:
            number = len(self._sessions) + 1
            paths = self.files(number)
            s = _Session(
                number=number,
                session_id=session_id,
                opened_at=now,
                opened_wall=time.time(),
                history=history if history is not None else [],
                events=_create(paths["events"], os.O_APPEND),
                user=WavWriter(paths["user_audio"], self.input_rate, private=True),
                assistant=WavWriter(paths["assistant_audio"], self.output_rate, private=True),
            )
            self._sessions[session_id] = s
        elif history is not None:
            s.history = history
        return s

    def _collect_history(self, s: _Session, name: str, body: dict[str, Any]) -> None:
        """Non-interactive text blocks sent: the history (and system prompt) as sent."""
        content_name = str(body.get("contentName", ""))
        if name == "contentStart" and body.get("type") == "TEXT" and not body.get("interactive"):
            s.text_blocks[content_name] = {"role": str(body.get("role", "")), "parts": []}
        elif name == "textInput" and content_name in s.text_blocks:
            s.text_blocks[content_name]["parts"].append(str(body.get("content", "")))
        elif name == "contentEnd" and content_name in s.text_blocks:
            block = s.text_blocks.pop(content_name)
            s.history_sent.append({"role": block["role"], "content": "".join(block["parts"])})

    def _audio(self, name: str, body: dict[str, Any]) -> bytes | None:
        if name not in _AUDIO_EVENTS:
            return None
        content = body.get("content")
        if isinstance(content, bytes | bytearray):
            return bytes(content)
        try:
            return base64.b64decode(content or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            return b""

    def _line(
        self, now: float, kind: str, name: str, body: dict[str, Any], pcm: bytes | None
    ) -> dict[str, Any]:
        if pcm is not None:
            body = {k: v for k, v in body.items() if k != "content"}
            body["audio_bytes"] = len(pcm)
        return {"t": now, "kind": kind, "event": name, "body": body}

    def _log(self, s: _Session, line: dict[str, Any]) -> None:
        text = json.dumps(scrub(line, self.secrets), default=str, separators=(",", ":"))
        os.write(s.events, (text + "\n").encode())
        s.last_at = max(s.last_at, float(line["t"]))

    def _finish(self, s: _Session, now: float, summary: dict[str, Any]) -> None:
        s.closed = True
        self._log(s, {"t": now, "kind": "closed", "summary": summary})
        os.close(s.events)
        s.user.close()
        s.assistant.close()
        paths = self.files(s.number)
        record = {
            "session": s.number,
            "session_id": s.session_id,
            "history": s.history or [m for m in s.history_sent if m["role"] != "SYSTEM"],
            "metadata": {
                **summary,
                "system_prompt": next(
                    (m["content"] for m in s.history_sent if m["role"] == "SYSTEM"), None
                ),
                "conversation": self.folder.name,
                "opened_at": s.opened_at,
                "closed_at": now,
                "duration_seconds": now - s.opened_at,
                "opened_wall_time": s.opened_wall,
                "closed_wall_time": time.time(),
                "input_sample_rate": self.input_rate,
                "output_sample_rate": self.output_rate,
            },
            "counts": {
                "events_sent": dict(s.sent),
                "events_received": dict(s.received),
                "transitions": s.transitions,
                "user_audio_bytes": s.user.data_bytes,
                "assistant_audio_bytes": s.assistant.data_bytes,
                "user_audio_seconds": s.user.data_bytes / (2 * self.input_rate),
                "assistant_audio_seconds": s.assistant.data_bytes / (2 * self.output_rate),
            },
            "files": {k: p.name for k, p in paths.items()},
        }
        text = json.dumps(scrub(record, self.secrets), indent=2, default=str)
        tmp = paths["summary"].with_suffix(".json.tmp")
        fd = _create(tmp)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, paths["summary"])

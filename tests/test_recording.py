"""Session recordings: layout, valid files, 0600, no secrets, and nothing lost to a kill."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sonic_fsm.core import protocol
from sonic_fsm.recording import REDACTED, RecordingError, SessionRecorder, scrub

FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKESECRET1"
FAKE_TOKEN = "IQoJb3JpZ2luX2VjEFAKESESSIONTOKEN0123456789abcdef"
FAKE_KEY_ID = "AKIAFAKEKEYID0000001"
ROOT = Path(__file__).resolve().parents[1]


def pcm(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-2000, 2000, n, dtype=np.int16).astype("<i2").tobytes()


def received(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"event": {name: body}}


def play_two_sessions(rec: SessionRecorder) -> dict[str, Any]:
    """Two sessions with a hand-off between them; returns what was sent, for comparison."""
    history = [{"role": "USER", "content": f"my key is {FAKE_SECRET}, remember it"}]
    user = {"s1": [pcm(1024, i) for i in range(5)], "s2": [pcm(1024, 10 + i) for i in range(3)]}
    answer = {"s1": [pcm(960, 20 + i) for i in range(4)], "s2": [pcm(960, 30)]}
    rec.session_opened("s1", 0.0, [])
    rec.event_sent(
        "s1",
        0.0,
        {
            "event": {
                "sessionStart": {
                    "inferenceConfiguration": {"maxTokens": 1024},
                    "headers": {"Authorization": f"AWS4-HMAC-SHA256 Credential={FAKE_KEY_ID}/x"},
                    "aws_secret_access_key": FAKE_SECRET,
                    "X-Amz-Security-Token": FAKE_TOKEN,
                    "note": f"signed by {FAKE_KEY_ID}",
                }
            }
        },
    )
    rec.event_sent("s1", 0.01, protocol.prompt_start("p1", "matthew"))
    for i, chunk in enumerate(user["s1"]):
        rec.event_sent("s1", 0.1 + 0.064 * i, protocol.audio_input("p1", "a1", chunk))
    rec.event_received("s1", 0.5, received("textOutput", {"contentId": "c", "content": "hi"}))
    for i, chunk in enumerate(answer["s1"]):
        rec.event_received(
            "s1", 0.6 + 0.01 * i, received("audioOutput", {"contentId": "c", "content": b64(chunk)})
        )
    rec.event_received(
        "s1", 0.7, received("usageEvent", {"totalInputTokens": 12, "totalOutputTokens": 34})
    )
    rec.transition(1.0, "threshold", "NORMAL", "MONITORING", ["s1"])
    rec.session_opened("s2", 1.1, history)
    rec.transition(1.2, "next_ready", "BUFFERING", "HANDOFF", ["s1", "s2"])
    for i, chunk in enumerate(user["s2"]):
        rec.event_sent("s2", 1.3 + 0.064 * i, protocol.audio_input("p2", "a2", chunk))
    rec.event_received(
        "s2", 1.5, received("audioOutput", {"contentId": "d", "content": b64(answer["s2"][0])})
    )
    rec.session_closed("s1", 2.0, {"reason": "promoted", "token": FAKE_TOKEN})
    rec.transition(2.1, "stop", "PROMOTED", "STOPPED", [])
    rec.close()
    return {"user": user, "answer": answer, "history": history}


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wav_frames(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    rec = SessionRecorder(tmp_path / "recs", secrets=[FAKE_SECRET, FAKE_TOKEN], conversation="conv")
    sent = play_two_sessions(rec)
    return rec.folder, sent


def test_layout_one_set_of_files_per_session(recorded: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = recorded
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        f"session_{n}_{kind}"
        for n in (1, 2)
        for kind in ("assistant.wav", "events.jsonl", "recording.json", "user.wav")
    ]


def test_files_are_0600_and_folders_0700(recorded: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = recorded
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    for p in folder.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name


def test_no_secret_anywhere(recorded: tuple[Path, dict[str, Any]]) -> None:
    folder, _ = recorded
    for p in folder.iterdir():
        data = p.read_bytes()
        for secret in (FAKE_SECRET, FAKE_TOKEN, FAKE_KEY_ID, "AWS4-HMAC-SHA256"):
            assert secret.encode() not in data, (p.name, secret)
    log = (folder / "session_1_events.jsonl").read_text()
    assert REDACTED in log


def test_event_log_has_events_transitions_and_audio_sizes(
    recorded: tuple[Path, dict[str, Any]],
) -> None:
    folder, sent = recorded
    lines = read_jsonl(folder / "session_1_events.jsonl")
    kinds = [(ln["kind"], ln.get("event") or ln.get("trigger")) for ln in lines]
    assert kinds[0] == ("opened", None)
    assert ("sent", "audioInput") in kinds and ("received", "audioOutput") in kinds
    assert ("transition", "threshold") in kinds and ("transition", "next_ready") in kinds
    assert ("transition", "stop") not in kinds  # s1 was closed before the stop
    assert kinds[-1] == ("closed", None)
    times = [ln["t"] for ln in lines]
    assert times == sorted(times)
    audio = [ln for ln in lines if ln.get("event") in ("audioInput", "audioOutput")]
    assert all("content" not in ln["body"] for ln in audio)
    assert [ln["body"]["audio_bytes"] for ln in audio if ln["event"] == "audioInput"] == [
        len(c) for c in sent["user"]["s1"]
    ]
    usage = next(ln for ln in lines if ln.get("event") == "usageEvent")
    assert usage["body"] == {"totalInputTokens": 12, "totalOutputTokens": 34}  # not "secrets"
    s2 = read_jsonl(folder / "session_2_events.jsonl")
    assert [ln["trigger"] for ln in s2 if ln["kind"] == "transition"] == ["next_ready", "stop"]


def test_summary_and_wavs(recorded: tuple[Path, dict[str, Any]]) -> None:
    folder, sent = recorded
    one = json.loads((folder / "session_1_recording.json").read_text())
    two = json.loads((folder / "session_2_recording.json").read_text())
    assert one["session_id"] == "s1" and one["metadata"]["reason"] == "promoted"
    assert one["metadata"]["token"] == REDACTED
    assert one["counts"]["events_sent"] == {"sessionStart": 1, "promptStart": 1, "audioInput": 5}
    assert one["counts"]["events_received"]["audioOutput"] == 4
    assert one["counts"]["transitions"] == 2
    assert two["metadata"]["incomplete"] is True  # never closed: finished by close()
    assert two["history"] == [{"role": "USER", "content": f"my key is {REDACTED}, remember it"}]
    for n, sid in ((1, "s1"), (2, "s2")):
        rate, frames = wav_frames(folder / f"session_{n}_user.wav")
        assert rate == 16000 and frames == b"".join(sent["user"][sid])
        rate, frames = wav_frames(folder / f"session_{n}_assistant.wav")
        assert rate == 24000 and frames == b"".join(sent["answer"][sid])


def test_scrub_keeps_ordinary_values() -> None:
    event = {"Authorization": "x", "promptName": "p", "totalOutputTokens": 3, "n": [FAKE_SECRET]}
    assert scrub(event, [FAKE_SECRET]) == {
        "Authorization": REDACTED,
        "promptName": "p",
        "totalOutputTokens": 3,
        "n": [REDACTED],
    }


def test_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RecordingError, match=r"^recording folder .*: cannot be created"):
        SessionRecorder(blocker / "recs")


def test_a_failed_write_stops_recording_not_the_conversation(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path, conversation="c")
    rec.session_opened("s1", 0.0, [])
    os.close(rec._sessions["s1"].events)  # the disk goes away, in effect
    rec.event_sent("s1", 0.1, protocol.session_end())
    rec.close()
    assert rec.failed


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from sonic_fsm.core import protocol
    from sonic_fsm.recording import SessionRecorder
    rec = SessionRecorder(sys.argv[1], conversation="c")
    rec.session_opened("s1", 0.0, [])
    chunk = bytes(range(256)) * 8
    i = 0
    start = time.monotonic()
    while True:
        rec.event_sent("s1", time.monotonic() - start, protocol.audio_input("p", "a", chunk))
        print(i, flush=True)
        i += 1
        time.sleep(0.004)
    """
)


@pytest.mark.slow  # a process, killed
def test_recording_survives_a_kill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    reported = -1
    deadline = time.monotonic() + 30
    while reported < 300 and time.monotonic() < deadline:
        reported = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    folder = tmp_path / "c"
    lines = read_jsonl(folder / "session_1_events.jsonl")  # every line is whole JSON
    audio = [ln for ln in lines if ln.get("event") == "audioInput"]
    # every event the writer reported done is on disk (and perhaps one or two more)
    assert len(audio) >= reported + 1
    assert not (folder / "session_1_recording.json").exists()
    rate, frames = wav_frames(folder / "session_1_user.wav")
    # the header covers every logged chunk (audio is written before its log line)
    assert rate == 16000 and len(audio) * 2048 <= len(frames) <= (len(audio) + 1) * 2048
    assert frames[:2048] == bytes(range(256)) * 8


@pytest.mark.parametrize("mode", [0o1777, 0o2775, 0o755])
def test_an_existing_output_folder_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    """A shared folder (the system's temporary folder, a group folder) is never chmod-ed:
    only the conversation's own folder, created here, is 0700."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    rec = SessionRecorder(shared, conversation="conv")
    play_two_sessions(rec)
    assert stat.S_IMODE(shared.stat().st_mode) == mode
    assert stat.S_IMODE(rec.folder.stat().st_mode) == 0o700
    assert rec.folder.parent == shared

"""The command line at its edges: exit codes that tell the truth, outputs checked before the
conversation starts, bad files as one line, SIGTERM and kill -9 in a real process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nova_emulator.sigv4 import Credentials
from sonic_fsm import cli, testsignal
from sonic_fsm.audio.wav import write_wav
from sonic_fsm.backends.local import LocalBackend
from sonic_fsm.local_endpoint import on_thread
from sonic_fsm.settings import load

SHORT = [
    "--set", "session_limit_seconds=40",
    "--set", "transition_threshold_seconds=15",
    "--set", "hard_deadline_margin_seconds=6",
]  # fmt: skip


@pytest.fixture
def mic(tmp_path: Path) -> Path:
    path = tmp_path / "in.wav"
    assert cli.main(["signal", "--output", str(path), "--count", "2", "--spacing", "6"]) == 0
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sonic-fsm: "), err
    return err


# ---- exit codes ------------------------------------------------------------------------


def test_retries_exhausted_exits_3_and_the_metrics_say_why(
    mic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "m.json"
    args = ["run", "--headless", "--fast", "--mic", str(mic), "--metrics-json", str(metrics)]
    code = cli.main([*args, "--set", "emulator.faults=*:refuse_start", *SHORT])
    assert code == cli.EXIT_RETRIES == 3
    data = json.loads(metrics.read_text())
    assert data["ended_because"] == "retries_exhausted"
    assert data["error"].startswith("ThrottlingException")
    assert "the conversation stopped: ThrottlingException" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        ("*:never_ready", "not ready in time"),
        ("*:die_at_seconds=0.05", "ModelStreamErrorException: stream died"),
        ("*:die_mid_answer=1", "ModelStreamErrorException: stream died mid-answer"),
    ],
)
def test_sessions_that_keep_failing_are_retried_a_bounded_number_of_times_then_exit_3(
    mic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: str, why: str
) -> None:
    """Every session fails (never ready, dies at once, dies in its first answer): at most
    ``backend.max_retries`` replacements, each after a logged backoff, then exit 3 with one
    line naming why."""
    metrics = tmp_path / "m.json"
    args = ["run", "--headless", "--fast", "--mic", str(mic), "--metrics-json", str(metrics)]
    code = cli.main([*args, "--set", f"emulator.faults={plan}", *SHORT])
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("sonic-fsm: the conversation stopped: "), err
    assert code == cli.EXIT_RETRIES
    data = json.loads(metrics.read_text())
    max_retries = load(None, []).backend.max_retries
    assert data["ended_because"] == "retries_exhausted"
    assert data["sessions"] == 1 + max_retries
    assert out.count("[RETRY] failure") == max_retries
    assert why in err and why in data["error"]


def test_a_conversation_that_ends_with_its_input_exits_0(
    mic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "m.json"
    args = ["run", "--headless", "--fast", "--mic", str(mic), "--metrics-json", str(metrics)]
    assert cli.main([*args, *SHORT]) == 0
    data = json.loads(metrics.read_text())
    assert data["ended_because"] == "input_ended" and "error" not in data
    assert capsys.readouterr().err == ""


KEY_ID, SECRET = "AKIAEDGETEST", "the-right-secret"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        (KEY_ID, "a-wrong-secret", "InvalidSignatureException"),  # HTTP 403
        ("AKIAUNKNOWNKEY", SECRET, "UnrecognizedClientException"),
    ],
)
def test_credentials_the_service_refuses_exit_4(
    mic: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key_id: str,
    secret: str,
    code: str,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    settings = load(None, ["emulator.speed=8.0"])
    key = Credentials(access_key_id=KEY_ID, secret_access_key=SECRET)
    with on_thread(lambda: LocalBackend(settings), key=key) as ep:
        t0 = time.monotonic()
        exit_code = cli.main(
            ["run", "--headless", "--mic", str(mic), "--backend", "bedrock",
             "--set", f"backend.endpoint_uri='{ep.url}'",
             "--set", f"backend.ca_file='{ep.ca_file}'"]
        )  # fmt: skip
        assert time.monotonic() - t0 < 30
    assert exit_code == cli.EXIT_REFUSED == 4
    out = capsys.readouterr()
    final = json.loads(out.out[out.out.index("{") :])
    assert final["ended_because"] == "refused" and final["error"].startswith(code)
    assert out.err.count("\n") == 1 and code in out.err


# ---- outputs checked before the conversation starts --------------------------------------


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--speaker", "folder.wav", "is a folder"),
        ("--speaker", "missing/out.wav", "does not exist"),
        ("--metrics-json", "folder.wav", "is a folder"),
        ("--metrics-json", "missing/m.json", "does not exist"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_the_run(
    mic: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    target: str,
    message: str,
) -> None:
    (tmp_path / "folder.wav").mkdir()
    capsys.readouterr()
    args = ["run", "--headless", "--fast", "--mic", str(mic), option, str(tmp_path / target)]
    t0 = time.monotonic()
    assert cli.main(args) == cli.EXIT_USAGE
    assert time.monotonic() - t0 < 5  # refused at once, not after the conversation
    err = one_error_line(capsys)
    assert option in err and message in err
    assert not capsys.readouterr().out  # the conversation never started


def test_signal_and_diagram_refuse_a_folder_as_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["signal", "--output", str(tmp_path)]) == cli.EXIT_USAGE
    assert "is a folder" in one_error_line(capsys)
    assert cli.main(["diagram", "--output", str(tmp_path)]) == cli.EXIT_USAGE
    assert "is a folder" in one_error_line(capsys)


# ---- bad input files --------------------------------------------------------------------


def wav_with_rate(path: Path, rate: int, frames: int = 1600) -> Path:
    """A PCM WAV whose header says ``rate`` (the wave module refuses to write 0)."""
    data = bytes(2 * frames)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_mic_that_is_a_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "takes.wav"
    folder.mkdir()
    assert cli.main(["run", "--headless", "--fast", "--mic", str(folder)]) == cli.EXIT_USAGE
    assert "is a folder" in one_error_line(capsys)


def test_a_wav_whose_rate_is_zero_is_one_line_in_run_and_in_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = wav_with_rate(tmp_path / "zero.wav", 0)
    good = tmp_path / "good.wav"
    write_wav(good, bytes(4800), 24000)
    assert cli.main(["run", "--headless", "--fast", "--mic", str(zero)]) == cli.EXIT_USAGE
    assert "0 samples a second" in one_error_line(capsys)
    assert cli.main(["score", "--mic", str(zero), "--speaker", str(good)]) == cli.EXIT_USAGE
    assert "0 samples a second" in one_error_line(capsys)
    assert cli.main(["score", "--mic", str(good), "--speaker", str(zero)]) == cli.EXIT_USAGE
    assert "0 samples a second" in one_error_line(capsys)


def test_a_settings_file_that_is_a_folder_or_not_utf8_is_one_line_from_the_command(
    mic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", "--headless", "--fast", "--mic", str(mic), "--settings"]
    assert cli.main([*run, str(tmp_path)]) == cli.EXIT_USAGE
    assert "is a folder" in one_error_line(capsys)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[backend]\nvoice_id = "ren\xe9e"\n'.encode("latin-1"))
    assert cli.main([*run, str(latin)]) == cli.EXIT_USAGE
    assert "not UTF-8" in one_error_line(capsys)


# ---- a real process, real signals ---------------------------------------------------------


def start_run(tmp_path: Path, mic: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    cmd = [sys.executable, "-m", "sonic_fsm.cli", "run", "--headless", "--mic", str(mic)]
    return subprocess.Popen(
        [*cmd, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def wait_for(what: str, check: Callable[[], bool], proc: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.1)


def heard(path: Path) -> list[tuple[str, int]]:
    """The answer marks in a WAV file as it is on disk now (the file must be valid)."""
    try:
        with wave.open(str(path)) as w:
            pcm = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error):
        return []
    return [(m.kind, m.number) for m in testsignal.decode_marks(pcm, 24000) if m.kind in "AB"]


@contextlib.contextmanager
def reaped(proc: Any) -> Iterator[Any]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_sigterm_ends_a_real_time_run_like_sigint(mic: Path, tmp_path: Path) -> None:
    out, rec = tmp_path / "out.wav", tmp_path / "rec"
    proc = start_run(
        tmp_path, mic, "--speaker", str(out),
        "--set", "enable_session_recording=true", "--set", f"recording_output_dir='{rec}'",
    )  # fmt: skip
    with reaped(proc):
        wait_for("session recording", lambda: any(rec.glob("*/session_1_events.jsonl")), proc)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM
    final = json.loads(stdout[stdout.index("{") :])
    assert final["ended_because"] == "signal" and "SIGTERM" in final["reason"]
    assert "[STOPPED] interrupted (SIGTERM)" in stdout
    with wave.open(str(out)) as w:
        assert w.getframerate() == 24000
    assert list(rec.glob("*/session_1_recording.json"))


@pytest.mark.slow
def test_kill_9_keeps_the_speaker_timeline_up_to_its_last_second(mic: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    proc = start_run(tmp_path, mic, "--speaker", str(out))
    with reaped(proc):
        wait_for("first answer on disk", lambda: heard(out) == [("A", 1), ("B", 1)], proc)
        proc.kill()
        proc.wait(timeout=10)
    with wave.open(str(out)) as w:  # a valid WAV whose header counts what is there
        assert w.getnframes() * 2 == out.stat().st_size - 44
    assert heard(out)[:2] == [("A", 1), ("B", 1)]


@pytest.mark.slow
def test_a_bad_ssl_cert_file_is_one_line_within_a_bounded_time(mic: Path, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("this is not a certificate\n")
    env = {
        "SSL_CERT_FILE": str(bad),
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "https://127.0.0.1:9",
    }
    proc = start_run(tmp_path, mic, "--backend", "bedrock", env=env)
    with reaped(proc):
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == cli.EXIT_USAGE
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SSL_CERT_FILE" in lines[0], err

"""The command line: a headless run end to end, and one-line errors for bad input."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from sonic_fsm import cli, testsignal
from sonic_fsm.audio.wav import read_wav, write_wav
from sonic_fsm.bench import oracle
from sonic_fsm.diagram import render

SHORT = [
    "--set", "session_limit_seconds=40",
    "--set", "transition_threshold_seconds=15",
    "--set", "hard_deadline_margin_seconds=6",
]  # fmt: skip


def test_headless_fast_run_plays_every_answer_and_writes_metrics(tmp_path: Path, capsys) -> None:
    mic, speaker, metrics = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "m.json"
    assert cli.main(["signal", "--output", str(mic), "--count", "6", "--spacing", "10"]) == 0
    code = cli.main(
        ["run", "--headless", "--fast", "--mic", str(mic), "--speaker", str(speaker),
         "--metrics-json", str(metrics), "--score", *SHORT]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "[THRESHOLD]" in out and "[TRANSITION]" in out and "[PROMOTION]" in out
    data = json.loads(metrics.read_text())
    assert data["handoffs"] >= 1 and data["oracle"]["answered_once"] == 6
    with wave.open(str(speaker)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
    s = oracle.score(read_wav(mic), read_wav(speaker, 24000))
    assert s.lost == [] and s.answered_twice == [] and s.truncated == []


def test_input_wav_in_an_unusable_format_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "eight-bit.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    code = cli.main(["run", "--headless", "--fast", "--mic", str(bad), "--speaker", "null"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "expected 16-bit" in err


def test_other_rates_and_channels_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    t = np.arange(44100) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.repeat(tone, 2).tobytes())
    pcm = read_wav(path)
    assert len(pcm) == 2 * 16000
    samples = np.frombuffer(pcm, "<i2").astype(float)
    assert np.sqrt(np.mean(samples**2)) > 0.2 * 32767 * 0.7


def test_missing_file_and_bad_setting_are_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["run", "--headless", "--fast", "--mic", str(tmp_path / "no.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
    write_wav(tmp_path / "ok.wav", bytes(3200), 16000)
    args = ["run", "--headless", "--fast", "--mic", str(tmp_path / "ok.wav"),
            "--set", "transition_threshold_seconds=900"]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("sonic-fsm: setting transition_threshold_seconds") and err.count("\n") == 1
    )


def test_fast_mode_refuses_a_real_service(tmp_path: Path, capsys) -> None:
    write_wav(tmp_path / "ok.wav", bytes(3200), 16000)
    args = [
        "run",
        "--headless",
        "--fast",
        "--backend",
        "bedrock",
        "--mic",
        str(tmp_path / "ok.wav"),
    ]
    assert cli.main(args) == 2
    assert "virtual time" in capsys.readouterr().err


def test_diagram_command_writes_what_the_table_generates(tmp_path: Path) -> None:
    out = tmp_path / "d.md"
    assert cli.main(["diagram", "--output", str(out)]) == 0
    assert out.read_text() == render()


@pytest.mark.parametrize("spacing", ["-1", "0.2"])
def test_signal_refuses_impossible_spacing(tmp_path: Path, spacing: str, capsys) -> None:
    args = ["signal", "--output", str(tmp_path / "x.wav"), "--count", "3", "--spacing", spacing]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sonic-fsm: signal:") and err.count("\n") == 1


def test_audio_events_are_logged_only_when_asked(tmp_path: Path, capsys) -> None:
    mic = tmp_path / "in.wav"
    cli.main(["signal", "--output", str(mic), "--count", "2", "--spacing", "10"])
    run = ["run", "--headless", "--fast", "--mic", str(mic), *SHORT]
    assert cli.main(run) == 0
    assert "[AUDIO]" not in capsys.readouterr().out
    assert cli.main([*run, "--set", "log_audio_events=true"]) == 0
    assert "[AUDIO] s1: assistant audio" in capsys.readouterr().out


def test_signal_writes_pauses_inside_utterances_and_follow_ups(tmp_path: Path, capsys) -> None:
    mic = tmp_path / "in.wav"
    args = ["signal", "--output", str(mic), "--count", "4", "--spacing", "15"]
    args += ["--pause-inside", "0.5-1.2", "--follow-ups", "1", "--seed", "7"]
    assert cli.main(args) == 0
    assert "8 utterances" in capsys.readouterr().out
    marks = [m for m in testsignal.decode_marks(read_wav(mic), 16000) if m.kind == "*"]
    assert [m.number for m in marks] == list(range(1, 9))
    for m in marks:  # at least 0.5 s between any two keys: longer than three keys in a row
        keys = len(testsignal.keys_of(m.number))
        assert (m.end - m.start) / 16000 >= keys * 0.08 + (keys - 1) * 0.5 - 0.02
    for said, follow in zip(marks[::2], marks[1::2], strict=True):
        gap = (follow.start - said.end) / 16000
        assert 1.9 + 0.2 - 0.05 <= gap <= 1.9 + 3.0 + 0.05  # after the answer would begin


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--pause-inside", "0-1.5", "--pause-inside must be 0 <= MIN <= MAX up to 1.2"),
        ("--pause-inside", "1-0.5", "--pause-inside must be 0 <= MIN <= MAX"),
        ("--follow-up-after", "soon", "--follow-up-after takes MIN-MAX seconds"),
        ("--follow-ups", "2", "--follow-ups is a share from 0 to 1"),
    ],
)
def test_signal_options_are_checked_in_one_line(
    tmp_path: Path, option: str, value: str, problem: str, capsys
) -> None:
    assert cli.main(["signal", "--output", str(tmp_path / "x.wav"), option, value]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1


def test_score_reads_hand_off_windows_from_the_run_log(tmp_path: Path, capsys) -> None:
    mic, speaker = tmp_path / "in.wav", tmp_path / "out.wav"
    cli.main(["signal", "--output", str(mic), "--count", "6", "--spacing", "6"])
    run = ["run", "--headless", "--fast", "--mic", str(mic), "--speaker", str(speaker)]
    assert cli.main([*run, "--score", *SHORT]) == 0
    out = capsys.readouterr().out
    log = tmp_path / "run.log"
    log.write_text(out)
    scored = json.loads(out[out.index('{\n  "reason"') :])["oracle"]
    assert cli.main(["score", "--mic", str(mic), "--speaker", str(speaker), "--log", str(log)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == scored  # the same windows, whether read from the log or during the run
    assert again["talk_over"] == 0 and again["reply_delay_ms_p50"] is not None
    windows = oracle.handoff_windows(out.splitlines())
    assert windows and all(a <= b for a, b in windows)
    assert cli.main(["score", "--mic", str(mic), "--speaker", str(speaker), "--log", "nope"]) == 2

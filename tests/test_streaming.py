"""Audio streamed in blocks: WAV files in and out, and the oracle in one pass, giving the
same results as a whole-file pass in memory that does not grow with the conversation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sonic_fsm import cli
from sonic_fsm.audio.wav import TimelineSink, WavSource, iter_wav, read_wav
from sonic_fsm.bench import oracle


def whole_file(path: Path, rate: int) -> bytes:
    """The conversion done on the whole file at once (what the streaming pass must equal)."""
    with wave.open(str(path)) as w:
        channels, src = w.getnchannels(), w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    samples = samples.reshape(-1, channels).mean(axis=1)
    if src != rate:
        n_out = round(samples.size * rate / src)
        samples = np.interp(np.arange(n_out) * src / rate, np.arange(samples.size), samples)
    return np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize(("src", "channels"), [(16000, 1), (44100, 2), (8000, 1), (48000, 3)])
@pytest.mark.parametrize("block", [1, 7, 1000, 1 << 16])
def test_streaming_conversion_equals_the_whole_file(
    tmp_path: Path, src: int, channels: int, block: int
) -> None:
    rng = np.random.default_rng(src + channels)
    frames = 4321
    data = rng.integers(-30000, 30000, frames * channels, dtype=np.int16)
    path = tmp_path / "in.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(src)
        w.writeframes(data.astype("<i2").tobytes())
    got = np.frombuffer(b"".join(iter_wav(path, 16000, block_frames=block)), "<i2")
    want = np.frombuffer(whole_file(path, 16000), "<i2")
    assert got.size == want.size
    # Equal but for rounding a sample that falls on .5 (interpolated in another order).
    assert np.abs(got.astype(int) - want).max(initial=0) <= 1


def test_a_source_plays_the_file_in_whole_chunks(tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    pcm = bytes(range(256)) * 50  # 12,800 bytes: 6 chunks of 2,048 and a partial one
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    chunks = list(WavSource(path, 1024)._chunks())
    assert [len(c) for c in chunks] == [2048] * 7
    assert b"".join(chunks)[: len(pcm)] == pcm == read_wav(path)


def test_the_speaker_file_is_valid_and_final_as_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    sink = TimelineSink(path, rate=1000)
    sink.play(b"\x01\x00" * 500, now=0.0)  # 0.5 s of audio, queued at once
    sink.commit(0.2)  # only what has played is final: 0.2 s
    with wave.open(str(path)) as w:
        assert w.getnframes() == 200
    assert sink.flush(0.3) == 400  # barge-in at 0.3 s drops what had not played
    sink.play(b"\x02\x00" * 100, now=1.0)  # silence until 1.0 s, then 0.1 s
    sink.commit(2.0)
    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes())
    assert pcm == b"\x01\x00" * 300 + b"\x00\x00" * 700 + b"\x02\x00" * 100
    assert len(sink.timeline) == 0  # nothing final is kept in memory


def test_the_oracle_scores_a_stream_of_blocks_as_it_scores_the_whole(tmp_path: Path) -> None:
    mic, speaker = tmp_path / "in.wav", tmp_path / "out.wav"
    assert cli.main(["signal", "--output", str(mic), "--count", "5", "--spacing", "8"]) == 0
    run = ["run", "--headless", "--fast", "--mic", str(mic), "--speaker", str(speaker)]
    assert cli.main([*run, "--set", "session_limit_seconds=30",
                     "--set", "transition_threshold_seconds=10",
                     "--set", "hard_deadline_margin_seconds=5"]) == 0  # fmt: skip
    whole = oracle.score(read_wav(mic), read_wav(speaker, 24000), [(12.0, 14.0)])
    blocks = oracle.score_stream(
        iter_wav(mic, block_frames=997), iter_wav(speaker, 24000, block_frames=1013), [(12.0, 14.0)]
    )
    assert whole.answered_once == 5
    assert blocks == whole

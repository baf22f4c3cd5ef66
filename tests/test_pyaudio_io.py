"""The PyAudio adapters against a fake PyAudio: frame flow, overruns, devices, no-device text."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sonic_fsm.audio.base import AudioDeviceError
from sonic_fsm.audio.devices import (
    describe,
    list_devices,
    pick_device,
    quiet_stderr,
    register_devices,
    run_devices,
)
from sonic_fsm.audio.fake_pyaudio import LAPTOP, FakePyAudio, FakeStream, dev
from sonic_fsm.audio.null import NullSink, NullSource
from sonic_fsm.audio.pyaudio_io import (
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_INT16,
    PyAudioSink,
    PyAudioSource,
)

CHUNK = 1024
ROOT = Path(__file__).resolve().parents[1]


def chunk(i: int) -> bytes:
    return i.to_bytes(4, "little") * (CHUNK // 2)


# ---- microphone --------------------------------------------------------------------------


def test_microphone_opens_16k_mono_int16_callback_stream_stopped_until_read() -> None:
    pa = FakePyAudio(LAPTOP, default_in=4)
    mic = PyAudioSource(chunk_frames=CHUNK, pa_factory=lambda: pa)
    (stream,) = pa.streams
    kw = stream.kwargs
    assert (kw["rate"], kw["channels"], kw["format"], kw["input"]) == (16000, 1, PA_INT16, True)
    assert kw["frames_per_buffer"] == CHUNK and kw["input_device_index"] == 4
    assert not stream.active  # capture starts when the engine starts reading
    assert mic.device.name == "default"


def test_every_captured_chunk_reaches_the_consumer_in_order_and_overruns_are_counted() -> None:
    pa = FakePyAudio(LAPTOP, default_in=0)
    mic = PyAudioSource(chunk_frames=CHUNK, pa_factory=lambda: pa)
    n = 500
    results: list[tuple[None, int]] = []

    def portaudio_thread(stream: FakeStream) -> None:
        # as fast as it can: the consumer is not keeping up, yet nothing blocks or drops
        for i in range(n):
            status = PA_INPUT_OVERFLOW if i in (17, 301) else 0
            results.append(stream.callback(chunk(i), CHUNK, {}, status))

    async def main() -> list[bytes]:
        got: list[bytes] = []
        frames = mic.frames()
        first = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        (stream,) = pa.streams
        assert stream.active
        thread = threading.Thread(target=portaudio_thread, args=(stream,))
        thread.start()
        async with asyncio.timeout(30):  # bounded: a lost chunk fails, never hangs
            got.append(await first)
            await asyncio.to_thread(thread.join)
            assert mic.queued_chunks() == n - 1  # all held, none dropped, while we were away
            async for c in frames:
                got.append(c)
                if len(got) == n:
                    await mic.aclose()
        return got

    got = asyncio.run(main())
    assert got == [chunk(i) for i in range(n)]
    assert mic.overruns == 2 and mic.chunks == n
    assert all(r == (None, PA_CONTINUE) for r in results)
    assert pa.terminated and pa.streams[0].closed


def test_microphone_callback_after_loop_closed_completes_quietly() -> None:
    pa = FakePyAudio(LAPTOP, default_in=0)
    mic = PyAudioSource(chunk_frames=CHUNK, pa_factory=lambda: pa)

    async def start() -> None:
        frames = mic.frames()
        task = asyncio.ensure_future(frames.__anext__())
        await asyncio.sleep(0)
        task.cancel()

    asyncio.run(start())
    _, flag = pa.streams[0].callback(chunk(0), CHUNK, {}, 0)
    assert flag == 1  # paComplete: the loop is gone, nobody will read


# ---- devices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "index"),
    [
        ("", "input", 4),  # PortAudio's default
        ("2", "input", 2),
        ("usb headset", "input", 2),
        ("HDMI", "output", 1),
        ("pulse", "output", 3),
        ("default", "input", 4),  # an exact name wins over names that contain it
    ],
)
def test_device_picked_by_index_or_name(spec: str, kind: str, index: int) -> None:
    pa = FakePyAudio(LAPTOP, default_in=4, default_out=4)
    assert pick_device(pa, spec, kind).index == index


def test_default_falls_back_to_first_usable_device() -> None:
    pa = FakePyAudio(LAPTOP)  # PortAudio has no default
    assert pick_device(pa, "", "input").index == 0
    assert pick_device(pa, "", "output").index == 0


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        ("1", "input", "no microphone with index 1 (available: 0: HDA Intel"),
        ("2", "output", "no speaker with index 2"),
        ("bluetooth", "input", "no microphone named 'bluetooth'"),
        ("hw:0", "output", "speaker name 'hw:0' is ambiguous (available: 0: HDA"),
    ],
)
def test_bad_device_choice_is_one_line_naming_the_choices(
    spec: str, kind: str, message: str
) -> None:
    with pytest.raises(AudioDeviceError) as e:
        pick_device(FakePyAudio(LAPTOP), spec, kind)
    text = str(e.value)
    assert message in text and "\n" not in text


def test_no_device_error_text_names_the_alternatives() -> None:
    pa = FakePyAudio([])
    with pytest.raises(AudioDeviceError) as e:
        PyAudioSource(pa_factory=lambda: pa)
    assert str(e.value) == (
        "no microphone found (no audio input device); "
        "use --mic FILE.wav, --mic talker or --mic null"
    )
    assert pa.terminated
    pa = FakePyAudio([dev(0, "mic only", 1, 0)])
    with pytest.raises(AudioDeviceError) as e:
        PyAudioSink(pa_factory=lambda: pa)
    assert str(e.value) == (
        "no speaker found (no audio output device); use --speaker FILE.wav or --speaker null"
    )


def test_device_that_refuses_the_format_is_one_line() -> None:
    pa = FakePyAudio(LAPTOP, open_error=OSError(-9997, "Invalid sample rate"))
    with pytest.raises(AudioDeviceError, match=r"^cannot open microphone 'HDA Intel.*--mic null$"):
        PyAudioSource(pa_factory=lambda: pa)
    assert pa.terminated


def test_portaudio_missing_is_one_line() -> None:
    def broken() -> Any:
        raise OSError("PortAudio not initialized")

    with pytest.raises(AudioDeviceError, match=r"^PortAudio failed to start .*--speaker null$"):
        PyAudioSink(pa_factory=broken)


def test_quiet_stderr_silences_file_descriptor_2(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_stderr(), quiet_stderr():
        os.write(2, b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "ALSA" not in err and "after" in err


def test_devices_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="sonic-fsm")
    register_devices(parser.add_subparsers())
    args = parser.parse_args(["devices"])
    assert args.func is run_devices
    assert run_devices(args, factory=lambda: FakePyAudio(LAPTOP)) == 0
    out = capsys.readouterr().out
    assert "USB Headset Mic (hw:1,0)" in out and out.splitlines()[0].startswith("index")
    assert run_devices(args, factory=lambda: FakePyAudio([])) == 0
    out = capsys.readouterr().out
    assert "no audio devices found" in out and "--mic talker" in out
    assert "no input device" in describe(list_devices(FakePyAudio([dev(0, "hdmi", 0, 2)])))


# ---- speaker -----------------------------------------------------------------------------


def test_speaker_plays_in_order_pads_with_silence_and_knows_its_depth() -> None:
    pa = FakePyAudio(LAPTOP, default_out=0)
    spk = PyAudioSink(frames_per_buffer=480, pa_factory=lambda: pa)
    (stream,) = pa.streams
    kw = stream.kwargs
    assert (kw["rate"], kw["channels"], kw["output"], kw["output_device_index"]) == (
        24000,
        1,
        True,
        0,
    )
    audio = (bytes(range(256)) * 30)[:7000]  # 3500 samples, not a whole number of callbacks
    spk.play(audio[:5000], 0.0)
    spk.play(audio[5000:], 0.0)
    assert spk.queued_seconds(0.0) == pytest.approx(3500 / 24000)
    out = b""
    for _ in range(9):
        data, flag = stream.callback(None, 480, {}, 0)
        assert len(data) == 960 and flag == PA_CONTINUE
        out += data
    assert out[: len(audio)] == audio and out[len(audio) :] == bytes(len(out) - len(audio))
    assert spk.queued_seconds(0.0) == 0 and spk.played_bytes == len(audio)
    assert spk.underruns == 1  # the one callback that got part of a buffer; idle ones are not


def test_barge_in_flush_empties_the_playback_queue_at_once() -> None:
    pa = FakePyAudio(LAPTOP, default_out=0)
    spk = PyAudioSink(frames_per_buffer=480, pa_factory=lambda: pa)
    stream = pa.streams[0]
    answer = b"\x01\x02" * 24000 * 3  # 3 s of answer queued
    spk.play(answer, 0.0)
    stream.callback(None, 480, {}, 0)  # 20 ms played
    assert spk.flush(0.02) == len(answer) - 960
    assert spk.queued_seconds(0.02) == 0
    data, _ = stream.callback(None, 480, {}, 0)
    assert data == bytes(960)  # silence right after the flush
    asyncio.run(spk.aclose())
    assert stream.closed and pa.terminated


# ---- null source and sink ----------------------------------------------------------------


def test_null_sink_drains_in_time_and_flush_returns_what_was_left() -> None:
    sink = NullSink(rate=24000)
    sink.play(bytes(48000), now=10.0)  # 1 s
    sink.play(bytes(24000), now=10.2)  # +0.5 s after it
    assert sink.queued_seconds(10.2) == pytest.approx(1.3)
    assert sink.queued_seconds(11.5) == 0
    sink.play(bytes(48000), now=20.0)
    assert sink.flush(20.25) == 36000
    assert sink.queued_seconds(20.25) == 0


def test_null_source_is_silence_paced_by_the_loop_clock() -> None:
    async def main() -> tuple[list[bytes], float]:
        loop = asyncio.get_running_loop()
        src = NullSource(chunk_frames=160, duration=0.1)
        start = loop.time()
        got = [c async for c in src.frames()]
        return got, loop.time() - start

    got, took = asyncio.run(main())
    assert got == [bytes(320)] * 10
    assert took == pytest.approx(0.1, abs=0.05)


@pytest.mark.slow  # a process with the real PortAudio
def test_real_portaudio_start_up_prints_nothing_on_the_terminal() -> None:
    """With the real library (no device is opened): ALSA/JACK chatter never reaches fd 2."""
    code = (
        "from sonic_fsm.audio.devices import default_factory, list_devices\n"
        "from sonic_fsm.audio.base import AudioDeviceError\n"
        "from sonic_fsm.audio.pyaudio_io import PyAudioSource\n"
        "pa = default_factory(); print(len(list_devices(pa))); pa.terminate()\n"
        "try:\n"
        "    PyAudioSource(device='no such microphone anywhere')\n"
        "except AudioDeviceError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "--mic talker" in done.stdout.splitlines()[-1]

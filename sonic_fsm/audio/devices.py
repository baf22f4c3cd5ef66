"""Audio devices: list them, pick one by index or name, and say plainly when there is none.

PortAudio, ALSA and JACK write their complaints straight to file descriptor 2 (not through
``sys.stderr``), dozens of lines on a machine without a sound card. Written over a full-screen
dashboard they corrupt it. Two defences: :func:`silence_audio_libraries` gives ALSA and JACK
no-op error handlers (which also covers what they print later, an underrun in the middle of
a conversation), and PortAudio's start-up, device listing, opens and shut-down run inside
:func:`quiet_stderr`, which points fd 2 at ``/dev/null`` for the duration.

Textual draws the dashboard on fd 2 too, so open the devices before the dashboard starts and
close them after it exits; a frame drawn inside a :func:`quiet_stderr` window would be lost.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sonic_fsm.audio.base import AudioDeviceError

MIC_ALTERNATIVES = "use --mic FILE.wav, --mic talker or --mic null"
SPEAKER_ALTERNATIVES = "use --speaker FILE.wav or --speaker null"

_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_fd: int | None = None


_handlers: list[Any] = []  # the ctypes callbacks must outlive the libraries' use of them


def silence_audio_libraries() -> None:
    """Install no-op error handlers in ALSA and JACK, once; missing libraries are fine."""
    if _handlers:
        return
    alsa_handler = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
    )(lambda *args: None)
    jack_handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
    _handlers.extend([alsa_handler, jack_handler])
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libasound.so.2").snd_lib_error_set_handler(alsa_handler)
    with contextlib.suppress(OSError, AttributeError):
        jack = ctypes.CDLL("libjack.so.0")
        jack.jack_set_error_function(jack_handler)
        jack.jack_set_info_function(jack_handler)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send whatever is written to fd 2 meanwhile to /dev/null (nesting and threads are fine)."""
    global _quiet_depth, _saved_fd
    with _quiet_lock:
        if _quiet_depth == 0:
            with contextlib.suppress(AttributeError, ValueError):
                sys.stderr.flush()
            try:
                _saved_fd = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:  # no fd 2 to begin with (a daemon): nothing to protect
                _saved_fd = None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


@dataclass(frozen=True, kw_only=True)
class Device:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float

    @property
    def is_input(self) -> bool:
        return self.max_input_channels > 0

    @property
    def is_output(self) -> bool:
        return self.max_output_channels > 0


PyAudioFactory = Callable[[], Any]


def default_factory() -> Any:
    """A real ``pyaudio.PyAudio()``, created with PortAudio's start-up chatter silenced."""
    import pyaudio  # imported here: the engine and tests never need the C extension

    silence_audio_libraries()
    with quiet_stderr():
        return pyaudio.PyAudio()


def list_devices(pa: Any) -> list[Device]:
    """Every device PortAudio reports, in index order."""
    out = []
    with quiet_stderr():
        count = pa.get_device_count()
        infos = [pa.get_device_info_by_index(i) for i in range(count)]
    for i, info in enumerate(infos):
        out.append(
            Device(
                index=int(info.get("index", i)),
                name=str(info.get("name", f"device {i}")),
                max_input_channels=int(info.get("maxInputChannels", 0)),
                max_output_channels=int(info.get("maxOutputChannels", 0)),
                default_sample_rate=float(info.get("defaultSampleRate", 0.0)),
            )
        )
    return out


def _default_index(pa: Any, kind: str) -> int | None:
    getter = (
        pa.get_default_input_device_info if kind == "input" else pa.get_default_output_device_info
    )
    try:
        with quiet_stderr():
            info = getter()
    except OSError:
        return None
    index = info.get("index") if isinstance(info, dict) else None
    return int(index) if index is not None else None


def pick_device(pa: Any, spec: str, kind: str) -> Device:
    """The device ``spec`` names (an index, or a name or part of one), or the default one.

    ``kind`` is ``"input"`` or ``"output"``. Raises :class:`AudioDeviceError` with one line
    that says what is missing and names the alternatives.
    """
    devices = list_devices(pa)
    usable = [d for d in devices if (d.is_input if kind == "input" else d.is_output)]
    what, alternatives, flag = (
        ("microphone", MIC_ALTERNATIVES, "--mic")
        if kind == "input"
        else ("speaker", SPEAKER_ALTERNATIVES, "--speaker")
    )
    spec = spec.strip()
    if not usable:
        raise AudioDeviceError(f"no {what} found (no audio {kind} device); {alternatives}")
    if not spec:
        index = _default_index(pa, kind)
        for d in usable:
            if d.index == index:
                return d
        return usable[0]
    if spec.isdigit():
        for d in usable:
            if d.index == int(spec):
                return d
        raise AudioDeviceError(
            f"no {what} with index {spec} ({_names(usable)}); pick another with {flag} "
            f"or {alternatives}"
        )
    exact = [d for d in usable if d.name.lower() == spec.lower()]
    partial = [d for d in usable if spec.lower() in d.name.lower()]
    found = exact or partial
    if len(found) == 1:
        return found[0]
    if not found:
        raise AudioDeviceError(
            f"no {what} named {spec!r} ({_names(usable)}); pick another with {flag} "
            f"or {alternatives}"
        )
    raise AudioDeviceError(
        f"{what} name {spec!r} is ambiguous ({_names(found)}); give its index with {flag}"
    )


def _names(devices: list[Device]) -> str:
    return "available: " + ", ".join(f"{d.index}: {d.name}" for d in devices)


def describe(devices: list[Device]) -> str:
    """The ``sonic-fsm devices`` listing."""
    if not devices:
        return (
            "no audio devices found\n"
            f"  microphone: {MIC_ALTERNATIVES}\n"
            f"  speaker: {SPEAKER_ALTERNATIVES}"
        )
    lines = ["index  in  out  rate   name"]
    for d in devices:
        lines.append(
            f"{d.index:>5}  {d.max_input_channels:>2}  {d.max_output_channels:>3}  "
            f"{int(d.default_sample_rate):>5}  {d.name}"
        )
    if not any(d.is_input for d in devices):
        lines.append(f"no input device: {MIC_ALTERNATIVES}")
    if not any(d.is_output for d in devices):
        lines.append(f"no output device: {SPEAKER_ALTERNATIVES}")
    return "\n".join(lines)


def run_devices(args: argparse.Namespace, factory: PyAudioFactory | None = None) -> int:
    """``sonic-fsm devices``: print the input and output devices; 0 even when there are none."""
    make = factory or default_factory
    try:
        pa = make()
    except (ImportError, OSError) as e:
        print(f"sonic-fsm devices: PortAudio is not usable ({e}); {MIC_ALTERNATIVES}")
        return 1
    try:
        print(describe(list_devices(pa)))
    finally:
        with quiet_stderr():
            pa.terminate()
    return 0


def register_devices(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sonic-fsm devices``; the command runs ``args.func(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "devices",
        help="list audio input and output devices",
        description="List the audio input and output devices PortAudio sees, with their "
        "indexes; choose one with --mic/--speaker or audio.input_device/output_device.",
    )
    parser.set_defaults(func=run_devices)
    return parser

"""Builds a conversation from settings and the command line's choice of audio and backend.

``--mic``: a WAV path, ``talker`` (the simulated talker), ``null`` (silence), or ``default``
/ a device index or name (the microphone). ``--speaker``: a WAV path (the timeline of what
played), ``null``, or ``default`` / a device. Nothing else in the package makes these choices.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from nova_emulator.faults import FaultPlan
from sonic_fsm.audio.base import AudioSink, AudioSource
from sonic_fsm.backends.local import LocalBackend, recogniser_from_settings
from sonic_fsm.core.backend import Backend
from sonic_fsm.observer import Observer
from sonic_fsm.runner import Runner
from sonic_fsm.settings import Settings
from sonic_fsm.tools import Tool


def make_backend(
    settings: Settings, faults: FaultPlan | None = None, phrases: Sequence[str] = ()
) -> Backend:
    """``faults=None``: the plan in ``emulator.faults`` (none by default). ``phrases``: all
    the user will say (the simulated talker's lines), which the emulator's recogniser is then
    limited to, so it hears them right; none, open vocabulary (a microphone)."""
    if settings.backend.kind == "bedrock":
        from sonic_fsm.backends.bedrock import BedrockBackend

        return BedrockBackend(settings)
    return LocalBackend(settings, faults, recogniser=recogniser_from_settings(settings, phrases))


def make_sink(spec: str, settings: Settings) -> AudioSink:
    rate = settings.audio.output_sample_rate
    if spec == "null":
        from sonic_fsm.audio.null import NullSink

        return NullSink(rate=rate)
    if spec.lower().endswith(".wav"):
        from sonic_fsm.audio.wav import TimelineSink

        return TimelineSink(spec, rate)
    from sonic_fsm.audio.pyaudio_io import PyAudioSink

    device = "" if spec == "default" else spec
    return PyAudioSink(device=device or settings.audio.output_device, rate=rate)


def make_source(
    spec: str, settings: Settings, conv_holder: list[Runner], repeat: bool = True
) -> AudioSource:
    chunk = settings.audio.chunk_frames
    if spec == "null":
        from sonic_fsm.audio.null import NullSource

        return NullSource(chunk_frames=chunk)
    if spec == "talker" or spec.startswith("talker:"):
        from sonic_fsm.audio.talker import DEFAULT_SCRIPT, Talker, TalkerConfig, load_script

        script_path = spec.partition(":")[2]
        script = tuple(load_script(script_path)) if script_path else DEFAULT_SCRIPT
        config = TalkerConfig(
            script=script, chunk_frames=chunk, repeat=repeat, interrupt_fraction=0.1
        )
        return Talker(
            config,
            assistant_busy=lambda: assistant_busy(conv_holder),
            handoffs=lambda: sessions_replaced(conv_holder),
        )
    if spec.lower().endswith(".wav"):
        from sonic_fsm.audio.wav import WavSource

        return WavSource(spec, chunk)
    from sonic_fsm.audio.pyaudio_io import PyAudioSource

    device = "" if spec == "default" else spec
    return PyAudioSource(chunk_frames=chunk, device=device or settings.audio.input_device)


def assistant_busy(conv_holder: list[Runner]) -> bool:
    """For the talker: an answer is pending or still playing."""
    return bool(conv_holder) and conv_holder[0].assistant_busy()


def sessions_replaced(conv_holder: list[Runner]) -> int:
    """For the talker: how many times a new session took over with the conversation so far
    (hand-offs and recoveries)."""
    return conv_holder[0].conversation.sessions_replaced if conv_holder else 0


def make_recorder(settings: Settings) -> Observer:
    """A session recorder that never writes the credentials of this process."""
    from sonic_fsm.recording import SessionRecorder

    secrets = [os.environ.get(k, "") for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return SessionRecorder.from_settings(settings, secrets=[s for s in secrets if s])


def build_conversation(
    settings: Settings,
    mic: str | None = None,
    speaker: str | None = None,
    *,
    log: Any = None,
    finish_when_input_ends: bool = True,
    faults: FaultPlan | None = None,
    talker_repeats: bool = True,
    tools: Iterable[Tool] = (),
) -> Runner:
    """The conversation a user asked for. ``mic=None`` means the microphone when there is
    one and the simulated talker otherwise; ``speaker=None``, the speaker or else null.
    ``tools`` are offered to the model besides those the settings name."""
    from sonic_fsm.audio.base import AudioDeviceError

    holder: list[Runner] = []
    if speaker is None:
        try:
            sink = make_sink("default", settings)
        except AudioDeviceError:
            sink = make_sink("null", settings)
    else:
        sink = make_sink(speaker, settings)
    if mic is None:
        try:
            source = make_source("default", settings, holder)
        except AudioDeviceError:
            source = make_source("talker", settings, holder)
    else:
        source = make_source(mic, settings, holder, talker_repeats)
    phrases = getattr(source, "phrases", ())  # the simulated talker's lines
    if settings.audio.half_duplex:
        from sonic_fsm.audio.echo_gate import HalfDuplexSource

        source = HalfDuplexSource(source, sink, margin_db=settings.audio.half_duplex_margin_db)
    conv = Runner(
        settings,
        make_backend(settings, faults, phrases),
        source,
        sink,
        log=log,
        finish_when_input_ends=finish_when_input_ends,
        tools=tools,
    )
    holder.append(conv)
    return conv

"""The settings tree: one typed dataclass a section, with the defaults, and its error.

Plain data, no loading: the core and the emulator read these. Loading from TOML, ``--set``
overrides and validation live in :mod:`sonic_fsm.settings`, which is where everyone else
gets them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A bad setting: the message is one line naming the key and the problem."""


@dataclass
class SessionLogging:
    log_transitions: bool = True
    log_barge_in_events: bool = True
    log_audio_events: bool = False


@dataclass
class History:
    max_text_input_bytes: int = 1024
    max_total_bytes: int = 40960
    max_messages: int = 40


@dataclass
class Audio:
    input_sample_rate: int = 16000
    output_sample_rate: int = 24000
    chunk_frames: int = 1024
    input_device: str = ""
    output_device: str = ""
    half_duplex: bool = False
    half_duplex_margin_db: float = 12.0


@dataclass
class Backend:
    kind: str = "emulator"
    region: str = "us-east-1"
    model_id: str = "amazon.nova-sonic-v1:0"
    voice_id: str = "matthew"
    system_prompt: str = (
        "You are a friendly assistant. The user and you will engage in a spoken dialog "
        "exchanging the transcripts of a natural real-time conversation. Keep your "
        "responses short, generally two or three sentences for chatty scenarios."
    )
    endpoint_uri: str = ""
    ca_file: str = ""
    transport: str = "h2"  # h2 (HTTP/2 on the event loop) | crt (the SDK's CRT client)
    profile: str = ""
    max_tokens: int = 1024
    top_p: float = 0.9
    temperature: float = 0.7
    endpointing_sensitivity: str = ""
    open_timeout_seconds: float = 10.0
    close_timeout_seconds: float = 5.0
    max_retries: int = 5
    retry_base_seconds: float = 0.5
    retry_max_seconds: float = 8.0


@dataclass
class Emulator:
    silence_timeout_seconds: float = 175.0
    end_of_speech_ms: int = 0  # 0: the session's endpointing (1.5, 1.75 or 2 s of pause)
    speed: float = 4.0
    first_audio_delay_ms: int = 150
    faults: str = ""  # "2:refuse_start,3:die_at_seconds=20": see nova_emulator.faults
    voice: str = "auto"  # auto (espeak-ng when installed) | espeak | synthetic
    recogniser: str = "auto"  # auto (pocketsphinx when installed) | none | pocketsphinx
    endpoint_max_connections: int = 256  # `emulator serve`: connections open at once
    endpoint_idle_seconds: float = 10.0  # `emulator serve`: time to open a first stream


@dataclass
class ToolSettings:
    builtin: list[str] = field(default_factory=lambda: ["getDateAndTimeTool", "testSignalTool"])
    modules: list[str] = field(default_factory=list)
    timeout_seconds: float = 8.0
    max_threads: int = 4
    test_tool_seconds: float = 0.5


@dataclass
class Speech:
    """The client's speech tracker (see :mod:`sonic_fsm.core.ledger`)."""

    threshold_db: float = -45.0
    min_pause_ms: int = 300
    turn_pause_ms: int = 0
    preroll_ms: int = 300
    abandon_seconds: float = 4.0


@dataclass
class Settings:
    transition_threshold_seconds: float = 360.0
    audio_buffer_duration_seconds: float = 10.0
    audio_start_timeout_seconds: float = 100.0
    next_session_ready_timeout_seconds: float = 30.0
    enable_session_recording: bool = False
    recording_output_dir: str = "./session_recordings"
    session_limit_seconds: float = 480.0
    hard_deadline_margin_seconds: float = 20.0
    session_logging: SessionLogging = field(default_factory=SessionLogging)
    history: History = field(default_factory=History)
    audio: Audio = field(default_factory=Audio)
    backend: Backend = field(default_factory=Backend)
    emulator: Emulator = field(default_factory=Emulator)
    tools: ToolSettings = field(default_factory=ToolSettings)
    speech: Speech = field(default_factory=Speech)

    @property
    def hard_deadline_seconds(self) -> float:
        """Session age at which a hand-off is forced, turn boundary or not."""
        return self.session_limit_seconds - self.hard_deadline_margin_seconds

    @property
    def buffer_cap_bytes(self) -> int:
        """The transition buffer's cap: its duration of 16-bit mono input audio."""
        return int(self.audio_buffer_duration_seconds * self.audio.input_sample_rate) * 2

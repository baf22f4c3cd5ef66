"""Settings: one typed tree, loaded from TOML, validated, overridable as ``--set KEY=VALUE``.

The seed's names and defaults are kept (``transition_threshold_seconds`` and friends sit at the
top level); what the seed lacked lives in small sections. Every problem is reported as one
:class:`SettingsError` line that names the key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from pathlib import Path
from typing import Any, NamedTuple

from nova_emulator.faults import parse_fault_plan
from sonic_fsm.core.config import Audio as Audio
from sonic_fsm.core.config import Backend as Backend
from sonic_fsm.core.config import Emulator as Emulator
from sonic_fsm.core.config import History as History
from sonic_fsm.core.config import SessionLogging as SessionLogging
from sonic_fsm.core.config import Settings as Settings
from sonic_fsm.core.config import SettingsError as SettingsError
from sonic_fsm.core.config import Speech as Speech
from sonic_fsm.core.config import ToolSettings as ToolSettings


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the declared type; ints are accepted where floats are."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise SettingsError(f"setting {key}: expected a list of {item.__name__}, got {value!r}")
        return list(value)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise SettingsError(
            f"setting {key}: expected {tp.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _apply(obj: Any, data: dict[str, Any], prefix: str) -> None:
    hints = _hints(type(obj))
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise SettingsError(f"setting {key}: unknown key")
        tp = hints[name]
        if _is_section(tp):
            if not isinstance(value, dict):
                raise SettingsError(f"setting {key}: expected a [{key}] table")
            _apply(getattr(obj, name), value, f"{key}.")
        else:
            setattr(obj, name, _coerce(key, tp, value))


def all_keys(cls: type = Settings, prefix: str = "") -> list[str]:
    """Every dotted key of the settings tree, in declaration order."""
    keys: list[str] = []
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            keys.extend(all_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def resolve_key(key: str) -> str:
    """A dotted key as given, or the one key whose last part is this bare name."""
    keys = all_keys()
    if key in keys:
        return key
    matches = [k for k in keys if k.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise SettingsError(f"setting {key}: ambiguous, say one of {', '.join(matches)}")
    raise SettingsError(f"setting {key}: unknown key")


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value (a bare word is taken as a string)."""
    if "=" not in text:
        raise SettingsError(f"--set {text}: expected KEY=VALUE")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return resolve_key(key), value


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


# Every number's range, inclusive: (lowest, highest, unit). A value outside it, NaN or an
# infinity is refused at load with one line. A new numeric setting adds a row here (a test
# fails until it does) and its range to its comment in settings.toml.
class Range(NamedTuple):
    low: float
    high: float
    unit: str = ""
    off: float | None = None  # one more value allowed outside the range, meaning "not set"


RANGES: dict[str, Range] = {
    "transition_threshold_seconds": Range(1, 86_400, "s"),
    "audio_buffer_duration_seconds": Range(0.5, 600, "s"),
    "audio_start_timeout_seconds": Range(0.5, 3_600, "s"),
    "next_session_ready_timeout_seconds": Range(0.5, 600, "s"),
    "session_limit_seconds": Range(5, 86_400, "s"),
    "hard_deadline_margin_seconds": Range(0, 3_600, "s"),
    "history.max_text_input_bytes": Range(16, 1_048_576, "bytes"),
    "history.max_total_bytes": Range(64, 16_777_216, "bytes"),
    "history.max_messages": Range(1, 10_000, "messages"),
    "audio.chunk_frames": Range(160, 16_000, "frames"),
    "audio.half_duplex_margin_db": Range(0, 60, "dB"),
    "backend.max_tokens": Range(1, 65_536, "tokens"),
    "backend.top_p": Range(0, 1, ""),
    "backend.temperature": Range(0, 1, ""),
    "backend.open_timeout_seconds": Range(0.1, 600, "s"),
    "backend.close_timeout_seconds": Range(0.1, 600, "s"),
    "backend.max_retries": Range(0, 100, "retries"),
    "backend.retry_base_seconds": Range(0.01, 60, "s"),
    "backend.retry_max_seconds": Range(0.01, 3_600, "s"),
    "emulator.silence_timeout_seconds": Range(1, 86_400, "s"),
    "emulator.end_of_speech_ms": Range(50, 10_000, "ms", off=0),  # 0: follow the endpointing
    "emulator.speed": Range(0.1, 1_000, "times real time"),
    "emulator.first_audio_delay_ms": Range(0, 60_000, "ms"),
    "emulator.endpoint_max_connections": Range(1, 100_000, "connections"),
    "emulator.endpoint_idle_seconds": Range(0.5, 3_600, "s"),
    "tools.timeout_seconds": Range(0.1, 600, "s"),
    "tools.max_threads": Range(1, 64, "threads"),
    "tools.test_tool_seconds": Range(0, 60, "s"),
    "speech.threshold_db": Range(-90, -1, "dBFS"),
    "speech.min_pause_ms": Range(50, 5_000, "ms"),
    "speech.turn_pause_ms": Range(100, 10_000, "ms", off=0),  # 0: from the endpointing
    "speech.preroll_ms": Range(0, 2_000, "ms"),
    "speech.abandon_seconds": Range(0.5, 600, "s"),
}

# Settings that take one of a few values (numbers or words).
CHOICES: dict[str, tuple[Any, ...]] = {
    "audio.input_sample_rate": (16000,),  # what Nova Sonic takes
    "audio.output_sample_rate": (8000, 16000, 24000),
    "backend.kind": ("emulator", "bedrock"),
    "backend.endpointing_sensitivity": ("", "HIGH", "MEDIUM", "LOW"),
    "backend.transport": ("h2", "crt"),
    "emulator.voice": ("auto", "espeak", "synthetic"),
    "emulator.recogniser": ("auto", "none", "pocketsphinx"),
}


def get(s: Settings, key: str) -> Any:
    """The value of a dotted key."""
    obj: Any = s
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def range_text(key: str) -> str:
    """``from 1 to 86,400 s``: how a range reads, in errors and in settings.toml."""
    r = RANGES[key]
    text = f"from {_number(r.low)} to {_number(r.high)}{f' {r.unit}' if r.unit else ''}"
    return text if r.off is None else f"{_number(r.off)}, or {text}"


def _check_ranges(s: Settings) -> None:
    for key, r in RANGES.items():
        value = get(s, key)
        ok = math.isfinite(value) and (r.low <= value <= r.high or value == r.off)
        if not ok:
            raise SettingsError(f"setting {key}: must be {range_text(key)}, got {value}")
    for key, allowed in CHOICES.items():
        value = get(s, key)
        if value not in allowed:
            names = ", ".join(repr(a) if isinstance(a, str) else str(a) for a in allowed)
            raise SettingsError(f"setting {key}: must be one of {names}, got {value!r}")


def validate(s: Settings) -> Settings:
    """Reject values out of range and impossible combinations, one line each."""
    _check_ranges(s)
    if s.transition_threshold_seconds >= s.session_limit_seconds:
        raise SettingsError(
            "setting transition_threshold_seconds: must be below session_limit_seconds "
            f"({s.transition_threshold_seconds} >= {s.session_limit_seconds})"
        )
    if s.hard_deadline_seconds <= s.transition_threshold_seconds:
        raise SettingsError(
            "setting hard_deadline_margin_seconds: the hard deadline (limit minus margin, "
            f"{s.hard_deadline_seconds} s) must come after the threshold"
        )
    if s.backend.retry_max_seconds < s.backend.retry_base_seconds:
        raise SettingsError(
            "setting backend.retry_max_seconds: must not be below backend.retry_base_seconds "
            f"({s.backend.retry_max_seconds} < {s.backend.retry_base_seconds})"
        )
    if s.emulator.faults:
        parse_fault_plan(s.emulator.faults)  # its error is a one-line SettingsError
    return s


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Settings:
    """Defaults, then the TOML file (when given), then each ``KEY=VALUE`` override."""
    s = Settings()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file {p}: not found") from None
        except IsADirectoryError:
            raise SettingsError(f"settings file {p}: is a folder, not a TOML file") from None
        except UnicodeDecodeError as e:
            raise SettingsError(
                f"settings file {p}: not UTF-8 text (byte {e.start}); save it as UTF-8"
            ) from None
        except OSError as e:
            raise SettingsError(f"settings file {p}: cannot read it ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"settings file {p}: not valid TOML ({e})") from None
        _apply(s, data, "")
    for text in overrides:
        key, value = parse_override(text)
        _apply(s, _nest(key, value), "")
    return validate(s)


def as_dict(s: Settings) -> dict[str, Any]:
    return dataclasses.asdict(s)


def from_dict(data: dict[str, Any]) -> Settings:
    """Settings from ``as_dict``'s tree (e.g. passed as JSON to another process), validated."""
    out = Settings()
    _apply(out, data, "")
    return validate(out)


def replace(s: Settings, **changes: Any) -> Settings:
    """A copy with top-level or dotted (``"backend.kind"``) keys changed, validated."""
    out = from_dict(as_dict(s))
    for key, value in changes.items():
        _apply(out, _nest(key.replace("__", "."), value), "")
    return validate(out)


__all__ = [
    "Settings",
    "SettingsError",
    "all_keys",
    "from_dict",
    "load",
    "parse_override",
    "replace",
]

"""Settings: defaults, the committed file, overrides, and one test per kind of error."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonic_fsm import settings as st

ROOT = Path(__file__).resolve().parent.parent


def test_committed_file_lists_every_key_with_its_default() -> None:
    text = (ROOT / "settings.toml").read_text()
    for key in st.all_keys():
        assert f"{key.rsplit('.', 1)[-1]} =" in text, key
    assert st.as_dict(st.load(ROOT / "settings.toml")) == st.as_dict(st.Settings())


def test_seed_names_and_defaults_are_kept() -> None:
    s = st.Settings()
    assert s.transition_threshold_seconds == 360
    assert s.audio_buffer_duration_seconds == 10
    assert s.audio_start_timeout_seconds == 100
    assert s.next_session_ready_timeout_seconds == 30
    assert s.recording_output_dir == "./session_recordings"
    assert s.session_limit_seconds == 480
    assert s.buffer_cap_bytes == 320_000


def test_overrides_by_dotted_key_and_bare_name() -> None:
    s = st.load(
        None, ["backend.kind=bedrock", "voice_id=tiffany", "transition_threshold_seconds=300"]
    )
    assert s.backend.kind == "bedrock"
    assert s.backend.voice_id == "tiffany"
    assert s.transition_threshold_seconds == 300.0


def test_override_of_a_bare_word_is_a_string() -> None:
    assert st.load(None, ["region=eu-north-1"]).backend.region == "eu-north-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["no_such_key=1"], "setting no_such_key: unknown key"),
        (["transition_threshold_seconds=soon"], "expected float, got str"),
        (["enable_session_recording=1"], "expected bool, got int"),
        (["transition_threshold_seconds=500"], "must be below session_limit_seconds"),
        (["audio_buffer_duration_seconds=0"], "audio_buffer_duration_seconds: must be from 0.5"),
        (["hard_deadline_margin_seconds=200"], "hard deadline"),
        (["backend.kind=cloud"], "backend.kind: must be one of 'emulator', 'bedrock'"),
        (["audio.input_sample_rate=8000"], "16000"),
        (["session_limit_seconds"], "expected KEY=VALUE"),
        (["emulator.faults=2:explode"], "unknown fault 'explode'"),
        (["emulator.voice=loud"], "emulator.voice: must be one of 'auto', 'espeak', 'synthetic'"),
    ],
)
def test_each_kind_of_error_is_one_line_naming_the_key(overrides, message) -> None:
    with pytest.raises(st.SettingsError) as e:
        st.load(None, overrides)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_ambiguous_bare_name_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(st, "all_keys", lambda: ["a.timeout", "b.timeout"])
    with pytest.raises(st.SettingsError, match="ambiguous"):
        st.resolve_key("timeout")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(st.SettingsError, match="not found"):
        st.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("transition_threshold_seconds = = 3")
    with pytest.raises(st.SettingsError, match="not valid TOML"):
        st.load(bad)
    table = tmp_path / "table.toml"
    table.write_text("history = 3\n")
    with pytest.raises(st.SettingsError, match=r"expected a \[history\] table"):
        st.load(table)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[history]\nmax_bytes = 3\n")
    with pytest.raises(st.SettingsError, match=r"setting history\.max_bytes: unknown key"):
        st.load(unknown)


def _default(key: str) -> object:
    obj: object = st.Settings()
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _numeric_keys() -> list[str]:
    return [k for k in st.all_keys() if type(_default(k)) in (int, float) and k not in st.CHOICES]


def test_every_number_has_a_range_and_settings_toml_states_it() -> None:
    """A new numeric setting adds a row to RANGES (this fails until it does) and writes the
    range into its comment in settings.toml."""
    assert set(_numeric_keys()) == set(st.RANGES)
    comments: dict[str, str] = {}
    section, block = "", []
    for line in (ROOT / "settings.toml").read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            block.append(line)
        elif line.startswith("["):
            section, block = line.strip("[]") + ".", []
        elif "=" in line:
            comments[section + line.split("=")[0].strip()] = " ".join(block)
            block = []
    for key in st.RANGES:
        assert f"Range: {st.range_text(key)}" in comments[key].replace("# ", ""), key
    for key in st.RANGES:  # the defaults sit inside their ranges
        r = st.RANGES[key]
        assert r.low <= _default(key) <= r.high or _default(key) == r.off, key  # type: ignore[operator]


@pytest.mark.parametrize(
    "override",
    [
        *(f"{key}=nan" for key in st.all_keys() if isinstance(_default(key), float)),
        "session_limit_seconds=inf",
        "transition_threshold_seconds=-inf",
        "next_session_ready_timeout_seconds=0",
        "audio_start_timeout_seconds=-1",
        "hard_deadline_margin_seconds=-1",
        "emulator.end_of_speech_ms=1",  # 0 follows the endpointing; 1 ms would cut everything
        "emulator.endpoint_idle_seconds=0",
        "emulator.silence_timeout_seconds=0",
        "audio.chunk_frames=99999999999",
        "audio.chunk_frames=0",
        "backend.close_timeout_seconds=0",
        "backend.max_retries=1000000",
        "backend.temperature=3",
        "history.max_total_bytes=1",
    ],
)
def test_a_number_out_of_its_range_is_one_line(override: str) -> None:
    key = st.resolve_key(override.split("=")[0])
    with pytest.raises(st.SettingsError) as e:
        st.load(None, [override])
    assert str(e.value).startswith(f"setting {key}: must be {st.range_text(key)}, got ")
    assert "\n" not in str(e.value)


def test_retry_backoff_cannot_shrink() -> None:
    with pytest.raises(st.SettingsError, match="retry_max_seconds: must not be below"):
        st.load(None, ["backend.retry_base_seconds=5", "backend.retry_max_seconds=1"])


def test_a_settings_file_that_is_a_folder_or_not_utf8_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(st.SettingsError, match="is a folder"):
        st.load(tmp_path)
    latin = tmp_path / "latin1.toml"
    latin.write_bytes('backend.voice_id = "ren\xe9e"\n'.encode("latin-1"))
    with pytest.raises(st.SettingsError, match="not UTF-8"):
        st.load(latin)


def test_settings_cross_to_another_process_as_json() -> None:
    """What ``sonic-fsm serve --workers N`` hands each worker: every key, checked again."""
    import json

    s = st.load(
        None,
        [
            "transition_threshold_seconds=20",
            "hard_deadline_margin_seconds=8",
            "session_limit_seconds=40",
            "emulator.voice=synthetic",
        ],
    )
    assert st.from_dict(json.loads(json.dumps(st.as_dict(s)))) == s
    with pytest.raises(st.SettingsError, match="session_limit_seconds"):
        st.from_dict({"session_limit_seconds": "long"})

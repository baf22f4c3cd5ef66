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
        (["audio_buffer_duration_seconds=0"], "audio_buffer_duration_seconds: must be positive"),
        (["hard_deadline_margin_seconds=200"], "hard deadline"),
        (["backend.kind=cloud"], "backend.kind: must be 'emulator' or 'bedrock'"),
        (["audio.input_sample_rate=8000"], "16000"),
        (["session_limit_seconds"], "expected KEY=VALUE"),
        (["emulator.faults=2:explode"], "unknown fault 'explode'"),
        (["emulator.voice=loud"], "emulator.voice: must be auto, espeak or synthetic"),
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

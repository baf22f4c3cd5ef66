"""``sonic-fsm bench --scenario audio | emulator | session-open | dashboard | load``, each run tiny
through the command line, so they keep working: every figure is there, nothing is timed."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from sonic_fsm import cli
from sonic_fsm.bench import audio, concurrent


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "figures.json"
    assert cli.main(["bench", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_emulator_scenario_answers_every_utterance(tmp_path: Path) -> None:
    f = bench(tmp_path, "--scenario", "emulator", "--minutes", "0.5")["emulator"]
    assert f["virtual_seconds"] == pytest.approx(36.0, abs=0.1)  # whole 12 s spans
    assert f["spoken"] == f["answered"] == 3
    assert f["wall_seconds"] > 0 and f["sim_speed"] > 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scenario", "emulator", "--minutes", "0"], "--minutes must be above 0"),
        (["--scenario", "emulator", "--minutes", "2000"], "at most 1400"),
        (["--scenario", "session-open", "--opens", "0"], "--opens must be at least 1"),
        (["--scenario", "dashboard", "--seconds", "0"], "--seconds must be above 0"),
        (["--scenario", "load", "--streams", "0"], "--streams and --per-connection must be"),
        (["--scenario", "load", "--stagger", "-1"], "--stagger must be 0 or more"),
        (["--concurrent", "20,0"], "--concurrent must be at least 1"),
        (["--concurrent", "20", "--concurrent-stagger", "-1"], "--concurrent-stagger must be"),
        (["--concurrent", "20", "--concurrent-stagger", "60"], "half of --concurrent-seconds"),
    ],
)
def test_a_bad_size_is_one_line(args: list[str], says: str, capsys) -> None:
    assert cli.main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # a thread plays the device in real time
def test_the_audio_scenario_measures_capture_flush_and_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio, "run", functools.partial(audio.run, 4, 2, 3))
    f = bench(tmp_path, "--scenario", "audio")["audio"]
    for capture in (f["capture_idle"], f["capture_busy"]):
        assert capture["chunks"] == 4
        assert 0 < capture["latency_us_p50"] <= capture["latency_us_max"]
        assert capture["callback_us_p99"] is not None
    assert f["flush"]["silence_within_ms"] == pytest.approx(42.7)
    dropped = [f["flush"][k]["bytes_dropped"] for k in ("1s", "10s", "60s")]
    assert 0 < dropped[0] < dropped[1] < dropped[2]
    assert f["recording"]["chunks"] == 3 and f["recording"]["received_us_p99"] is not None


@pytest.mark.slow  # the real SDK over HTTP/2
def test_the_session_open_scenario_opens_and_closes_over_the_sdk(tmp_path: Path) -> None:
    f = bench(tmp_path, "--scenario", "session-open", "--opens", "2")["session_open"]
    assert f["sequential"]["n"] == 2 and f["two_at_once"]["n"] == 2
    for part in f.values():
        assert part["open_ms_p50"] > 0 and part["close_ms_p99"] >= part["close_ms_p50"] > 0


@pytest.mark.slow  # the real dashboard on the demo conversation, in real time
@pytest.mark.parametrize("burst", [False, True])
def test_the_dashboard_scenario_runs_the_real_dashboard(tmp_path: Path, burst: bool) -> None:
    args = ["--scenario", "dashboard", "--seconds", "1", *(["--burst"] if burst else [])]
    f = bench(tmp_path, *args)["dashboard"]
    assert "polls_per_second" not in f["engine_only"]
    shown = f["with_dashboard"]
    assert shown["polls_per_second"] > 0 and shown["screen_updates_per_second"] > 0
    assert f["engine_only"]["engine_events_per_second"] > 0
    assert ("engine_events_kept_pct" if burst else "dashboard_cpu_pct") in f


@pytest.mark.slow  # a serve process, and the endpoint over loopback
@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ["wire", "sdk"])
def test_the_load_scenario_completes_every_turn(tmp_path: Path, client: str) -> None:
    args = ["--scenario", "load", "--streams", "3", "--per-connection", "2", "--client", client]
    f = bench(tmp_path, *args)["load"]
    assert f["turns_completed"] == f["streams"] == 3 and f["server_exit"] == 0
    assert f["speed"] == 4.0 and f["client"] == client
    for name in ("transcript", "audio", "final"):
        assert 0 < f[f"utterance_end_to_{name}_ms_p50"] <= f[f"utterance_end_to_{name}_ms_max"]
    assert f["server_cpu_ms_per_turn"] >= 0 and f["client_cpu_seconds"] > 0


def _run(n: int, clean: int, p99: float, cores: float) -> dict[str, Any]:
    return {
        "conversations": n,
        "clean": clean,
        "lateness_ms_p99": p99,
        "cpu_pct_of_a_core_per_conversation": round(100 * cores / n, 3),
        "conversations_per_core": round(n / cores, 1),
        "fits": clean == n and p99 < concurrent.LATENESS_GOAL_MS,
    }


def test_the_concurrent_verdict_is_the_largest_n_that_stays_clean_and_on_time() -> None:
    runs = [_run(20, 20, 3.0, 0.2), _run(40, 40, 12.0, 0.35), _run(60, 60, 25.0, 0.5),
            _run(80, 79, 9.0, 0.7)]  # fmt: skip
    v = concurrent.verdict(runs)
    assert v["largest_clean_n"] == 40 and v["conversations_per_core"] == 114.3
    assert "largest clean N: 40" in v["line"] and "114.3 conversations per core" in v["line"]
    none = concurrent.verdict([_run(60, 60, 25.0, 0.5)])
    assert none["largest_clean_n"] is None and "no N fits" in none["line"]


def test_a_concurrent_list_that_is_not_numbers_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "--concurrent", "20,x"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "expected N or N,N,..." in err[-1]

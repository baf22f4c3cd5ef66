"""The turn-taking scenario of the bench: real endpointing levels, figures per level."""

from __future__ import annotations

import json

from sonic_fsm.bench import run as bench
from sonic_fsm.bench import turn_taking
from sonic_fsm.settings import Settings


def test_each_level_is_measured_and_replies_wait_for_its_pause() -> None:
    lines: list[str] = []
    by_level = turn_taking.run(Settings(), minutes=1.0, seeds=1, out=lines.append)
    assert list(by_level) == ["HIGH", "MEDIUM", "LOW"]
    for f in by_level.values():
        assert f["utterances_spoken"] >= 4 and f["handoffs"] >= 1
        assert set(f) >= {"utterances_lost", "answered_twice", "talk_over", "unmarked_answers"}
    p50 = [by_level[level]["reply_delay_ms_p50"] for level in ("HIGH", "MEDIUM", "LOW")]
    # An ordinary reply comes after the level's pause (1.5 / 1.75 / 2 s) and 150 ms more.
    for got, pause in zip(p50, (1500, 1750, 2000), strict=True):
        assert pause + 100 <= got <= pause + 250, p50
    table = next(line for line in lines if line.lstrip().startswith("level"))
    assert "talk-over" in table and "delay p50" in table


def test_the_bench_runs_just_this_scenario_and_writes_it_as_json(tmp_path) -> None:
    path = tmp_path / "bench.json"
    code = bench.main(
        Settings(), json_path=str(path), scenario="turn-taking", turn_minutes=0.5, seeds=1,
        out=lambda line: None,
    )  # fmt: skip
    figures = json.loads(path.read_text())
    assert list(figures) == ["turn_taking"]
    assert code == (1 if turn_taking.broken(figures["turn_taking"]) else 0)

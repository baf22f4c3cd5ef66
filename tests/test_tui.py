"""The dashboard: what it draws (snapshots), what its keys send (Pilot), that it coalesces.

Fixed snapshots (``tui.sample``) make the screen deterministic; a fake source records the
operator commands. No audio device, no network.
"""

from __future__ import annotations

import asyncio
import functools
import tomllib
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.worker import WorkerState

from sonic_fsm import settings
from sonic_fsm.audio.talker import RECALL
from sonic_fsm.core import machine
from sonic_fsm.core.snapshot import TranscriptLine
from sonic_fsm.errors import SessionError
from sonic_fsm.runner import Runner
from sonic_fsm.wiring import build_conversation
from tui import sample
from tui.app import (
    DEMO_OVERRIDES,
    DIAGRAM_FILE,
    Dashboard,
    StartupErrorApp,
    describe_error,
    make_app,
)
from tui.present import (
    Edge,
    edges,
    endpointing_note,
    exits,
    new_log_lines,
    settings_toml,
    visible_transcript,
)
from tui.screens import ErrorScreen, HelpScreen, SettingsScreen
from tui.screenshot import recall_answered
from tui.widgets import AgeGauge, MetricsPanel, StateStrip, Transcript

SIZE = (120, 40)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the project has no asyncio pytest plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def commands(source: sample.FixedSource) -> list[str]:
    return list(source.submitted)


def screen_text(app: Dashboard) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot: Any, condition: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.01)


# -- the pure rules ------------------------------------------------------------------------


def test_edges_expand_lists_wildcards_and_internal_transitions() -> None:
    table = [
        {"trigger": "go", "source": ["A", "B"], "dest": "C"},
        {"trigger": "poke", "source": "C", "dest": None},
        {"trigger": "stop", "source": "*", "dest": "D"},
    ]
    got = edges(table, ["A", "B", "C", "D"])
    assert Edge(trigger="go", source="B", dest="C") in got
    assert Edge(trigger="poke", source="C", dest="C") in got
    assert [e.source for e in got if e.trigger == "stop"] == ["A", "B", "C", "D"]
    assert exits(got, "C") == {"C": ["poke"], "D": ["stop"]}


def test_strip_is_drawn_from_the_machine_table() -> None:
    strip = StateStrip()
    assert strip.states == [s.name for s in machine.State]
    pairs = {(e.source, e.dest) for e in strip.edges}
    for row in machine.TRANSITIONS:
        if row["dest"] is None:
            continue
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        for source in sources:
            assert (source.name, row["dest"].name) in pairs


def test_final_text_replaces_speculative_in_order_and_interruptions_replace_nothing() -> None:
    def a(text: str, final: bool = True, interrupted: bool = False) -> TranscriptLine:
        return TranscriptLine(
            kind="assistant", session_id="s1", text=text, final=final, interrupted=interrupted
        )

    user = TranscriptLine(kind="user", session_id="s1", text="hi")
    lines = [user, a("one", False), a("two", False), a("One.")]
    assert [x.text for x in visible_transcript(lines)] == ["hi", "two", "One."]
    lines.append(a("Two."))
    assert [x.text for x in visible_transcript(lines)] == ["hi", "One.", "Two."]
    cut = [user, a("three", False), a("(interrupted)", interrupted=True)]
    assert [x.text for x in visible_transcript(cut)] == ["hi", "three", "(interrupted)"]
    # a new session starts a new turn: its speculative text is not replaced by s1's final
    other = replace(a("four", False), session_id="s2")
    hand = TranscriptLine(kind="handoff", session_id="s2", text="s1 -> s2")
    shown = visible_transcript([a("Five."), hand, other])
    assert [x.text for x in shown] == ["Five.", "s1 -> s2", "four"]


def test_log_appends_only_new_lines_even_from_a_rolling_window() -> None:
    assert new_log_lines((), ("a", "b")) == (True, ["a", "b"])
    assert new_log_lines(("a", "b"), ("a", "b", "c")) == (True, ["c"])
    assert new_log_lines(("a", "b", "c"), ("b", "c", "d", "e")) == (True, ["d", "e"])
    assert new_log_lines(("a", "b"), ("x", "y")) == (False, ["x", "y"])


def test_settings_text_is_toml_that_loads_back_to_the_same_settings() -> None:
    s = settings.load(None, DEMO_OVERRIDES)
    text = settings_toml(settings.as_dict(s))
    assert tomllib.loads(text) == settings.as_dict(s)


@pytest.mark.parametrize(
    ("overrides", "note"),
    [
        (["backend.endpointing_sensitivity=HIGH"], "a 1.5 s pause ends the user's turn"),
        (["backend.endpointing_sensitivity=LOW"], "a 2 s pause ends the user's turn"),
        ([], "not sent: the service's default (the emulator's is MEDIUM, 1.75 s)"),
        (["emulator.end_of_speech_ms=500"], "the emulator ends turns after 500 ms instead"),
    ],
)
def test_the_settings_screen_says_what_the_endpointing_means(
    overrides: list[str], note: str
) -> None:
    s = settings.load(None, overrides)
    text = settings_toml(
        settings.as_dict(s), {"backend.endpointing_sensitivity": endpointing_note(s)}
    )
    (line,) = [x for x in text.splitlines() if x.startswith("endpointing_sensitivity =")]
    assert line.endswith(f"  # {note}")
    assert tomllib.loads(text) == settings.as_dict(s)  # the notes are comments


def test_demo_profile_hands_off_within_a_minute() -> None:
    s = settings.load(None, DEMO_OVERRIDES)
    assert s.backend.kind == "emulator"
    assert s.session_limit_seconds == 60
    assert s.transition_threshold_seconds == 30
    assert s.transition_threshold_seconds < s.hard_deadline_seconds < s.session_limit_seconds


# -- snapshots of the main screen ----------------------------------------------------------


def test_snapshot_normal(snap_compare) -> None:
    app = Dashboard(sample.FixedSource(sample.normal()), poll_seconds=None)
    assert snap_compare(app, terminal_size=SIZE)


def test_snapshot_buffering(snap_compare) -> None:
    app = Dashboard(sample.FixedSource(sample.buffering()), poll_seconds=None)
    assert snap_compare(app, terminal_size=SIZE)


def test_snapshot_tool_wait(snap_compare) -> None:
    """A tool call in the transcript (name, time, failure) and the one the hand-off waits on."""
    app = Dashboard(sample.FixedSource(sample.tool_wait()), poll_seconds=None)
    assert snap_compare(app, terminal_size=SIZE)


@sync
async def test_buffering_screen_shows_every_panel() -> None:
    app = Dashboard(sample.FixedSource(sample.buffering()), poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
    for expected in (
        "state machine",
        "last MONITORING ─assistant_audio_started→ BUFFERING  at 67.4 s",
        "35.8 s of 60 s",
        "1.59 s of 10 s",
        "hand-off s1 → s2",
        "interrupted by the user",
        "Answer to utterance 4. …",
        "67.412 [TRANSITION] MONITORING ->",
        "99.7 %",
        "184 ms",
    ):
        assert expected in text, expected
    rows = [line.split() for line in text.splitlines() if "│ s3 " in line]
    assert rows and rows[0][1:5] == ["s3", "next", "1.6", "s"]


@sync
async def test_an_80_by_24_terminal_still_shows_the_conversation() -> None:
    app = Dashboard(sample.FixedSource(sample.buffering()), poll_seconds=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
    assert "Answer to utterance 4. …" in text
    assert "BUFFERING (assistant_audio_started)" in text
    assert "35.8 s of 60 s" in text


# -- keys -----------------------------------------------------------------------------------


@sync
async def test_keys_send_operator_commands_and_quit_without_an_engine() -> None:
    source = sample.FixedSource(sample.normal())
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("h", "m", "m", "r", "r"):
            await pilot.press(key)
            await pilot.pause()
            app.poll()  # the next frame: the source now says muted / recording
        assert commands(source) == [
            "force_handoff",
            "mute",
            "unmute",
            "recording_on",
            "recording_off",
        ]
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@sync
async def test_mute_shows_in_the_title_and_the_metrics() -> None:
    source = sample.FixedSource(sample.normal())
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")
        await pilot.pause()
        app.poll()
        await pilot.pause()
        assert app.sub_title == "NORMAL · muted"
        assert "mic           muted" in screen_text(app)


class RunningSource(sample.FixedSource):
    """A source with an engine: ``run`` ends when ``stop`` arrives (or never, if stubborn)."""

    def __init__(self, *, stubborn: bool = False, fail: Exception | None = None) -> None:
        super().__init__(sample.normal())
        self.stubborn = stubborn
        self.fail = fail
        self.stopped = asyncio.Event()
        self.finished = False

    def stop(self) -> None:
        super().stop()
        if not self.stubborn:
            self.stopped.set()

    async def run(self) -> None:
        if self.fail is not None:
            raise self.fail
        await self.stopped.wait()
        self.current = replace(self.current, state="STOPPED")
        self.finished = True


@sync
async def test_quit_stops_the_engine_and_waits_for_it() -> None:
    source = RunningSource()
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: source.finished and app.return_code is not None)
    assert commands(source) == ["stop"]
    assert source.finished
    assert app.return_code == 0


@sync
async def test_quit_gives_up_on_an_engine_that_does_not_stop() -> None:
    source = RunningSource(stubborn=True)
    app = Dashboard(source, poll_seconds=None, stop_timeout_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: app.engine is not None and app.engine.is_finished)
        assert app.engine is not None and app.engine.state == WorkerState.CANCELLED
    assert commands(source) == ["stop"]
    assert not source.finished


@sync
async def test_an_engine_error_is_a_message_not_a_traceback() -> None:
    source = RunningSource(fail=SessionError("AccessDeniedException", "no model access"))
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert isinstance(app.screen, ErrorScreen)
        assert "AccessDeniedException: no model access" in screen_text(app)
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1


@sync
async def test_missing_credentials_found_by_the_engine_are_a_start_up_error() -> None:
    from sonic_fsm.credentials import CredentialsError

    source = RunningSource(fail=CredentialsError("no AWS credentials found: set AWS_PROFILE"))
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
        text = screen_text(app)
        assert "sonic-fsm could not start" in text
        assert "no AWS credentials found: set AWS_PROFILE" in text
        assert "Traceback" not in text and "CredentialsError" not in text
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 2


@sync
async def test_a_snapshot_that_raises_is_reported_once_and_quit_still_works() -> None:
    class Broken(sample.FixedSource):
        def snapshot(self):
            raise ZeroDivisionError("division by zero")

    app = Dashboard(Broken(sample.normal()), poll_seconds=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.polls >= 5)  # the timer kept polling
        assert isinstance(app.screen, ErrorScreen)
        assert len(app.screen_stack) == 2  # one message, not one per poll
        assert "ZeroDivisionError: division by zero" in screen_text(app)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@sync
async def test_startup_error_screen_names_the_problem() -> None:
    def build(s: settings.Settings, **_: Any) -> sample.FixedSource:
        raise settings.SettingsError("setting backend.kind: must be 'emulator' or 'bedrock'")

    app = make_app(settings.Settings(), build=build)
    assert isinstance(app, StartupErrorApp)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.pause()
        assert "setting backend.kind: must be 'emulator' or 'bedrock'" in screen_text(app)
        await pilot.press("q")
    assert app.return_code == 2


def test_make_app_builds_the_dashboard_on_the_conversation() -> None:
    s = settings.Settings()
    source = sample.FixedSource(sample.normal(), s)
    app = make_app(s, build=lambda settings, mic, speaker: source)
    assert isinstance(app, Dashboard) and app.source is source and app.settings is s


def test_errors_read_as_one_line() -> None:
    assert describe_error(SessionError("ThrottlingException", "slow down")) == (
        "ThrottlingException: slow down"
    )
    assert describe_error(KeyError("x")) == "KeyError: 'x'"
    assert describe_error(settings.SettingsError("setting a: bad")) == "setting a: bad"


@sync
async def test_help_settings_and_diagram_keys(tmp_path: Path) -> None:
    s = settings.load(None, DEMO_OVERRIDES)
    app = Dashboard(sample.FixedSource(sample.normal(), s), poll_seconds=None, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        help_text = screen_text(app)
        assert "force_handoff" not in help_text  # it lists keys, not commands
        for key, description in (("h", "Hand off"), ("q", "Quit"), ("?", "Help")):
            assert f" {key}  {description}" in help_text
        await pilot.press("escape")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        assert tomllib.loads(app.screen.toml_text)["session_limit_seconds"] == 60
        assert "endpointing_sensitivity = " in app.screen.toml_text
        await pilot.press("escape")
        await pilot.press("d")
        await pilot.pause()
    written = (tmp_path / DIAGRAM_FILE).read_text()
    assert "```mermaid" in written and "BUFFERING" in written


# -- coalescing -----------------------------------------------------------------------------


class BurstySource(sample.FixedSource):
    """Each ``bump`` is one engine event that changes the snapshot."""

    def __init__(self) -> None:
        super().__init__(sample.normal())
        self.events = 0
        self.snapshot_calls = 0

    def bump(self, n: int) -> None:
        for _ in range(n):
            self.events += 1
            self.current = replace(self.current, now=float(self.events))

    def snapshot(self):
        self.snapshot_calls += 1
        return self.current


@sync
async def test_a_burst_of_changes_between_polls_is_rendered_once() -> None:
    source = BurstySource()
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        first = app.renders
        for _ in range(5):
            source.bump(1000)
            assert app.poll() is True
            await pilot.pause()
        assert app.renders == first + 5
        assert app.poll() is False  # nothing changed: nothing is pushed
        assert app.renders == first + 5
        assert app.snapshot is not None and app.snapshot.now == 5000.0


@pytest.mark.slow  # the real poll timer and real sleeps
@sync
async def test_the_timer_polls_and_never_renders_more_often_than_it_polls() -> None:
    source = BurstySource()
    app = Dashboard(source, poll_seconds=0.02)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(10):
            source.bump(1000)
            await asyncio.sleep(0.01)
        await pilot.pause(0.05)
    assert source.events == 10_000
    assert app.polls == source.snapshot_calls
    assert 2 <= app.renders <= app.polls
    assert app.renders < 100  # 10,000 changes, a handful of renders


@sync
async def test_a_panel_repaints_only_when_what_it_shows_changed() -> None:
    source = sample.FixedSource(sample.normal())
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        strip, age, metrics = (
            app.query_one(StateStrip),
            app.query_one(AgeGauge),
            app.query_one(MetricsPanel),
        )
        before = (strip.repaints, age.repaints, metrics.repaints)
        source.current = replace(source.current, now=12.01)  # the engine's clock moved
        assert app.poll() is True
        await pilot.pause()
        assert (strip.repaints, age.repaints, metrics.repaints) == before
        source.current = replace(source.current, session_age_seconds=12.3)
        app.poll()
        await pilot.pause()
        assert age.repaints == before[1] + 1
        assert (strip.repaints, metrics.repaints) == (before[0], before[2])
        assert "12.3 s of 60 s" in screen_text(app)


@sync
async def test_transcript_keeps_only_the_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = tuple(
        TranscriptLine(kind="user" if i % 2 else "assistant", session_id="s1", text=f"line {i}")
        for i in range(50)
    )
    source = sample.FixedSource(replace(sample.normal(), transcript=lines))
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        widget = app.query_one(Transcript)
        widget.keep = 10
        rendered = widget.text_for(lines).plain
    assert "line 49" in rendered and "line 40" in rendered and "line 39" not in rendered


# -- the hand-off path, between two frames and on the real engine ---------------------------

HANDOFF_PATH = ["BUFFERING", "HANDOFF", "PROMOTED", "NORMAL"]


@sync
async def test_a_handoff_between_two_frames_still_shows_its_path() -> None:
    before = sample.normal()
    lines = (
        "   12.100 [TRANSITION] NORMAL -> BUFFERING (force_handoff)",
        "   12.101 [TRANSITION] BUFFERING -> HANDOFF (next_ready)",
        "   12.103 [TRANSITION] HANDOFF -> PROMOTED (buffer_drained)",
        "   12.103 [TRANSITION] PROMOTED -> NORMAL (old_session_done)",
    )
    source = sample.FixedSource(before)
    app = Dashboard(source, poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        source.current = replace(before, now=12.5, log=before.log + lines)
        app.poll()
        await pilot.pause()
        strip = app.query_one(StateStrip)
        assert [t.dest for t in strip.trail] == HANDOFF_PATH
        text = screen_text(app)
        assert "NORMAL ─force_handoff→ BUFFERING ─next_ready→ HANDOFF" in text
        # two seconds of engine time later the path has faded to the last transition
        source.current = replace(source.current, now=20.0)
        app.poll()
        await pilot.pause()
        assert "last PROMOTED ─old_session_done→ NORMAL  at 12.1 s" in screen_text(app)


@sync
async def test_no_snapshot_yet_renders_nothing() -> None:
    class NotStarted(sample.FixedSource):
        def snapshot(self):
            return None

    app = Dashboard(NotStarted(sample.normal()), poll_seconds=None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.renders == 0
        assert "waiting for the engine…" in screen_text(app)


def emulator_conversation() -> Runner:
    """The demo profile on the in-process emulator, wired as the CLI does, a silent user."""
    s = settings.load(None, DEMO_OVERRIDES)
    return build_conversation(s, mic="null", speaker="null", finish_when_input_ends=False)


@pytest.mark.slow  # a conversation on the emulator in real time
@sync
async def test_on_the_emulator_h_moves_the_strip_through_a_handoff_and_q_closes_it() -> None:
    conv = emulator_conversation()
    app = Dashboard(conv, poll_seconds=0.02)
    states: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.sessions != ())
        assert app.snapshot is not None and app.snapshot.state == "NORMAL"
        strip = app.query_one(StateStrip)
        seen_before = len(strip.trail)
        await pilot.press("h")
        await wait_for(pilot, lambda: [t.dest for t in strip.trail[seen_before:]] == HANDOFF_PATH)
        states = [t.dest for t in strip.trail[seen_before:]]
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.state == "NORMAL")
        roles = {v.session_id: v.role for v in app.snapshot.sessions}
        assert roles.get("s2") == "current"
        text = screen_text(app)
        assert "force_handoff→ BUFFERING ─next_ready→ HANDOFF" in text
        assert "[TRANSITION] HANDOFF -> PROMOTED" in text
        await pilot.press("m")
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.muted)
        assert "muted" in app.sub_title
        await pilot.press("q")
        await wait_for(pilot, lambda: app.engine is not None and app.engine.is_finished)
    assert states == HANDOFF_PATH
    assert app.return_code == 0
    assert app.engine is not None and app.engine.state == WorkerState.SUCCESS
    assert conv.conversation.state == "STOPPED"
    assert all(s._closed for s in conv.backend.sessions)  # every session closed properly


# -- the demo on the emulator: the simulated talker, recognised, across a hand-off -----------


def demo_until_recalled(virtual_seconds: float = 180.0) -> tuple[Runner, Any]:
    """``sonic-fsm tui`` without a microphone (the factory it uses, the demo profile, the
    talker, no speaker) in virtual time, until the recall question after the first hand-off
    is answered or ``virtual_seconds`` have passed; then stopped. Its last snapshot."""
    from sonic_fsm import clock

    s = settings.load(None, DEMO_OVERRIDES)
    conv = build_conversation(s, mic="talker", speaker="null", finish_when_input_ends=False)

    async def go() -> Any:
        run = asyncio.ensure_future(conv.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + virtual_seconds
        while loop.time() < deadline and not run.done() and not recall_answered(conv.snapshot()):
            await asyncio.sleep(0.25)
        conv.request_stop("the test has seen enough")
        await asyncio.wait_for(run, 30)
        return conv.snapshot()

    return conv, clock.run(go(), virtual=True)


def _speech_and_ears() -> bool:
    from nova_emulator.recogniser import available
    from sonic_fsm.audio.talker import espeak_available

    return espeak_available() and available()


@pytest.mark.slow  # espeak-ng runs as a process; pocketsphinx listens
@pytest.mark.skipif(
    not _speech_and_ears(),
    reason="needs espeak-ng and sox (scripts/system-deps) and pocketsphinx (the recogniser extra)",
)
def test_the_demo_shows_the_new_session_remembering_what_was_asked_before_the_handoff() -> None:
    from sonic_fsm.audio.talker import DEFAULT_SCRIPT

    conv, snap = demo_until_recalled()
    assert snap is not None
    lines = [x for x in snap.transcript if x.kind in ("user", "assistant", "handoff")]
    spoken = [u.text for u in conv.source.spoken]  # type: ignore[attr-defined]
    heard = [x.text for x in lines if x.kind == "user"]
    assert heard == spoken[: len(heard)]  # every line the talker said, recognised as said
    assert recall_answered(snap), "\n".join(f"{x.kind}: {x.text}" for x in lines)

    at = [x.kind for x in lines].index("handoff")
    before = [x for x in lines[:at] if x.kind == "user"]
    asked = next(i for i, x in enumerate(lines) if i > at and x.text == RECALL)
    reply = next(x for x in lines[asked + 1 :] if x.kind == "assistant")
    assert before and before[-1].text in DEFAULT_SCRIPT
    assert before[-1].session_id != reply.session_id  # asked of the old session
    assert reply.text == f"Before this, you asked: {before[-1].text}"  # the new one knows

    async def shown() -> str:
        app = Dashboard(sample.FixedSource(snap), poll_seconds=None)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            return screen_text(app)

    text = asyncio.run(shown())
    assert RECALL in text and before[-1].text in text
